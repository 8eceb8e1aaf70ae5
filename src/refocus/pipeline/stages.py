"""The calls into the stage packages the pipeline composes: reading the photo,
its depth, DeblurNet. Imports are lazy: the depth and deblur stages are optional
installs, and a missing one is a one-line :class:`RefocusError` or a fallback,
never an ImportError.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from refocus.errors import RefocusError
from refocus.notes import collect_warnings
from refocus.io import ImageInfo, read_image
from refocus.pipeline.config import RefocusConfig


def load_photo(image, cfg: RefocusConfig) -> tuple[np.ndarray, ImageInfo | None, Path | None]:
    """Accept a path or an array; return (sRGB float32 H x W x 3, info, path)."""
    if isinstance(image, (str, os.PathLike)):
        rgb, info = read_image(image, max_pixels=int(cfg.max_megapixels * 1e6))
        return rgb, info, Path(image)
    from refocus.io import as_float_rgb

    arr, alpha = as_float_rgb(image)
    if arr.shape[0] * arr.shape[1] > cfg.max_megapixels * 1e6:
        raise RefocusError(f"image has {arr.shape[0] * arr.shape[1] / 1e6:.0f} megapixels, over the limit of {cfg.max_megapixels:g}")
    return arr, ImageInfo(alpha=alpha), None



def states_a_lens(image_path: Path | None) -> bool:
    """Whether the photo's file says which lens rendered it (a Lens Blur GFocus), cheaply:
    the XMP only, nothing decoded."""
    return _lens_blur_bytes(image_path) is not None


def _lens_blur_bytes(image_path: Path | None) -> bytes | None:
    """The file's bytes when it states a Lens Blur lens (:func:`states_a_lens`), else None."""
    if image_path is None:
        return None
    from refocus.depth.embedded import states_lens_blur

    try:
        data = Path(image_path).read_bytes()
    except OSError:
        return None
    return data if states_lens_blur(data) else None


def load_own_lens(image_path: Path | None, shape: tuple[int, int], depth_source: str, notes: list[str]):
    """The lens the photo's file states (Google Lens Blur's GFocus), in this pipeline's
    terms, or ``None``.

    Only when the depth is the file's own GDepth map: the focal distance is in that
    map's units, and the normalised disparity is that map's (its own range). ``shape``
    is the photo's upright (H, W) at full size.
    """
    if image_path is None or not depth_source.startswith("GDepth"):
        return None
    from refocus.camera import strength_for_normalised_disparity, strength_from_lens_blur
    from refocus.depth import to_disparity
    from refocus.depth.embedded import read_gdepth, read_lens_blur
    from refocus.pipeline.photo import OwnLens

    data = Path(image_path).read_bytes()
    try:
        lens = read_lens_blur(data)
        depth = read_gdepth(data) if lens is not None else None
    except RefocusError as exc:
        notes.append(f"Lens Blur lens not used: {exc}")
        return None
    if lens is None or depth is None:
        return None
    d = to_disparity(depth.values, depth.kind)
    lo, hi = float(d.min()), float(d.max())
    if not hi > lo:
        return None
    from refocus.io.image import exif_orientation, upright_fraction

    k_units = strength_from_lens_blur(lens.blur_at_infinity, lens.focal_distance, max(shape))
    orientation = exif_orientation(data)
    original = _original_of(lens, orientation, shape, notes)
    # GFocus gives the point in the stored frame; everything refocus reports is upright.
    focal_point = None if lens.focal_point is None else upright_fraction(*lens.focal_point, orientation)
    return OwnLens(
        focus_disparity=(1.0 / lens.focal_distance - lo) / (hi - lo),
        strength_px=strength_for_normalised_disparity(k_units, lo, hi),
        blur_at_infinity_px=lens.blur_at_infinity * max(shape),
        focal_distance=lens.focal_distance,
        focal_point=focal_point,
        original=original,
    )


def load_stored_original(image_path: Path | None, shape: tuple[int, int], notes: list[str]) -> np.ndarray | None:
    """The original a Google Lens Blur JPEG stores (GImage) as float32 sRGB, whatever
    depth is used, when the file states its lens and the original fits the photo
    (``shape``, upright H x W); else ``None`` (with a note when it is there but unusable)."""
    data = _lens_blur_bytes(image_path)
    if data is None:
        return None
    from refocus.depth.embedded import read_lens_blur
    from refocus.io.image import exif_orientation

    try:
        lens = read_lens_blur(data)
    except RefocusError as exc:
        notes.append(f"Lens Blur's stored original not used: {exc}")
        return None
    return _original_of(lens, exif_orientation(data), shape, notes) if lens is not None else None


