"""DeblurNet inference: weights loading, tiled prediction, the optional refiner hook."""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np
import torch

from refocus.deblur.model import DeblurNet, DeblurNetConfig
from refocus.errors import RefocusError

if TYPE_CHECKING:
    from refocus.deblur.guard import GuardConfig

#: File name of the shipped weights inside the package folder ``refocus/weights``.
WEIGHTS_NAME = "deblurnet.pt"

_cache: dict[tuple[str, str], DeblurNet] = {}
_lock = threading.Lock()


@runtime_checkable
class Refiner(Protocol):
    """A second stage run after DeblurNet, e.g. a conditional diffusion model.

    It receives the defocused input and DeblurNet's prediction and returns its own
    (all_in_focus, defocus_px), same shapes and conventions (float32 H x W x 3 sRGB
    in [0, 1]; float32 H x W unsigned CoC radius in px). DeblurNet's output is a
    good starting point / condition for a generative model, which can add the
    texture a regression network averages away.
    """

    def refine(
        self, image: np.ndarray, all_in_focus: np.ndarray, defocus_px: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]: ...


def default_weights_path() -> Path:
    """Path of the weights shipped in the package (may not exist in a bare checkout)."""
    from importlib import resources

    return Path(str(resources.files("refocus").joinpath("weights", WEIGHTS_NAME)))


