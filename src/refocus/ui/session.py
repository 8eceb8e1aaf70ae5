"""What the web UI does, without the UI: testable without Gradio or a browser.

The expensive stages (depth, DeblurNet) run once per photo (and depth file) and
are kept in a small cache keyed by the files' contents; moving the focus or a
slider only re-renders, at preview size (at most :data:`PREVIEW_PIXELS`), and
while a slider is being dragged at draft size (at most :data:`DRAFT_PIXELS`,
about four times faster).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from refocus.errors import RefocusError
from refocus.pipeline.config import RefocusConfig
from refocus.pipeline.core import PreparedPhoto, output_info, prepare

#: Largest preview rendered after a click or a slider release (pixels).
PREVIEW_PIXELS = 1_000_000
#: Largest draft rendered while a slider is dragged, and first after a click (pixels).
DRAFT_PIXELS = 250_000
#: Photos kept prepared at once (each costs ~ 40 bytes per pixel).
CACHE_SIZE = 4


@dataclass
class Prepared:
    """A photo prepared once: full resolution, its preview and its draft copies."""

    full: PreparedPhoto
    preview: PreparedPhoto
    draft: PreparedPhoto


_cache: OrderedDict[str, Prepared] = OrderedDict()
_lock = threading.Lock()


def _digest(path: str | None) -> str:
    if path is None:
        return "-"
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def photo_key(photo_path: str, depth_path: str | None, depth_kind: str | None) -> str:
    return f"{_digest(photo_path)}:{_digest(depth_path)}:{depth_kind}"


def load(
    photo_path: str, depth_path: str | None = None, depth_kind: str | None = None, max_megapixels: float = 100.0, device: str = "cpu"
) -> str:
    """Prepare a photo (depth, DeblurNet once, on ``device``) and return its cache key."""
    if not photo_path:
        raise RefocusError("upload a photo first")
    key = photo_key(photo_path, depth_path, depth_kind)
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return key
    cfg = RefocusConfig.build(depth_path=depth_path, depth_kind=depth_kind, max_megapixels=max_megapixels, device=device)
    full = prepare(photo_path, cfg)
    # DeblurNet runs once here (when installed); renders use it where it helps.
    full.ensure_all_in_focus("auto", cfg.device)
    preview = full.resized(PREVIEW_PIXELS)
    entry = Prepared(full=full, preview=preview, draft=preview.resized(DRAFT_PIXELS))
    with _lock:
        _cache[key] = entry
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return key


def get(key: str | None) -> Prepared:
    with _lock:
        entry = _cache.get(key or "")
    if entry is None:
        raise RefocusError("upload a photo first")
    return entry


def render(key: str, cfg: RefocusConfig, full_resolution: bool = False, draft: bool = False) -> tuple[np.ndarray, np.ndarray, float]:
    """Render a photo from the cache with ``cfg`` (focus and strength in full-size pixels).

    Returns (image sRGB, signed CoC px, focal-plane disparity) at preview size,
    at draft size with ``draft``, or at full size with ``full_resolution``.
    """
    entry = get(key)
    photo = entry.full if full_resolution else (entry.draft if draft else entry.preview)
    fd = photo.focus_disparity(cfg)
    k = photo.strength(cfg, fd)
    from refocus.render import coc_map

    coc = coc_map(photo.disparity, fd, k)
    use_aif = photo.all_in_focus is not None and photo.needs_deblur(coc, cfg.keep_sharp_px)
    img, coc = photo.render(cfg, fd, k, use_all_in_focus=use_aif)
    return img, coc, fd


def export(key: str, cfg: RefocusConfig, out_dir: str | Path, fmt: str = "png16") -> Path:
    """Render at full resolution and write it: ``png8``, ``png16`` or ``jpeg`` (EXIF kept)."""
    from refocus.io import write_image

    entry = get(key)
    img, _, _ = render(key, cfg, full_resolution=True)
    info = output_info(entry.full.info, cfg)
    stem = Path(info.path).stem if info is not None and info.path is not None else "photo"
    ext, bits = {"png8": (".png", 8), "png16": (".png", 16), "jpeg": (".jpg", 8)}.get(fmt, (None, None))
    if ext is None:
        raise RefocusError(f"unknown export format {fmt!r}")
    out = Path(out_dir) / f"{stem}-refocused{ext}"
    return write_image(out, img, info, bit_depth=bits)
