"""Timing of the UI's interactive re-render (for ``refocus bench speed``)."""

from __future__ import annotations

import time

import numpy as np

#: Largest preview the UI renders after a click or a slider release (pixels).
PREVIEW_PIXELS = 1_000_000
#: Largest draft the UI renders while a slider is dragged, and first after a click (pixels).
DRAFT_PIXELS = 250_000


def preview_refocuser(refocuser=None):
    """The refocuser the UI renders its preview and draft with: ``refocuser`` (default:
    the default one) with its layered renderer compositing with *over* everywhere
    (``RenderConfig.smooth_sum`` off). The summed render away from depth jumps costs
    1.5-1.8x on real photos (2026-12-07: a 1 MP preview 0.27 -> 0.48 s on the 2-core
    EPYC), which would take the preview past its 0.3 s target; the export keeps it."""
    from dataclasses import replace

    from refocus.pipeline.refocuser import LayeredRenderer, default_refocuser

    refocuser = refocuser or default_refocuser()
    if type(refocuser.renderer) is not LayeredRenderer:
        return refocuser
    return replace(refocuser, renderer=LayeredRenderer(refocuser.renderer.threads, smooth_sum=False))


def bench_interactive(
    image: np.ndarray | None = None,
    disparity: np.ndarray | None = None,
    *,
    preview_pixels: int = 1_000_000,
    strength_px: float = 15.0,
    focus_points: int = 5,
    quality: str = "balanced",
    aperture=None,
    device: str = "cpu",
) -> dict:
    """Time what the UI does when the user clicks a new focus point.

    The photo is prepared once (depth given, blur estimate, preview copy of at most
    ``preview_pixels``) and rendered once, as the UI does on upload; then
    ``focus_points`` clicks spread over the disparity range are re-rendered and
    timed one by one.

    Parameters
    ----------
    image, disparity : sRGB float32 H x W x 3 and H x W (larger = nearer). Default:
        the bundled demo photo, upscaled to ``preview_pixels`` so the preview is
        exactly that large.
    strength_px : K in pixels of the preview.
    quality : renderer quality the preview uses (the UI's default is "balanced").
    device : where the renderer runs (``cpu``, ``cuda``, ``auto``); the first,
        untimed render also warms a GPU up.

    Returns
    -------
    dict with ``preview_shape`` (H, W), ``megapixels``, ``prepare_s`` (once per
    photo), ``render_s`` (one entry per click), ``median_render_s``, ``max_render_s``.
    """
    from dataclasses import replace

    from refocus.aperture import ApertureConfig
    from refocus.pipeline.config import RefocusConfig
    from refocus.pipeline.core import PreparedPhoto, _resize
    from refocus.pipeline.sharpness import input_blur_map

    if image is None:
        from refocus.io import read_depth_file, read_image
        from refocus.pipeline.demo import demo_files
        from refocus.depth.prepare import prepare_disparity

        p, d = demo_files()
        image, _ = read_image(p)
        disparity = prepare_disparity(read_depth_file(d), shape=image.shape[:2])
        s = np.sqrt(preview_pixels / (image.shape[0] * image.shape[1]))
        hw = (int(image.shape[0] * s), int(image.shape[1] * s))
        image, disparity = _resize(image, hw), _resize(disparity, hw)
    t0 = time.perf_counter()
    d = np.asarray(disparity, dtype=np.float32)
    d = (d - d.min()) / max(float(d.max() - d.min()), 1e-12)
    photo = PreparedPhoto(image=np.asarray(image, np.float32), disparity=d, input_blur_px=input_blur_map(image, d))
    preview = replace(photo.resized(preview_pixels), refocuser=preview_refocuser())
    _ = preview.linear
    prepare_s = time.perf_counter() - t0
    cfg = RefocusConfig(strength=strength_px, quality=quality, aperture=aperture or ApertureConfig(), device=device)
    # The UI renders once when the photo is uploaded (untimed here too): clicks come after.
    preview.render(cfg, 0.5, strength_px)
    times = []
    for f in np.linspace(0.1, 0.9, focus_points):
        t = time.perf_counter()
        preview.render(cfg, float(f), strength_px)
        times.append(time.perf_counter() - t)
    return {
        "preview_shape": tuple(int(v) for v in preview.shape),
        "megapixels": preview.shape[0] * preview.shape[1] / 1e6,
        "quality": quality,
        "strength_px": strength_px,
        "prepare_s": prepare_s,
        "render_s": times,
        "median_render_s": float(np.median(times)),
        "max_render_s": float(np.max(times)),
    }
