"""Bokeh rendering (the paper's BokehNet stage, done physically).

Conventions (used everywhere in the project):

* images are float32 H x W x 3 sRGB in [0, 1]; blurring happens in linear light;
* disparity is "larger = nearer"; relative maps are min-max normalised to [0, 1];
* the circle of confusion is a signed *radius* in pixels,
  ``coc_px = K * (disparity - focus_disparity)``: positive in front of the focal
  plane, negative behind it. With normalised disparity, K (``strength``) is the CoC
  radius difference between the nearest and the farthest point.

This package renders a linear image and a CoC map (:func:`render_linear`); turning
a depth map into the renderer's disparity is the depth stage's
(:func:`refocus.depth.prepare.prepare_disparity`), and the photo-level call
(photo + disparity + focus -> photo) is :func:`refocus.pipeline.bokeh.render_bokeh`.

Modules: :mod:`~refocus.render.layered` (the algorithm: sweeps and their join),
:mod:`~refocus.render.plan` (layers, scales, kernels, tile geometry, constants),
:mod:`~refocus.render.dense` and :mod:`~refocus.render.sparse` (the two ways a
layer is rendered), :mod:`~refocus.render.highlights` (the highlight boost),
:mod:`~refocus.render.threads` (the threads, owned by the caller) and
:mod:`~refocus.render.backends` (numpy, numba, torch: the only switch between them).
"""

from __future__ import annotations

import math
import sys
import warnings

import numpy as np

from refocus.errors import RefocusError
from refocus.render.config import RenderConfig
from refocus.render.layered import render_layers
from refocus.render.threads import RenderThreads

__all__ = [
    "RenderConfig",
    "RenderThreads",
    "coc_map",
    "render_layers",
    "render_linear",
    "signed_coc_px",
]


def signed_coc_px(disparity, focus_disparity, strength):
    """The CoC formula itself, ``strength * (disparity - focus_disparity)``, on anything
    that broadcasts (numpy arrays, torch tensors, scalars).

    No checks and no casts, so that batched callers (the synthetic pairs, one K and
    focus per item) get the same operations, and the same bits, as :func:`coc_map`.
    """
    return strength * (disparity - focus_disparity)


def coc_map(disparity: np.ndarray, focus_disparity, strength: float) -> np.ndarray:
    """Signed CoC radius in pixels: ``strength * (disparity - focus_disparity)``.

    ``disparity``: (H, W), larger = nearer; ``focus_disparity`` in its units;
    ``strength`` (K) in px per unit of disparity, finite and >= 0. Returns (H, W)
    float32. ``focus_disparity`` may be a band ``(near_end, far_end)`` in either order
    (a focus range, as Lightroom's): everything inside it is sharp and the CoC grows
    from the band's nearer or farther end outside it, ``strength * (d - clip(d, lo, hi))``.
    """
    k = _finite_number(strength, "strength", minimum=0.0)
    if np.ndim(focus_disparity) == 1:
        if np.size(focus_disparity) != 2:
            raise RefocusError(f"a focus range must be two finite numbers, got {np.size(focus_disparity)}")
        lo, hi = sorted(_finite_number(v, "each end of a focus range") for v in focus_disparity)
        d = np.asarray(disparity, dtype=np.float32)
        # Inside the band d equals its own focus: the plane formula with a per-pixel focus.
        return signed_coc_px(d, np.clip(d, np.float32(lo), np.float32(hi)), np.float32(k)).astype(np.float32)
    fd = _finite_number(focus_disparity, "focus_disparity")
    return signed_coc_px(disparity, np.float32(fd), np.float32(k)).astype(np.float32)


def _finite_number(value, name: str, minimum: float | None = None) -> float:
    """``value`` as a float, or a one-line error naming the argument (a NaN focus gave
    an all-NaN CoC map; a string or None strength a numpy TypeError)."""
    try:
        number = float(value) if np.ndim(value) == 0 else float("nan")
    except (TypeError, ValueError):
        number = float("nan")
    if not np.isfinite(number) or (minimum is not None and number < minimum):
        bound = f" >= {minimum:g}" if minimum is not None else ""
        shown = value if isinstance(value, (int, float, np.number)) else repr(value)
        raise RefocusError(f"{name} must be a finite number{bound}, got {shown}")
    return number


#: Largest |CoC| drawn, in image diagonals. A disc wider than the diagonal already
#: covers the whole frame from every pixel, so larger radii change little, but the
#: tile-sparse layers pad the frame by about the radius, so memory grows with its
#: square: a 600x338 photo took 0.27 GB at 1,505 px, 2.1 GB at 15,000 px and was
#: killed at 12.9 GB beyond (a 16-bit disparity read with --no-normalize, -k 5); a
#: 12 MP photo 2.8 GB at 7,500 px (1.5 diagonals). Measured 2026-12-06, this 2-core Xeon.
MAX_COC_DIAGONALS = 2.0


def capped_coc_limit_px(height: int, width: int) -> float:
    """The largest |CoC| the renderer draws for an image of this size, px."""
    return MAX_COC_DIAGONALS * math.hypot(height, width)


def _cap_note(max_abs_px: float, limit_px: float) -> None:
    warnings.warn(
        f"blur radii up to {max_abs_px:,.0f} px asked for; drawn at most {limit_px:,.0f} px "
        f"({MAX_COC_DIAGONALS:g} x the image's diagonal, where a disc already covers the frame): "
        "check the strength and the depth map's scale",
        stacklevel=3,
    )


