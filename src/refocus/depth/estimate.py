"""Depth estimated from the photo itself: a monocular network, or the defocus map.

The network runs through Hugging Face ``transformers`` (installed with refocus): any
depth-estimation checkpoint, by hub id (downloaded on first use, with a progress
bar, into the Hugging Face cache) or local folder,
loaded with ``AutoImageProcessor`` + ``AutoModelForDepthEstimation`` (what
``pipeline("depth-estimation")`` uses inside). The raw prediction is kept at the
network's resolution so that the caller's edge-aware upsampling, not a bicubic
resize, brings it to the photo's size.

What the output means depends on the model: Depth Anything (relative), DPT/MiDaS
predict relative *inverse* depth, i.e. disparity; Depth Pro, ZoeDepth, GLPN and
Depth Anything's metric variants predict distance in metres; Depth Pro predicts
inverse depth, metric (1/m) through its field-of-view head.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from dataclasses import dataclass

import numpy as np

from refocus.errors import RefocusError

#: Default network: Depth Anything V2 Small (relative disparity, Apache-2.0).
DEFAULT_DEPTH_MODEL = "depth-anything/Depth-Anything-V2-Small-hf"
#: Seconds the hub may take to answer before the network is taken to be unreachable.
HUB_PROBE_TIMEOUT_S = 3.0
#: Seconds an unreachable hub is believed unreachable before it is probed again: a batch
#: of photos without depth, offline behind a network that drops packets, waited out the
#: probe once per photo (HUB_PROBE_TIMEOUT_S each).
HUB_RETRY_AFTER_S = 60.0
#: Endpoint -> (monotonic time of the failed probe, why).
_UNREACHABLE: dict[str, tuple[float, str]] = {}
#: Files a depth checkpoint needs (what is downloaded on first use).
_MODEL_FILES = ["*.json", "*.safetensors", "*.txt"]

# model_type values whose output is metric distance rather than relative disparity.
_METRIC_MODEL_TYPES = {"zoedepth", "glpn"}

_CACHE: dict[tuple[str, str], tuple[object, object]] = {}


#: The photo's blur is read on a copy of at most this many pixels. Decisions then do
#: not depend on the photo's size: at its own size the former statistic (90th
#: percentile of 8 x 8 region medians) of the Olympus PEN E-P3 corpus photo (a blurred
#: thumb and background) read 3.83 / 2.42 / 0.18 / 1.34 px at 0.3 / 0.5 / 0.8 / 1.2 MP,
#: and at 3 MP DeblurNet's map reads a phone photo's own softness as blur (HTC One
#: fern, in focus: 3.6 % of its pixels over 3 px at 0.5 MP, 43.6 % at 3 MP). The
#: coarse map (:data:`DEFOCUS_MAP_LONG_SIDE_PX`) needs no more, and DeblurNet's map
#: saturates less on a smaller copy (a 60 px blur at 12 MP is 12 px here).
DEFOCUS_WORK_PIXELS = 500_000
#: Blur (px, on the working copy) above which DeblurNet's map counts a pixel as defocused.
DEFOCUS_READ_PX = 3.0
#: Share of the pixels that must read defocused for the photo's blur to tell depth.
#: Measured on the working copy (px > 3): the 39 readable exif-corpus photos, the three
#: BokehMe photos and the demo; the 11 judged by eye to have real defocus (Epson
#: PhotoPC 3000Z, Kodak DC3400, Nikon Coolpix 775, Olympus PEN E-P3 and S760, Panasonic
#: LC70, Pentax Optio 330, Sony Mavica, Sony Ericsson C905c, FujiFilm 4900Z, bokehme-21)
#: read 5.6-26 %, the others 0-3.6 % (HTC One 3.6, iPhone 4 1.9, Canon SD600 1.6).
#: skimage: camera 0.0, rocket 0.0, coffee 0.2 %; astronaut 8.9 and chelsea 24.1 % (soft backgrounds).
DEFOCUS_MIN_SHARE = 0.05

#: Long side (px) of the coarse map the blur-derived disparity is reduced to before it
#: is snapped back to the photo's colour edges (:func:`refocus.depth.refine.upsample_to_guide`).
#: A blur reading is a property of a neighbourhood at least as wide as the blur, and the
#: per-pixel map has jagged steps inside smooth content that render as hard-edged
#: patches (an exif-corpus photo, Epson PhotoPC 3000Z: a blurred leaf cut into sharp
#: and blurred pieces). Chosen on hci-antinous (6 cases) and 12 ray-traced scenes
#: (``make_scene`` seeds 777000-777011): Spearman correlation with the true |CoC| 0.461
#: for the per-pixel map, 0.504 / 0.477 / 0.469 at 24 / 48 / 96 px; 48 keeps more of the
#: layout than 24 for a small loss.
DEFOCUS_MAP_LONG_SIDE_PX = 48


class AllInFocus(RefocusError):
    """The photo's blur is the same everywhere (within noise): it tells nothing about depth."""


