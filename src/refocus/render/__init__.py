"""Bokeh rendering (the paper's BokehNet stage, done physically).

Conventions (used everywhere in the project):

* images are float32 H x W x 3 sRGB in [0, 1]; blurring happens in linear light;
* disparity is "larger = nearer"; relative maps are min-max normalised to [0, 1];
* the circle of confusion is a signed *radius* in pixels,
  ``coc_px = K * (disparity - focus_disparity)``: positive in front of the focal
  plane, negative behind it. With normalised disparity, K (``strength``) is the CoC
  radius difference between the nearest and the farthest point.
"""

from __future__ import annotations

import sys
import warnings
from typing import Literal

import numpy as np

from refocus.aperture import ApertureConfig
from refocus.errors import RefocusError
from refocus.render.config import RenderConfig
from refocus.render.layered import render_layers

__all__ = [
    "RenderConfig",
    "coc_map",
    "focus_at_point",
    "prepare_disparity",
    "render_bokeh",
    "render_layers",
    "render_linear",
]


def prepare_disparity(
    depth: np.ndarray,
    kind: Literal["disparity", "depth"] = "disparity",
    normalize: bool = True,
    shape: tuple[int, int] | None = None,
    guide: np.ndarray | None = None,
) -> np.ndarray:
    """Turn a depth or disparity map into the renderer's disparity.

    ``kind="depth"`` converts distance to disparity with 1/z. Non-finite values are
    filled from their neighbours (an all-invalid map is an error). With
    ``normalize`` the result is min-max scaled to [0, 1]; a constant map becomes all
    zeros (everything on one plane: nothing will blur) with a warning. When
    ``shape`` differs from the map's, it is resampled to it (edge-aware when a
    ``guide`` image is given), with a warning. (:func:`render_bokeh` returns the
    image unchanged for a constant relative map.)
    """
    from refocus.io.depthfile import as_depth_map

    d = as_depth_map(depth)
    finite = np.isfinite(d)
    if kind == "depth":
        finite &= d > 0
    if not finite.any():
        raise RefocusError("depth map has no valid (finite) values")
    if not finite.all():
        n_bad = int((~finite).sum())
        warnings.warn(f"depth map has {n_bad} invalid values (NaN/inf/non-positive); filled from neighbours", stacklevel=2)
        from scipy.ndimage import distance_transform_edt

        idx = distance_transform_edt(~finite, return_distances=False, return_indices=True)
        d = d[tuple(idx)]
    if kind == "depth":
        d = 1.0 / d
    elif kind != "disparity":
        raise RefocusError(f"unknown depth kind {kind!r}: use disparity or depth")
    # The range of the map as given: resampling (edge alignment removes isolated
    # extremes) must not change what a normalised focus value or K means.
    lo, hi = float(d.min()), float(d.max())
    if shape is not None and tuple(shape) != d.shape:
        warnings.warn(f"depth map is {d.shape[1]}x{d.shape[0]}, image is {shape[1]}x{shape[0]}: resampling the depth", stacklevel=2)
        d = resample_depth(d, shape, guide)
    if normalize:
        if hi - lo < 1e-12:
            warnings.warn("depth map is constant: the whole image lies on one plane", stacklevel=2)
            return np.zeros_like(d)
        d = np.clip((d - lo) / (hi - lo), 0.0, 1.0)
    return d.astype(np.float32)


def resample_depth(d: np.ndarray, shape: tuple[int, int], guide: np.ndarray | None = None) -> np.ndarray:
    """Resize a depth map to ``shape`` (H, W); edge-aware when a guide image is given."""
    try:
        from refocus.depth.refine import upsample_to_guide  # provided by the depth stage
    except Exception:  # pragma: no cover - the depth stage may not define it
        upsample_to_guide = None
    if guide is not None and upsample_to_guide is not None:
        return upsample_to_guide(d, guide)
    from PIL import Image

    img = Image.fromarray(d.astype(np.float32), mode="F")
    return np.asarray(img.resize((shape[1], shape[0]), Image.BILINEAR), dtype=np.float32)


# The focus logic lives in the depth stage; re-exported here for existing callers.
from refocus.depth.focus import focus_at_point  # noqa: E402


