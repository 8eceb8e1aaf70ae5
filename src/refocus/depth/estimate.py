"""Depth estimated from the photo itself: a monocular network, or the defocus map.

The network runs through Hugging Face ``transformers`` (optional extra
``refocus[depth]``): any depth-estimation checkpoint, by hub id or local folder,
loaded with ``AutoImageProcessor`` + ``AutoModelForDepthEstimation`` (what
``pipeline("depth-estimation")`` uses inside). The raw prediction is kept at the
network's resolution so that the caller's edge-aware upsampling, not a bicubic
resize, brings it to the photo's size.

What the output means depends on the model: Depth Anything (relative), DPT/MiDaS
predict relative *inverse* depth, i.e. disparity; Depth Pro, ZoeDepth, GLPN and
Depth Anything's metric variants predict distance in metres.
"""

from __future__ import annotations

import os
from pathlib import Path
from dataclasses import dataclass

import numpy as np

from refocus.errors import RefocusError

#: Default network: Depth Anything V2 Small (relative disparity, Apache-2.0).
DEFAULT_DEPTH_MODEL = "depth-anything/Depth-Anything-V2-Small-hf"

# model_type values whose output is metric distance rather than relative disparity.
_METRIC_MODEL_TYPES = {"depth_pro", "zoedepth", "glpn"}

_CACHE: dict[tuple[str, str], tuple[object, object]] = {}


@dataclass
class NetworkDepth:
    """Raw network output at its own resolution."""

    values: np.ndarray
    kind: str
    metric: bool
    model: str
    model_type: str


def output_kind(config) -> tuple[str, bool]:
    """(kind, metric) of a depth model's output, from its config."""
    model_type = getattr(config, "model_type", "")
    if model_type in _METRIC_MODEL_TYPES or getattr(config, "depth_estimation_type", "relative") == "metric":
        return "depth", True
    return "disparity", False


def _in_hf_cache(repo_id: str) -> bool:
    import importlib.util

    if importlib.util.find_spec("transformers") is None:
        raise RefocusError("monocular depth needs the optional 'transformers' package: pip install 'refocus[depth]'")
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:
        return False


def load_depth_model(model: str | os.PathLike | None = None, device: str = "cpu", local_only: bool = False):
    """Load (and cache) a transformers depth model and its image processor.

    With ``local_only`` nothing is downloaded: the model must be a local folder or
    already in the Hugging Face cache (used for the implicit default, so that a
    photo without depth never waits on the network).

    Raises
    ------
    RefocusError
        When ``transformers`` is not installed or the model cannot be loaded (not
        downloaded and no internet, wrong id, not a depth model).
    """
    name = str(model or DEFAULT_DEPTH_MODEL)
    key = (name, device)
    if key in _CACHE:
        return _CACHE[key]
    if local_only and not Path(name).exists() and not _in_hf_cache(name):
        # Checked before importing transformers, which alone takes seconds.
        raise RefocusError(f"{name} is not downloaded (fetch it once with --model {name})")
    try:
        import transformers
        from transformers import AutoImageProcessor, AutoModelForDepthEstimation
    except Exception:
        raise RefocusError(
            "monocular depth needs the optional 'transformers' package: pip install 'refocus[depth]'"
        ) from None
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    try:
        processor = AutoImageProcessor.from_pretrained(name, local_files_only=local_only)
        net = AutoModelForDepthEstimation.from_pretrained(name, local_files_only=local_only)
    except Exception as exc:
        if local_only and not Path(name).exists():
            raise RefocusError(f"{name} is not downloaded (fetch it once with --model {name})") from None
        msg = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise RefocusError(
            f"cannot load depth model {name!r} ({msg[:160]}); download it once with internet access or pass --model PATH"
        ) from None
    try:
        net = net.to(device).eval()
    except Exception as exc:
        raise RefocusError(f"cannot move the depth model to device {device!r}: {exc.__class__.__name__}") from None
    _CACHE[key] = (processor, net)
    return processor, net


def estimate_depth_network(
    image: np.ndarray, model: str | os.PathLike | None = None, device: str = "cpu", local_only: bool = False
) -> NetworkDepth:
    """Run a monocular depth network on an sRGB image (H x W x 3 float in [0, 1]).

    Returns the raw prediction (float32, the network's resolution, same aspect
    ratio up to the model's rounding), upright like the input.
    """
    import torch
    from PIL import Image

    processor, net = load_depth_model(model, device, local_only)
    img = np.asarray(image, dtype=np.float32)
    if img.ndim != 3 or img.shape[2] < 3 or img.size == 0:
        raise RefocusError(f"image must be H x W x 3, got shape {img.shape}")
    pil = Image.fromarray(np.round(np.clip(img[..., :3], 0, 1) * 255).astype(np.uint8), "RGB")
    try:
        inputs = processor(images=pil, return_tensors="pt")
        inputs = {k: v.to(device) if hasattr(v, "to") else v for k, v in inputs.items()}
        with torch.inference_mode():
            out = net(**inputs)
    except Exception as exc:
        raise RefocusError(f"depth network failed: {exc.__class__.__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}") from None
    pred = out.predicted_depth
    pred = pred.reshape(pred.shape[-2], pred.shape[-1]) if pred.ndim > 2 else pred
    values = pred.detach().float().cpu().numpy().astype(np.float32)
    kind, metric = output_kind(net.config)
    return NetworkDepth(values, kind, metric, str(model or DEFAULT_DEPTH_MODEL), getattr(net.config, "model_type", "?"))


def estimate_depth_from_defocus(image: np.ndarray) -> np.ndarray:
    """Relative disparity from the photo's own defocus map (DeblurNet's ``defocus_px``).

    Assumption: the photo was focused on its nearest subject, so blur grows with
    distance behind it and disparity falls as blur rises: ``disparity = max(b) - b``.
    That is wrong for anything in front of the focal plane (which is blurred too);
    it is the last resort when no other depth is available.

    Raises
    ------
    RefocusError
        When the deblurring stage is not installed or has no weights.
    """
    try:
        from refocus.deblur import deblur
    except Exception:
        raise RefocusError("the deblurring stage (refocus.deblur.deblur) is not available") from None
    try:
        result = deblur(np.asarray(image, dtype=np.float32))
    except RefocusError:
        raise
    except Exception as exc:
        raise RefocusError(f"defocus estimation failed: {exc.__class__.__name__}") from None
    defocus = result[1] if isinstance(result, tuple) else getattr(result, "defocus_px", None)
    if defocus is None:
        raise RefocusError("the deblurring stage returned no defocus map")
    b = np.abs(np.asarray(defocus, dtype=np.float32))
    if b.ndim != 2 or not np.isfinite(b).any():
        raise RefocusError("the defocus map is empty or invalid")
    b = np.where(np.isfinite(b), b, np.nanmax(b))
    return (float(b.max()) - b).astype(np.float32)