class ModelUnavailable(RefocusError):
    """The depth model is neither local nor downloadable now (offline, hub unreachable)."""


@dataclass
class NetworkDepth:
    """Raw network output at its own resolution."""

    values: np.ndarray
    kind: str
    metric: bool
    model: str
    model_type: str


def output_kind(config) -> tuple[str, bool]:
    """(kind, metric) of a depth model's output, from its config.

    Depth Pro predicts inverse depth; with its field-of-view head it is metric (1/m,
    see :func:`estimate_depth_network`).
    """
    model_type = getattr(config, "model_type", "")
    if model_type == "depth_pro":
        return "disparity", bool(getattr(config, "use_fov_model", False))
    if model_type in _METRIC_MODEL_TYPES or getattr(config, "depth_estimation_type", "relative") == "metric":
        return "depth", True
    return "disparity", False


def _hub_offline() -> bool:
    """True when the user told Hugging Face not to use the network (read at call time)."""
    return any(
        os.environ.get(v, "").strip().upper() in {"1", "ON", "YES", "TRUE"} for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def _cached_snapshot(repo_id: str) -> str | None:
    """The local snapshot folder of a hub model when its config and weights are cached."""
    try:
        from huggingface_hub import snapshot_download

        path = snapshot_download(repo_id, local_files_only=True)
    except Exception:
        return None
    p = Path(path)
    if (p / "config.json").is_file() and (any(p.glob("*.safetensors")) or any(p.glob("*.bin"))):
        return str(p)
    return None


def hub_reachable(repo_id: str, timeout_s: float = HUB_PROBE_TIMEOUT_S) -> tuple[bool, str]:
    """One short request to the hub (no retries): (reachable, why not).

    ``huggingface_hub``'s own downloads retry an unreachable host for about a minute
    and a half; this answers within ``timeout_s``.
    """
    import urllib.error
    import urllib.request

    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    req = urllib.request.Request(f"{endpoint}/api/models/{repo_id}", method="HEAD")
    try:
        urllib.request.urlopen(req, timeout=timeout_s).close()
        return True, ""
    except urllib.error.HTTPError as exc:
        # The hub answered: the network works; the model may not exist or be gated.
        return True, f"HTTP {exc.code}"
    except Exception as exc:
        reason = getattr(exc, "reason", exc)
        return False, (str(reason).splitlines()[0][:80] if str(reason) else exc.__class__.__name__)


def _probe_hub(repo_id: str) -> tuple[bool, str]:
    """:func:`hub_reachable`, with a failure remembered for :data:`HUB_RETRY_AFTER_S`."""
    import time

    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    failed = _UNREACHABLE.get(endpoint)
    if failed is not None and time.monotonic() - failed[0] < HUB_RETRY_AFTER_S:
        return False, failed[1]
    ok, why = hub_reachable(repo_id)
    if ok:
        _UNREACHABLE.pop(endpoint, None)
    else:
        _UNREACHABLE[endpoint] = (time.monotonic(), why)
    return ok, why


def unavailable_message(name: str, why: str, offline_set: bool = False) -> str:
    """One line: the model cannot be had now, and what the user can do."""
    net = "unset HF_HUB_OFFLINE and connect once to download it" if offline_set else (
        "connect once to download it (HF_HUB_OFFLINE=1 skips this check)"
    )
    return f"depth network {name} is not downloaded and cannot be fetched ({why}): {net}, or pass --depth-model PATH or --depth FILE"


def resolve_model(name: str, download: bool = True) -> str:
    """A local folder for ``name`` (a folder, a cached hub model, or a fresh download).

    The download (on first use) shows huggingface_hub's progress bar and is cached
    in the Hugging Face cache. Offline (``HF_HUB_OFFLINE=1``) or with the hub
    unreachable (one probe, :data:`HUB_PROBE_TIMEOUT_S`), raises
    :class:`ModelUnavailable` within seconds instead of retrying.
    """
    name = os.path.expanduser(name)  # "~/models/x" typed in the UI: no shell expands it there
    try:
        found = Path(name).exists()
    except OSError as exc:  # a 300-character name: "File name too long"
        shown = name if len(name) <= 60 else name[:57] + "..."
        raise RefocusError(f"cannot load depth model {shown!r}: {exc.strerror or exc}") from None
    if found:
        if not Path(name).is_dir():
            raise RefocusError(f"cannot load depth model {name!r}: it is a file; give the folder of a saved model or a hub id ORG/NAME")
        return name
    if name.startswith((".", "/", "~")) or name.count("/") != 1 or os.sep in name.replace("/", ""):
        raise RefocusError(f"cannot load depth model {name!r} (no such folder, and not a hub id ORG/NAME)")
    cached = _cached_snapshot(name)
    if cached is not None:
        return cached
    if _hub_offline():
        raise ModelUnavailable(unavailable_message(name, "HF_HUB_OFFLINE is set", offline_set=True))
    if not download:
        raise ModelUnavailable(unavailable_message(name, "downloads not allowed"))
    ok, why = _probe_hub(name)
    if not ok:
        raise ModelUnavailable(unavailable_message(name, f"the Hugging Face hub is unreachable: {why}"))
    if why:
        raise RefocusError(f"cannot load depth model {name!r} (the hub answered {why}): check the model id, or pass --depth-model PATH")
    from huggingface_hub import snapshot_download

    print(f"downloading depth network {name} (once; cached by Hugging Face)", file=sys.stderr, flush=True)
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "5")
    os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "10")
    try:
        return snapshot_download(name, allow_patterns=_MODEL_FILES)
    except Exception as exc:
        msg = str(exc).splitlines()[0][:160] if str(exc) else exc.__class__.__name__
        raise ModelUnavailable(unavailable_message(name, f"download failed: {msg}")) from None