def resolve_device(device: str) -> torch.device:
    """``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` -> a usable torch device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RefocusError("device 'cuda' requested but no CUDA GPU is available; use --device cpu")
        return torch.device(device)
    if device != "cpu":
        raise RefocusError(f"unknown device {device!r}: use cpu, cuda or auto")
    return torch.device("cpu")


def load_model(weights: str | Path | None = None, device: str = "cpu") -> DeblurNet:
    """Load DeblurNet weights (default: the shipped ones), cached per (file, device).

    Raises
    ------
    RefocusError
        When the file is missing or is not a DeblurNet weights file.
    """
    path = Path(weights) if weights is not None else default_weights_path()
    dev = resolve_device(device)
    key = (str(path.resolve()), str(dev))
    with _lock:
        if key in _cache:
            return _cache[key]
        if not path.is_file():
            hint = "pass --weights PATH" if weights is None else "check the path"
            raise RefocusError(f"DeblurNet weights not found: {path} ({hint})")
        try:
            # weights_only: a weights file from elsewhere is a pickle, and a full unpickle
            # would run whatever code it names before we could check its keys.
            blob = torch.load(path, map_location="cpu", weights_only=True)
            model = DeblurNet(DeblurNetConfig.from_dict(blob["config"]))
            model.load_state_dict(blob["state_dict"])
            guard_config = _guard_of(blob)
        except Exception as exc:
            raise RefocusError(f"{path} is not a DeblurNet weights file ({exc.__class__.__name__})") from None
        model.eval().to(dev)
        if dev.type == "cpu":
            # oneDNN's convolutions run faster on channels-last tensors, the same output
            # to 2e-7 (predict_tensors hands the input over in that layout too). On 2
            # Xeon cores: a 1280 px window 1.25 -> 0.98 s; `refocus bench speed --stages
            # deblur` (12 MP, with the CLI's allocator tuning) 17.8-18.9 -> 16.1-17.5 s.
            model.to(memory_format=torch.channels_last)
        # The guard's parameters are chosen per network (training/tune_guard.py), so a
        # weights file may carry its own; files without one use GuardConfig's defaults.
        model.guard_config = guard_config
        for p in model.parameters():
            p.requires_grad_(False)
        _cache[key] = model
        return model


def _guard_of(blob: dict) -> "GuardConfig":
    """The guard a weights file was tuned with (its ``"guard"`` entry), else the defaults."""
    from refocus.deblur.guard import GuardConfig

    return GuardConfig(**blob["guard"]) if blob.get("guard") else GuardConfig()


def _as_rgb(image: np.ndarray) -> np.ndarray:
    from refocus.io import as_float_rgb

    arr = np.asarray(image)
    # Unlike the renderer, the network must not guess at missing pixels.
    if arr.dtype.kind == "f" and arr.ndim in (2, 3) and not np.isfinite(arr[..., :3] if arr.ndim == 3 else arr).all():
        raise RefocusError("image contains NaN or infinite values")
    return as_float_rgb(arr)[0]


#: Width of the raised-cosine blend between neighbouring windows, px.
BLEND_PX = 32


def tile_overlap(model: DeblurNet) -> int:
    """The window overlap that makes tiled inference equal a whole-image pass: each of
    two facing window sides ignores the network's receptive radius
    (:attr:`DeblurNetConfig.receptive_radius_px`), and the windows blend over
    :data:`BLEND_PX` between them. Rounded up to the network's multiple.

    A fixed 192 px overlap (this function's predecessor) ignored 72 px, less than the
    3.2 M photo net's 142 px measured reach: its tiles then differed from a whole pass
    by 2.7e-3 in the image and 0.95 px in the defocus map (a 768 px photo, 384 px tiles).
    """
    cfg = model.config
    m = cfg.multiple
    return int(math.ceil((2 * cfg.receptive_radius_px + BLEND_PX) / m)) * m


def _window_weight(n: int, start: int, size: int, total: int, overlap: int) -> np.ndarray:
    """1-D blending weight of a window along one axis.

    Inside the image the outer ``(overlap - ramp) // 2`` px of a window get weight 0
    (their context is cut off by the window), then a raised cosine rises to 1 over
    ``ramp = min(BLEND_PX, overlap // 4)`` px, where neighbouring windows blend; sides
    on the image border keep weight 1.
    """
    w = np.ones(size, np.float32)
    ramp = max(1, min(BLEND_PX, overlap // 4))
    margin = max(0, (overlap - ramp) // 2)
    x = np.arange(size, dtype=np.float32)
    rise = np.clip((x - margin + 0.5) / ramp, 0.0, 1.0)
    rise = 0.5 - 0.5 * np.cos(np.pi * rise)
    if start > 0:
        w = np.minimum(w, rise)
    if start + size < total:
        w = np.minimum(w, rise[::-1])
    return w


def _starts(total: int, tile: int, stride: int, align: int) -> list[int]:
    """Window starts, multiples of ``align``, covering [0, total) with windows of ``tile``."""
    if total <= tile:
        return [0]
    starts, s = [], 0
    while True:
        starts.append(s)
        if s + tile >= total:
            break
        s = min(s + stride, total - tile)
        s -= s % align
    return starts


#: Largest image (pixels) run in one pass on a GPU when ``tile="auto"``: a 12 MP pass
#: peaks at a few GB there, and one pass launches far fewer kernels than 63 tiles.
GPU_WHOLE_IMAGE_PIXELS = 16_000_000


#: Window side on a CPU, px. With the exact overlap (:func:`tile_overlap`) larger
#: windows waste less: on a 6 MP photo, 2 cores, 1280 px took 4.2 s (0.6 M net) and
#: 11.7-15.6 s (3.2 M net) against 6.5 s and 20.3 s in 640 px windows, at a 1.2-1.4 GB
#: peak (0.7-0.8 GB); 1536 px was slower again (measured 2026-12-05, one process per
#: setting; docs/deblurnet.md, "Tiling").
CPU_TILE_PX = 1280


def auto_tile(device: torch.device, shape: tuple[int, int]) -> int | None:
    """The tile side ``tile="auto"`` means: :data:`CPU_TILE_PX` on a CPU (bounded
    memory), on a GPU the whole image up to :data:`GPU_WHOLE_IMAGE_PIXELS`, else 2048."""
    if device.type != "cuda":
        return CPU_TILE_PX
    return None if shape[0] * shape[1] <= GPU_WHOLE_IMAGE_PIXELS else 2048


@torch.inference_mode()  # the in-place clamps below act on predict_tensors's inference tensors
def predict(model: DeblurNet, image: np.ndarray, tile: int | None | str = "auto", overlap: int | None = None, progress=None):
    """Run DeblurNet on an image of any size, in overlapping tiles with smooth blending.

    Parameters
    ----------
    model: a loaded :class:`DeblurNet` (its device is used).
    image: float32 H x W x 3 sRGB in [0, 1].
    tile: window side in px (rounded to the network's multiple), None for one pass, or
        ``"auto"`` (:func:`auto_tile`).
        Peak memory grows with ``tile**2``, not with the image size.
    overlap: overlap between neighbouring windows, px, at most ``tile // 2``; None:
        :func:`tile_overlap`, which makes tiles equal a whole-image pass (to float
        rounding) when the tile is at least twice as large.
    progress: optional callable ``progress(done, total)`` called after each window.

    Returns
    -------
    (all_in_focus, defocus_px): float32 H x W x 3 clipped to [0, 1]; float32 H x W >= 0 (px).
    """
    out, dmap = predict_tensors(model, image, tile, overlap, progress)
    # In place: each frame-sized temporary is 576 MB for the image of a 48 MP photo.
    aif = out.clamp_(0, 1).permute(1, 2, 0).float().cpu().numpy()
    defocus = dmap.clamp_min_(0).float().cpu().numpy()
    return np.ascontiguousarray(aif, dtype=np.float32), np.ascontiguousarray(defocus, dtype=np.float32)


@torch.inference_mode()
def predict_tensors(model: DeblurNet, image: np.ndarray, tile: int | None | str = "auto", overlap: int | None = None, progress=None):
    """:func:`predict` without the copy back: the unclipped (3, H, W) prediction and
    (H, W) defocus map as tensors on the model's device."""
    dev = next(model.parameters()).device
    h, w = image.shape[:2]
    if tile == "auto":
        tile = auto_tile(dev, (h, w))
    m = model.config.multiple
    # Pad once, as the network itself would, so that every window sits on the same
    # downsampling grid as a whole-image pass (tiles then agree with it).
    ph, pw = (-h) % m, (-w) % m
    x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None].to(dev)
    if ph or pw:
        mode = "reflect" if (ph < h and pw < w) else "replicate"
        x = torch.nn.functional.pad(x, (0, pw, 0, ph), mode=mode)
    H, W = h + ph, w + pw
    if dev.type == "cpu":  # the layout load_model gives a CPU model's weights
        x = x.contiguous(memory_format=torch.channels_last)
    if tile is None or (H <= tile and W <= tile):
        y, d = model(x)
        out, dmap = y[0], d[0, 0]
    else:
        tile = max(m, int(math.ceil(tile / m)) * m)
        overlap = min(max(0, tile_overlap(model) if overlap is None else overlap), tile // 2)
        stride = max(m, tile - overlap)
        ys, xs = _starts(H, tile, stride, m), _starts(W, tile, stride, m)
        out = torch.zeros(3, H, W, device=dev)
        dmap = torch.zeros(H, W, device=dev)
        wsum = torch.zeros(H, W, device=dev)
        n, done = len(ys) * len(xs), 0
        for y0 in ys:
            th = min(tile, H - y0)
            wy = _window_weight(H, y0, th, H, overlap)
            for x0 in xs:
                tw = min(tile, W - x0)
                wx = _window_weight(W, x0, tw, W, overlap)
                wgt = torch.from_numpy(np.outer(wy, wx)).to(dev)
                yt, dt = model(x[..., y0 : y0 + th, x0 : x0 + tw])
                out[:, y0 : y0 + th, x0 : x0 + tw] += yt[0] * wgt
                dmap[y0 : y0 + th, x0 : x0 + tw] += dt[0, 0] * wgt
                wsum[y0 : y0 + th, x0 : x0 + tw] += wgt
                done += 1
                if progress is not None:
                    progress(done, n)
        del x  # the padded input, as large as the result, is not needed past the windows
        wsum.clamp_min_(1e-8)
        out /= wsum
        dmap /= wsum
    return out[:, :h, :w], dmap[:h, :w]


def _predict_fitting(model: DeblurNet, img: np.ndarray, tile, overlap: int | None, progress):
    """:func:`predict_tensors` on a GPU, in smaller tiles when a pass runs out of memory."""
    h, w = img.shape[:2]
    first = auto_tile(next(model.parameters()).device, (h, w)) if tile == "auto" else tile
    sizes = [first] + [t for t in (2048, 1024, 512) if first is None or t < first]
    for size in sizes:
        try:
            return predict_tensors(model, img, tile=size, overlap=overlap, progress=progress)
        except torch.cuda.OutOfMemoryError:
            pass
        # Outside the handler: the failed pass's tensors are freed with its frames.
        torch.cuda.empty_cache()
    raise RefocusError(f"out of GPU memory for DeblurNet on a {w}x{h} photo even in {sizes[-1]} px tiles; use --device cpu")


def deblur(
    image: np.ndarray,
    *,
    weights: str | Path | None = None,
    device: str = "cpu",
    tile: int | None | str = "auto",
    overlap: int | None = None,
    refiner: Refiner | None = None,
    progress=None,
    guard: "GuardConfig | bool" = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Recover the all-in-focus photo and a defocus map from a defocused photo.

    Parameters
    ----------
    image:
        H x W x 3 sRGB in [0, 1] (float32; uint8/uint16 are scaled; grayscale is
        expanded; an alpha channel is dropped).
    weights:
        A DeblurNet weights file; default: the ones shipped with the package.
    device:
        ``"cpu"``, ``"cuda"`` or ``"auto"``.
    tile, overlap:
        Tiled inference window and overlap, px (tile None: one pass over the whole
        image; ``"auto"``: :data:`CPU_TILE_PX` tiles on a CPU, one pass on a GPU up to
        16 MP; overlap None: :func:`tile_overlap`, the network's receptive field, so
        tiles equal a whole-image pass).
    refiner:
        Optional second stage (see :class:`Refiner`) applied to DeblurNet's output.
    progress:
        Optional callable ``progress(done, total)`` (windows processed).
    guard:
        Keep the input where the network's own defocus map says it was sharp, and
        clip halos (:func:`refocus.deblur.guard.guard_output`); a
        :class:`~refocus.deblur.guard.GuardConfig`, True (the weights file's own
        guard, else the defaults) or False (the raw network output).

    Returns
    -------
    all_in_focus:
        float32 H x W x 3 sRGB in [0, 1].
    defocus_px:
        float32 H x W, the unsigned circle-of-confusion radius of each pixel in px
        (0 = in focus). Defocus grows with the distance from the focal plane on
        either side, so it is a relative depth only up to that fold. The network
        saw radii up to 12 px in training; larger blurs are underestimated.
    """
    img = _as_rgb(image)
    model = load_model(weights, device)
    if next(model.parameters()).device.type == "cuda":
        # Guard on the GPU too, so one copy of the result crosses to the host.
        from refocus.deblur.guard import GuardConfig, guard_output_torch

        out, dmap = _predict_fitting(model, img, tile, overlap, progress)
        dmap = dmap.clamp_min(0)
        if guard is not False:
            x = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).to(out.device)
            out = guard_output_torch(x, out, dmap, guard if isinstance(guard, GuardConfig) else model.guard_config)
        aif = np.ascontiguousarray(out.clamp(0, 1).permute(1, 2, 0).float().cpu().numpy(), dtype=np.float32)
        defocus = np.ascontiguousarray(dmap.float().cpu().numpy(), dtype=np.float32)
    else:
        aif, defocus = predict(model, img, tile=tile, overlap=overlap, progress=progress)
        if guard is not False:
            from refocus.deblur.guard import GuardConfig, guard_output

            aif = guard_output(img, aif, defocus, guard if isinstance(guard, GuardConfig) else model.guard_config, overwrite=True)
    if refiner is not None:
        aif, defocus = refiner.refine(img, aif, defocus)
        aif = np.clip(np.asarray(aif, dtype=np.float32), 0, 1)
        defocus = np.asarray(defocus, dtype=np.float32)
        if aif.shape != img.shape or defocus.shape != img.shape[:2]:
            raise RefocusError(f"refiner returned shapes {aif.shape}, {defocus.shape}; expected {img.shape}, {img.shape[:2]}")
    return aif, defocus