def _is_tensor(x) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def render_linear(image_linear, coc_px, config: RenderConfig | None = None, *, threads: RenderThreads | None = None):
    """Render from a *linear* image and a signed CoC map (the core entry point).

    numpy arrays (H x W x 3 and H x W) are rendered on the path ``config.device``
    names and come back as a numpy array. torch tensors are rendered on the image's
    own device (``config.device`` is then ignored: the torch path on a GPU, the numpy
    path on the CPU) and come back as an H x W x 3 tensor there: on a GPU nothing
    crosses to the host. ``threads``: the :class:`RenderThreads` the CPU path runs
    on (by default the process's shared ones).
    """
    config = RenderConfig() if config is None else config
    if not isinstance(config, RenderConfig):
        raise RefocusError(f"config must be a RenderConfig, got {type(config).__name__}")
    # Passed on only when given: render_layers's own default is the shared threads.
    kw = {} if threads is None else {"threads": threads}
    if _is_tensor(image_linear) or _is_tensor(coc_px):
        return _render_tensors(image_linear, coc_px, config, kw)
    _check_float_image(np.asarray(image_linear).dtype)
    image_linear = np.asarray(image_linear, dtype=np.float32)
    coc_px = np.asarray(coc_px, dtype=np.float32)
    _check_shapes(image_linear.shape, coc_px.shape)
    if not np.isfinite(coc_px).all():
        raise RefocusError("CoC map contains NaN or infinite values")
    # min and max carry any NaN or inf without a full-size mask; NaN input pixels
    # spread over their whole blur and came back as an image of NaN.
    if not (np.isfinite(image_linear.min()) and np.isfinite(image_linear.max())):
        raise RefocusError("image_linear contains NaN or infinite values")
    max_abs = float(np.abs(coc_px).max())
    if max_abs < 0.05:
        return image_linear.copy()
    limit = capped_coc_limit_px(*coc_px.shape)
    if max_abs > limit:
        _cap_note(max_abs, limit)
        coc_px = np.clip(coc_px, -limit, limit)
    from refocus.render.backends import get_backend

    be = get_backend(config.device)
    try:
        return be.to_numpy(render_layers(image_linear, coc_px, config, be, **kw))
    except Exception as exc:
        if be.name != "torch" or not _is_out_of_memory(exc):
            raise
    # The dense GPU path needs ~300 bytes per pixel (3.7 GB at 12 MP): a large photo
    # can exceed a small card. The CPU path renders it, in bounded memory.
    _release_gpu_memory()
    h, w = coc_px.shape
    warnings.warn(f"out of GPU memory for a {w}x{h} render; rendering it on the CPU instead", stacklevel=2)
    from refocus.render.backends import cpu_backend

    return render_layers(image_linear, coc_px, config, cpu_backend(), **kw)


def _is_out_of_memory(exc: BaseException) -> bool:
    torch = sys.modules.get("torch")
    return (torch is not None and isinstance(exc, torch.cuda.OutOfMemoryError)) or "out of memory" in str(exc).lower()


def _release_gpu_memory() -> None:
    import gc

    gc.collect()  # the failed render's tensors are referenced from the traceback's frames
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def _check_float_image(dtype) -> None:
    """The renderer blurs linear light: integer pixels (uint8 0..255) would all read as
    clipped highlights and come back on their own scale."""
    kind = getattr(dtype, "kind", None)
    if kind is None:  # a torch dtype
        if dtype.is_floating_point:
            return
    elif kind == "f":
        return
    raise RefocusError(
        f"image_linear must be a float array in linear light, got {dtype}: convert a photo with "
        "refocus.io.srgb_to_linear(refocus.io.as_float_rgb(image)[0])"
    )


def _check_shapes(image_shape: tuple, coc_shape: tuple) -> None:
    if len(image_shape) != 3 or image_shape[2] != 3:
        raise RefocusError(f"image must be H x W x 3, got shape {tuple(image_shape)}")
    if tuple(image_shape[:2]) != tuple(coc_shape):
        raise RefocusError(f"CoC map shape {tuple(coc_shape)} does not match image {tuple(image_shape[:2])}")
    if image_shape[0] * image_shape[1] == 0:
        raise RefocusError("image is empty")


def _render_tensors(image_linear, coc_px, config: RenderConfig, kw: dict):
    import torch

    from refocus.render.backends import TorchBackend, cpu_backend

    dev = image_linear.device if _is_tensor(image_linear) else coc_px.device
    _check_float_image(image_linear.dtype if _is_tensor(image_linear) else np.asarray(image_linear).dtype)
    image_linear = torch.as_tensor(image_linear, dtype=torch.float32, device=dev)
    coc_px = torch.as_tensor(coc_px, dtype=torch.float32, device=dev)
    _check_shapes(tuple(image_linear.shape), tuple(coc_px.shape))
    # One host sync for the three checks.
    finite, image_finite, max_abs = torch.stack(
        [torch.isfinite(coc_px).all().float(), torch.isfinite(image_linear).all().float(), coc_px.abs().amax()]
    ).tolist()
    if not finite:
        raise RefocusError("CoC map contains NaN or infinite values")
    if not image_finite:
        raise RefocusError("image_linear contains NaN or infinite values")
    if max_abs < 0.05:
        return image_linear.clone()
    limit = capped_coc_limit_px(*coc_px.shape)
    if max_abs > limit:
        _cap_note(max_abs, limit)
        coc_px = coc_px.clamp(-limit, limit)
    if dev.type == "cpu":  # the numpy path is the fast one on a CPU
        out = render_layers(image_linear.detach().numpy(), coc_px.detach().numpy(), config, cpu_backend(), **kw)
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


