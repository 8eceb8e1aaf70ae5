"""The photo-level render: a new depth of field from a photo and its disparity.

:func:`render_bokeh` composes the depth stage's disparity preparation
(:func:`refocus.depth.prepare.prepare_disparity`), the focus
(:func:`refocus.depth.focus.focus_at_point`), the CoC (:func:`refocus.render.coc_map`)
and the renderer (:func:`refocus.render.render_linear`). ``refocus render`` and the
package's ``refocus.render_bokeh`` are this function.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import ValidationError

from refocus.aperture import ApertureConfig
from refocus.depth import _check_aspect
from refocus.depth.focus import focus_at_point
from refocus.depth.prepare import prepare_disparity
from refocus.errors import RefocusError
from refocus.io.depthfile import as_depth_map
from refocus.pipeline.config import RefocusConfig, settings_error
from refocus.render import RenderConfig, coc_map, render_linear

__all__ = ["prepare_disparity", "render_bokeh"]


def render_bokeh(
    image: np.ndarray,
    disparity: np.ndarray,
    *,
    strength: float,
    focus_disparity: float | None = None,
    focus_xy: tuple[float, float] | None = None,
    aperture: ApertureConfig | str | None = None,
    depth_kind: Literal["disparity", "depth"] = "disparity",
    normalize: bool = True,
    highlight_threshold: float | None = None,
    highlight_gain: float | None = None,
    cats_eye: float | None = None,
    quality: Literal["fast", "balanced", "high"] = "balanced",
    device: str = "cpu",
    return_coc: bool = False,
    grain: bool = False,
):
    """Render a new depth of field onto an all-in-focus photo.

    Parameters
    ----------
    image:
        H x W x 3 float32 sRGB in [0, 1] (uint8/uint16 are accepted and scaled).
    disparity:
        Disparity (larger = nearer), or distance with ``depth_kind="depth"``. Another
        size of the image's aspect ratio (within 3 %, as for every depth map:
        :func:`refocus.depth.get_depth`) is resampled to the image's, with a warning;
        another aspect ratio is refused.
    strength:
        K, in pixels: CoC radius per unit of (normalised) disparity.
    focus_disparity, focus_xy:
        The focal plane, as a disparity in the renderer's units (normalised to [0, 1]
        by default), a band ``(a, b)`` of them kept sharp (a focus range:
        :func:`refocus.render.coc_map`), or as a pixel (x, y) whose local median
        disparity is used; one or the other. With neither, the disparity median is used.
    aperture:
        An :class:`ApertureConfig`, or ``"disc"``, ``"polygon"`` or an image path.
    highlight_threshold, highlight_gain, cats_eye, quality, device:
        See :class:`RenderConfig` and :class:`ApertureConfig`.
    return_coc:
        Also return the signed CoC map (px).
    grain:
        Add back the photo's noise where the blur averaged it away
        (:mod:`refocus.render.grain`), so blurred areas are as grainy as sharp ones.

    Returns
    -------
    The rendered photo, float32 H x W x 3 sRGB in [0, 1] (and the CoC map).
    """
    from refocus.aperture import aperture_from_spec
    from refocus.io import as_float_rgb
    from refocus.io.color import linear_to_srgb, srgb_to_linear

    img, _ = as_float_rgb(image)
    if focus_xy is not None and focus_disparity is not None:
        # Two focal planes: using one and dropping the other silently renders a photo
        # focused where the caller may not have meant.
        raise RefocusError("give focus_disparity or focus_xy, not both")
    if focus_xy is not None:
        # The pipeline's rule for a focus point (RefocusConfig.focus_xy); inside the
        # image is focus_at_point's.
        focus_xy = RefocusConfig(focus_xy=focus_xy).focus_xy
        from refocus.depth.focus import warn_if_fractions

        warn_if_fractions(*focus_xy, img.shape[1], img.shape[0])
    raw = as_depth_map(disparity)
    # The depth rule of every command (get_depth): a map of another aspect ratio is of
    # another picture (or turned), and stretching it misplaces every edge.
    _check_aspect(raw.shape, img.shape[:2], "disparity")
    disp = prepare_disparity(raw, depth_kind, normalize, shape=img.shape[:2], guide=img)
    if focus_disparity is None:
        focus_disparity = focus_at_point(disp, *focus_xy) if focus_xy is not None else float(np.median(disp))
    coc = coc_map(disp, focus_disparity, strength)  # checks strength and the focal plane (or band)
    if normalize and float(disp.max()) == float(disp.min()):
        # A constant map (already warned about) puts everything on one plane: with
        # relative depth there is no second plane to blur, whatever the focus.
        coc = np.zeros(img.shape[:2], np.float32)
        return (img.copy(), coc) if return_coc else img.copy()
    if aperture is None:
        aperture = ApertureConfig()
    elif isinstance(aperture, str):
        aperture = aperture_from_spec(aperture)
    overrides = {"quality": quality, "device": device}
    if highlight_threshold is not None:
        overrides["highlight_threshold"] = highlight_threshold
    if highlight_gain is not None:
        overrides["highlight_gain"] = highlight_gain
    try:
        if cats_eye is not None:
            ApertureConfig(cats_eye=cats_eye)  # model_copy does not validate: a cats_eye of 5 or NaN reached the kernel
            aperture = aperture.model_copy(update={"cats_eye": float(cats_eye)})
        cfg = RenderConfig(aperture=aperture, **overrides)
    except ValidationError as exc:
        raise settings_error(exc) from None
    from refocus.render.threads import shared_threads

    threads = shared_threads()
    out_lin = render_linear(srgb_to_linear(img), coc, cfg, threads=threads)
    out = linear_to_srgb(out_lin, run_ranges=threads.run_ranges)
    if grain:
        from refocus.render.grain import add_grain, estimate_noise, grain_seed

        out = add_grain(out, coc, estimate_noise(img), grain_seed(float(np.mean(focus_disparity)), strength))
    # Pixels exactly on the focal plane are returned bit-exact.
    return (out, coc) if return_coc else out