def _original_of(lens, orientation: int, shape: tuple[int, int], notes: list[str]) -> np.ndarray | None:
    """The stored original of a parsed Lens Blur ``lens`` (its file's EXIF ``orientation``), decoded."""
    if lens.original is None:
        return None
    return _decode_original(lens.original, shape, orientation, notes)


def _decode_original(blob: bytes, shape: tuple[int, int], orientation: int, notes: list[str]) -> np.ndarray | None:
    """Lens Blur's stored original as float32 sRGB, turned upright by the photo's
    EXIF ``orientation`` as the photo is, when it is then the photo's size (``shape``,
    upright H x W); else a note and ``None``: it cannot stand in for the photo.

    The original is stored as the sensor saw it, like the photo's own pixels: a
    photo with orientation 6 had its original refused and was deblurred instead
    (found 2026-12-07)."""
    import io

    from PIL import Image

    from refocus.io.image import apply_orientation

    try:
        with Image.open(io.BytesIO(blob)) as im:
            arr = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
        if orientation in range(2, 9):
            arr = np.ascontiguousarray(apply_orientation(arr, orientation))
        if arr.shape[:2] != tuple(shape):
            notes.append(f"Lens Blur's stored original ({arr.shape[1]}x{arr.shape[0]} upright) does not match the photo; not used")
            return None
        return arr
    except Exception as exc:  # a broken embedded JPEG: the photo itself still works
        notes.append(f"Lens Blur's stored original is unreadable ({type(exc).__name__}); not used")
        return None


def run_deblur(image: np.ndarray, device: str = "cpu", progress=None) -> tuple[np.ndarray, np.ndarray | None]:
    """Call DeblurNet; a missing or unusable one raises :class:`RefocusError`.
    ``progress(done, total)`` is called as its windows are done."""
    try:
        from refocus.deblur import deblur
    except ImportError:
        raise RefocusError("DeblurNet is not available in this installation (refocus.deblur.deblur missing)") from None
    # deblur() resolves "auto" (the GPU when there is one) and reports missing or
    # foreign weights and bad devices as RefocusError itself.
    out = deblur(image, device=device, progress=progress)
    # Inside the function: refocuser imports this module at its top.
    from refocus.pipeline.refocuser import checked_deblurred

    # DeblurNet gives any accepted image (grey, RGBA, uint8) back as H x W x 3.
    return checked_deblurred(out, (*np.shape(image)[:2], 3))


class LoadedDisparity(tuple):
    """What :func:`load_disparity` returns: the tuple ``(disparity, source, metric_range)``,
    and in :attr:`own_blur_px`, for a disparity read from the photo's own blur
    (:data:`refocus.depth.DEFOCUS_ESTIMATE_SOURCE`), the blur in px between its nearest
    (sharpest, disparity 1) and farthest (disparity 0) pixels, else None."""

    own_blur_px: float | None = None


def load_disparity(
    image: np.ndarray, image_path: str | os.PathLike | None, cfg: RefocusConfig, notes: list[str]
) -> LoadedDisparity:
    """Normalised disparity (larger = nearer, [0, 1]) at the image's size, its source,
    and the metric disparity range (1/m) when the depth is known in metres (a
    :class:`LoadedDisparity`)."""
    from refocus.depth import DEFOCUS_ESTIMATE_SOURCE
    from refocus.depth.prepare import prepare_disparity

    own_blur_px = None
    with collect_warnings() as caught:
        try:
            from refocus.depth import get_depth
        except ImportError:
            get_depth = None
        if get_depth is not None:
            res = get_depth(
                image_path,
                depth_path=cfg.depth_path,
                depth_kind=cfg.depth_kind,
                model=cfg.depth_model,
                allow_estimate=True,
                image=image,
                refine=True if cfg.align_depth else None,
                device="cpu" if cfg.device == "auto" else cfg.device,
            )
            notes.extend(str(n) for n in getattr(res, "notes", []))
            d = np.asarray(res.disparity(), dtype=np.float32)
            source = str(getattr(res, "source", "depth"))
            if source == DEFOCUS_ESTIMATE_SOURCE:
                v = np.asarray(res.values, dtype=np.float32)  # blur px below the largest reading
                own_blur_px = float(np.nanmax(v) - np.nanmin(v))
            metric = _result_metric_range(res) if getattr(res, "metric", False) else None
            if d.shape != image.shape[:2]:
                d = prepare_disparity(d, "disparity", True, shape=image.shape[:2], guide=image)
        else:
            if cfg.depth_path is None:
                raise RefocusError(
                    "no depth map: pass --depth FILE (depth estimation is not available in this installation)"
                )
            from refocus.io import read_depth_file

            raw = read_depth_file(cfg.depth_path, max_pixels=int(cfg.max_megapixels * 1e6))
            # Float distance maps are taken to be in metres (integer PNGs rarely are).
            metric = _metric_range(raw, "depth") if cfg.depth_kind == "depth" and not Path(cfg.depth_path).suffix.lower() == ".png" else None
            d = prepare_disparity(raw, cfg.depth_kind or "disparity", True, shape=image.shape[:2], guide=image)
            source = f"file {Path(cfg.depth_path).name} ({cfg.depth_kind or 'disparity'})"
    for w in caught:
        notes.append(str(w.message).splitlines()[0])
    if not np.isfinite(d).all():
        raise RefocusError("depth stage returned non-finite disparity")
    out = LoadedDisparity((np.clip(d, 0, 1).astype(np.float32), source, metric))
    out.own_blur_px = own_blur_px
    return out