class _SquareProcessor:
    """Resize to the configured size (bilinear), scale to [0, 1], normalise (Depth Pro's
    preprocessing, read from ``preprocessor_config.json``), without torchvision."""

    def __init__(self, path: str):
        import json

        cfg = json.loads((Path(path) / "preprocessor_config.json").read_text())
        size = cfg.get("size", {"height": 1536, "width": 1536})
        self.size = (int(size["width"]), int(size["height"]))
        self.mean = np.asarray(cfg.get("image_mean", [0.5] * 3), np.float32)
        self.std = np.asarray(cfg.get("image_std", [0.5] * 3), np.float32)
        self.scale = float(cfg.get("rescale_factor", 1 / 255))

    def __call__(self, images, return_tensors="pt"):
        import torch
        from PIL import Image

        arr = np.asarray(images.convert("RGB").resize(self.size, Image.BILINEAR), np.float32) * self.scale
        arr = (arr - self.mean) / self.std
        return {"pixel_values": torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))[None]}


def load_depth_model(model: str | os.PathLike | None = None, device: str = "cpu", local_only: bool = False):
    """Load (and cache) a transformers depth model and its image processor.

    The model (default :data:`DEFAULT_DEPTH_MODEL`) is a local folder or a hub id,
    downloaded on first use (:func:`resolve_model`); with ``local_only`` nothing is
    downloaded.

    Raises
    ------
    ModelUnavailable
        When the model is not downloaded and the hub cannot be reached now.
    RefocusError
        When the model cannot be loaded (wrong id, not a depth model, broken files).
    """
    name = str(model or DEFAULT_DEPTH_MODEL)
    key = (name, device)
    if key in _CACHE:
        return _CACHE[key]
    path = resolve_model(name, download=not local_only)
    try:
        import transformers
        from transformers import AutoImageProcessor, AutoModelForDepthEstimation
    except Exception:
        raise RefocusError("monocular depth needs the 'transformers' package: pip install transformers") from None
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    try:
        net = AutoModelForDepthEstimation.from_pretrained(path, local_files_only=True)
        try:
            processor = AutoImageProcessor.from_pretrained(path, local_files_only=True)
        except Exception:
            # transformers' Depth Pro processor needs torchvision; its preprocessing
            # (resize to a square, rescale, normalise) is simple enough to do here.
            if getattr(net.config, "model_type", "") != "depth_pro":
                raise
            processor = _SquareProcessor(path)
    except Exception as exc:
        msg = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise RefocusError(
            f"cannot load depth model {name!r} ({msg[:160]}); download it once with internet access or pass --depth-model PATH"
        ) from None
    try:
        net = net.to(device).eval()
    except Exception as exc:
        raise RefocusError(f"cannot move the depth model to device {device!r}: {exc.__class__.__name__}") from None
    _CACHE[key] = (processor, net)
    return processor, net