def coc_map(disparity: np.ndarray, focus_disparity, strength: float) -> np.ndarray:
    """Signed CoC radius in pixels: ``strength * (disparity - focus_disparity)``.

    ``focus_disparity`` may be a band ``(near_end, far_end)`` in either order (a focus
    range, as Lightroom's): everything inside it is sharp and the CoC grows from the
    band's nearer or farther end outside it, ``strength * (d - clip(d, lo, hi))``.
    """
    if not np.isfinite(strength) or strength < 0:
        raise RefocusError(f"strength must be a finite number >= 0, got {strength}")
    if np.ndim(focus_disparity) == 1:
        lo, hi = sorted(float(v) for v in focus_disparity)
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise RefocusError("a focus range must be two finite numbers")
        d = np.asarray(disparity, dtype=np.float32)
        return (np.float32(strength) * (d - np.clip(d, np.float32(lo), np.float32(hi)))).astype(np.float32)
    return (np.float32(strength) * (disparity - np.float32(focus_disparity))).astype(np.float32)


def _is_tensor(x) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def render_linear(image_linear, coc_px, config: RenderConfig | None = None):
    """Render from a *linear* image and a signed CoC map (the core entry point).

    numpy arrays (H x W x 3 and H x W) are rendered on the path ``config.device``
    names and come back as a numpy array. torch tensors are rendered on the image's
    own device (``config.device`` is then ignored: the torch path on a GPU, the numpy
    path on the CPU) and come back as an H x W x 3 tensor there: on a GPU nothing
    crosses to the host.
    """
    config = config or RenderConfig()
    if _is_tensor(image_linear) or _is_tensor(coc_px):
        return _render_tensors(image_linear, coc_px, config)
    image_linear = np.asarray(image_linear, dtype=np.float32)
    coc_px = np.asarray(coc_px, dtype=np.float32)
    _check_shapes(image_linear.shape, coc_px.shape)
    if not np.isfinite(coc_px).all():
        raise RefocusError("CoC map contains NaN or infinite values")
    if float(np.abs(coc_px).max()) < 0.05:
        return image_linear.copy()
    from refocus.render.backend import get_backend

    be = get_backend(config.device)
    try:
        return be.to_numpy(render_layers(image_linear, coc_px, config, be))
    except Exception as exc:
        if be.name != "torch" or not _is_out_of_memory(exc):
            raise
    # The dense GPU path needs ~300 bytes per pixel (3.7 GB at 12 MP): a large photo
    # can exceed a small card. The CPU path renders it, in bounded memory.
    _release_gpu_memory()
    h, w = coc_px.shape
    warnings.warn(f"out of GPU memory for a {w}x{h} render; rendering it on the CPU instead", stacklevel=2)
    from refocus.render.backend import NumpyBackend

    return render_layers(image_linear, coc_px, config, NumpyBackend())


def _is_out_of_memory(exc: BaseException) -> bool:
    torch = sys.modules.get("torch")
    return (torch is not None and isinstance(exc, torch.cuda.OutOfMemoryError)) or "out of memory" in str(exc).lower()


def _release_gpu_memory() -> None:
    import gc

    gc.collect()  # the failed render's tensors are referenced from the traceback's frames
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def _check_shapes(image_shape: tuple, coc_shape: tuple) -> None:
    if len(image_shape) != 3 or image_shape[2] != 3:
        raise RefocusError(f"image must be H x W x 3, got shape {tuple(image_shape)}")
    if tuple(image_shape[:2]) != tuple(coc_shape):
        raise RefocusError(f"CoC map shape {tuple(coc_shape)} does not match image {tuple(image_shape[:2])}")
    if image_shape[0] * image_shape[1] == 0:
        raise RefocusError("image is empty")