def load_disparity_from_blur(
    image: np.ndarray, image_path: str | os.PathLike | None, cfg: RefocusConfig, notes: list[str]
) -> LoadedDisparity:
    """A depth component that reads depth from the photo's own blur only: no file, no
    embedded map, no network (:func:`refocus.depth.estimate.estimate_depth_from_defocus`,
    which assumes the nearest subject was in focus). What a photo without depth gets
    offline, kept from the network: ``Refocuser(depth=load_disparity_from_blur)``
    (``refocus bench quality``'s ``pipeline-own-blur``). Its :attr:`~LoadedDisparity.own_blur_px`
    is the blur between the sharpest and the most blurred disparity; a photo in focus
    everywhere raises :class:`RefocusError`, as :func:`load_disparity` does."""
    from refocus.depth import DEFOCUS_ESTIMATE_NOTE, DEFOCUS_ESTIMATE_SOURCE
    from refocus.depth.estimate import AllInFocus, estimate_depth_from_defocus
    from refocus.depth.prepare import prepare_disparity

    try:
        v = np.asarray(estimate_depth_from_defocus(image), dtype=np.float32)  # blur px below the largest reading
    except AllInFocus as exc:
        raise RefocusError(f"no depth for this photo: {exc}") from None
    own_blur_px = float(np.nanmax(v) - np.nanmin(v))
    d = (v - np.nanmin(v)) / max(own_blur_px, 1e-12)
    if d.shape != image.shape[:2]:
        d = prepare_disparity(d, "disparity", True, shape=image.shape[:2], guide=image)
    notes.append(DEFOCUS_ESTIMATE_NOTE)
    out = LoadedDisparity((np.clip(d, 0, 1).astype(np.float32), DEFOCUS_ESTIMATE_SOURCE, None))
    out.own_blur_px = own_blur_px
    return out


def _result_metric_range(res) -> tuple[float, float] | None:
    """The metric disparity range (1/m) of a metric :class:`~refocus.depth.DepthResult`:
    the range its :meth:`~refocus.depth.DepthResult.disparity` is normalised by (the map
    as found), so a distance converts to the plane the renderer puts at that distance.
    The range of the resampled values is narrower wherever edge alignment dropped an
    isolated extreme, and shifted ``--focus-value 2.6m`` onto the 1.8 m plane."""
    try:
        lo, hi = (float(v) for v in res.disparity_range())
    except (AttributeError, TypeError, ValueError):  # a user's depth component's result
        return _metric_range(np.asarray(res.values), res.kind)
    return (lo, hi) if np.isfinite(lo) and np.isfinite(hi) and hi > lo else None


def _metric_range(values: np.ndarray, kind: str) -> tuple[float, float] | None:
    v = np.asarray(values, dtype=np.float64)
    if kind == "depth":
        # As the disparity is made (refocus.depth.to_disparity): +inf is disparity 0.
        v = v[(np.isfinite(v) & (v > 0)) | np.isposinf(v)]
    else:
        v = v[np.isfinite(v) & (v > 0)]
    if v.size == 0:
        return None
    disp = 1.0 / v if kind == "depth" else v
    lo, hi = float(disp.min()), float(disp.max())
    return (lo, hi) if hi > lo else None