#: Short side (px) of the default network's input (Depth Anything V2's processor).
_NETWORK_SHORT_SIDE_PX = 518


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
    # Networks see a few hundred pixels (Depth Anything: 518 on the short side):
    # average whole blocks down to about twice that first, so that the 8-bit
    # conversion and the processor's bicubic resize run on ~1 MP, not 12 (measured,
    # 12 MP: the network step 1.66 -> 1.22 s in a profile, the stage's median 2.26 ->
    # 2.20 s and its peak 1.50 -> 1.23 GB). The processor's resize then sees the same
    # picture, a little smoother.
    img = img[..., :3]
    r = int(min(img.shape[0], img.shape[1]) // (2 * _NETWORK_SHORT_SIDE_PX))
    if r >= 2:
        h, w = img.shape[0] // r * r, img.shape[1] // r * r
        # Strided adds, r x r of them: a reshape + mean over two axes took 0.46 s of
        # the stage's 2 s at 12 MP, these 0.14 s.
        acc = np.zeros((h // r, w // r, 3), np.float32)
        for dy in range(r):
            for dx in range(r):
                acc += img[dy:h:r, dx:w:r, :3]
        acc *= np.float32(1.0 / (r * r))
        img = acc
    pil = Image.fromarray(np.round(np.clip(img, 0, 1) * 255).astype(np.uint8), "RGB")
    try:
        inputs = processor(images=pil, return_tensors="pt")
        inputs = {k: v.to(device) if hasattr(v, "to") else v for k, v in inputs.items()}
        with torch.inference_mode():
            out = net(**inputs)
    except Exception as exc:
        raise RefocusError(f"depth network failed: {exc.__class__.__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}") from None
    pred = out.predicted_depth
    pred = pred.reshape(pred.shape[-2], pred.shape[-1]) if pred.ndim > 2 else pred
    kind, metric = output_kind(net.config)
    fov = getattr(out, "field_of_view", None)
    if getattr(net.config, "model_type", "") == "depth_pro":
        # Canonical inverse depth; times W / f_px = 2 tan(fov / 2) it is 1/m
        # (transformers' DepthProImageProcessor.post_process_depth_estimation).
        metric = fov is not None
        if metric:
            pred = pred * 2.0 * torch.tan(0.5 * torch.deg2rad(fov.reshape(()).float()))
        pred = torch.clamp(pred, min=1e-4, max=1e4)
    values = pred.detach().float().cpu().numpy().astype(np.float32)
    return NetworkDepth(values, kind, metric, str(model or DEFAULT_DEPTH_MODEL), getattr(net.config, "model_type", "?"))


def defocused_share(defocus_px: np.ndarray) -> float:
    """Share of the pixels whose measured blur exceeds :data:`DEFOCUS_READ_PX` (read
    on the working copy, :data:`DEFOCUS_WORK_PIXELS`). In-focus texture reads near 0;
    a photo with real defocus has whole regions above it."""
    return float(np.mean(np.abs(np.asarray(defocus_px, dtype=np.float32)) > DEFOCUS_READ_PX))


def _working_copy(image: np.ndarray) -> tuple[np.ndarray, float]:
    """The photo at most :data:`DEFOCUS_WORK_PIXELS` large, and its scale.

    Shrunk with Pillow's antialiasing bilinear filter, as a camera's own downscaling
    would: an area average keeps aliasing that DeblurNet reads as blur (a photo of a
    text screen, exif-corpus Pentax *ist D: 6.6 % of its pixels over 3 px after an
    area average, 0 % after this filter).
    """
    from PIL import Image

    h, w = image.shape[:2]
    scale = min(1.0, float(np.sqrt(DEFOCUS_WORK_PIXELS / (h * w))))
    if scale >= 1.0:
        return image, 1.0
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    chans = [np.asarray(Image.fromarray(np.ascontiguousarray(image[..., c], dtype=np.float32), "F").resize(size, Image.BILINEAR))
             for c in range(3)]
    return np.clip(np.stack(chans, axis=2), 0.0, 1.0).astype(np.float32), size[0] / w


def estimate_depth_from_defocus(image: np.ndarray) -> np.ndarray:
    """Relative disparity from the photo's own defocus map (DeblurNet's ``defocus_px``).

    Assumption: the photo was focused on its nearest subject, so blur grows with
    distance behind it and disparity falls as blur rises: ``disparity = max(b) - b``
    (b in px of ``image``), read on a copy of at most :data:`DEFOCUS_WORK_PIXELS`,
    reduced to a coarse map (:data:`DEFOCUS_MAP_LONG_SIDE_PX`) and snapped back to the
    photo's colour edges.
    That is wrong for anything in front of the focal plane (which is blurred too);
    it is the last resort when no other depth is available.

    Raises
    ------
    AllInFocus
        When the photo is sharp everywhere (:func:`defocused_share` under
        :data:`DEFOCUS_MIN_SHARE`): its "depth" would follow texture, not distance.
    RefocusError
        When the deblurring stage is not installed or has no weights.
    """
    try:
        from refocus.deblur import deblur
    except Exception:
        raise RefocusError("the deblurring stage (refocus.deblur.deblur) is not available") from None
    from refocus.depth.refine import _resize, upsample_to_guide

    image = np.asarray(image, dtype=np.float32)
    h, w = image.shape[:2]
    work, scale = _working_copy(image)
    try:
        result = deblur(work)
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
    share = defocused_share(b)
    if share < DEFOCUS_MIN_SHARE:
        raise AllInFocus(
            f"the photo is in focus everywhere (blur over {DEFOCUS_READ_PX:g} px on {100 * share:.1f} % of it, "
            f"under the {100 * DEFOCUS_MIN_SHARE:g} % that real defocus shows), so its blur cannot tell distance"
        )
    d = ((float(b.max()) - b) / scale).astype(np.float32)  # px of the photo itself
    hw, ww = d.shape
    s = DEFOCUS_MAP_LONG_SIDE_PX / max(hw, ww)
    if s >= 1.0 and d.shape == (h, w):
        return d
    coarse = _resize(d, (max(1, round(hw * s)), max(1, round(ww * s)))) if s < 1.0 else d
    return upsample_to_guide(coarse, image).astype(np.float32)