def _render_tensors(image_linear, coc_px, config: RenderConfig):
    import torch

    from refocus.render.backend import TorchBackend

    dev = image_linear.device if _is_tensor(image_linear) else coc_px.device
    image_linear = torch.as_tensor(image_linear, dtype=torch.float32, device=dev)
    coc_px = torch.as_tensor(coc_px, dtype=torch.float32, device=dev)
    _check_shapes(tuple(image_linear.shape), tuple(coc_px.shape))
    # One host sync for both checks.
    finite, max_abs = torch.stack([torch.isfinite(coc_px).all().float(), coc_px.abs().amax()]).tolist()
    if not finite:
        raise RefocusError("CoC map contains NaN or infinite values")
    if max_abs < 0.05:
        return image_linear.clone()
    if dev.type == "cpu":  # the numpy path is the fast one on a CPU
        from refocus.render.backend import NumpyBackend

        out = render_layers(image_linear.detach().numpy(), coc_px.detach().numpy(), config, NumpyBackend())
        return torch.from_numpy(out)
    return _render_on_device(image_linear, coc_px, config, TorchBackend(str(dev)))


def _render_on_device(image_linear, coc_px, config: RenderConfig, backend):
    """Tensors in, tensor out on the backend's device; out of memory is a one-line error."""
    try:
        return render_layers(image_linear, coc_px, config, backend)
    except Exception as exc:
        if not _is_out_of_memory(exc):
            raise
    _release_gpu_memory()
    h, w = coc_px.shape
    raise RefocusError(
        f"out of GPU memory for a {w}x{h} render (about {300 * h * w / 1e9:.1f} GB needed); "
        "pass numpy arrays (or device='cpu') to render it on the CPU"
    )


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
):
    """Render a new depth of field onto an all-in-focus photo.

    Parameters
    ----------
    image:
        H x W x 3 float32 sRGB in [0, 1] (uint8/uint16 are accepted and scaled).
    disparity:
        Disparity (larger = nearer), or distance with ``depth_kind="depth"``. Another
        size is resampled to the image's, with a warning.
    strength:
        K, in pixels: CoC radius per unit of (normalised) disparity.
    focus_disparity, focus_xy:
        The focal plane, as a disparity in the renderer's units (normalised to [0, 1]
        by default) or as a pixel (x, y) whose local median disparity is used. With
        neither, the disparity median is used.
    aperture:
        An :class:`ApertureConfig`, or ``"disc"``, ``"polygon"`` or an image path.
    highlight_threshold, highlight_gain, cats_eye, quality, device:
        See :class:`RenderConfig` and :class:`ApertureConfig`.
    return_coc:
        Also return the signed CoC map (px).

    Returns
    -------
    The rendered photo, float32 H x W x 3 sRGB in [0, 1] (and the CoC map).
    """
    from refocus.aperture import aperture_from_spec
    from refocus.io.color import linear_to_srgb, srgb_to_linear

    from refocus.io import as_float_rgb

    img, _ = as_float_rgb(image)
    if not np.isfinite(strength) or strength < 0:
        raise RefocusError(f"strength must be a finite number >= 0, got {strength}")
    disp = prepare_disparity(disparity, depth_kind, normalize, shape=img.shape[:2], guide=img)
    if normalize and float(disp.max()) == float(disp.min()):
        # A constant map (already warned about) puts everything on one plane: with
        # relative depth there is no second plane to blur, whatever the focus.
        coc = np.zeros(img.shape[:2], np.float32)
        return (img.copy(), coc) if return_coc else img.copy()
    if focus_disparity is None:
        focus_disparity = focus_at_point(disp, *focus_xy) if focus_xy is not None else float(np.median(disp))
    if not np.isfinite(focus_disparity):
        raise RefocusError("focus disparity must be finite")
    if aperture is None:
        aperture = ApertureConfig()
    elif isinstance(aperture, str):
        aperture = aperture_from_spec(aperture)
    if cats_eye is not None:
        aperture = aperture.model_copy(update={"cats_eye": float(cats_eye)})
    overrides = {"aperture": aperture, "quality": quality, "device": device}
    if highlight_threshold is not None:
        overrides["highlight_threshold"] = highlight_threshold
    if highlight_gain is not None:
        overrides["highlight_gain"] = highlight_gain
    try:
        cfg = RenderConfig(**overrides)
    except Exception as exc:
        raise RefocusError(f"invalid render settings: {str(exc).splitlines()[0]}") from None
    coc = coc_map(disp, focus_disparity, strength)
    out_lin = render_linear(srgb_to_linear(img), coc, cfg)
    out = linear_to_srgb(out_lin)
    # Pixels exactly on the focal plane are returned bit-exact.
    return (out, coc) if return_coc else out
