"""What the web UI does, without the UI: testable without Gradio or a browser.

The expensive stages (depth, DeblurNet) run once per photo (and depth file) and
are kept in a small cache keyed by the files' contents; moving the focus or a
slider only re-renders, at preview size (at most :data:`PREVIEW_PIXELS`), and
while a slider is being dragged at draft size (at most :data:`DRAFT_PIXELS`,
about four times faster).

The UI is a server: one request must not occupy it. Each upload is checked before
decoding (:func:`check_request`: bytes and declared pixels); a photo larger than
:data:`WORK_PIXELS` is prepared on a working copy of that size (its depth, blur map
and DeblurNet run there), and only an export renders the full size, on demand. The
cache is bounded in entries and in bytes (:data:`CACHE_BYTES`).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from refocus.errors import RefocusError
from refocus.pipeline.config import RefocusConfig
from refocus.pipeline.core import PreparedPhoto, output_info
from refocus.pipeline.refocuser import default_refocuser, reporting

# The interactive sizes live with the pipeline (the speed benchmark times them too).
from refocus.pipeline.speed import DRAFT_PIXELS, PREVIEW_PIXELS, preview_refocuser  # noqa: E402
#: Photos kept prepared at once (each costs ~ 40 bytes per pixel).
CACHE_SIZE = 4
#: Largest working copy prepared on upload. 2 MP: twice the preview, so the preview
#: keeps its detail; DeblurNet there takes ~2-3 s on 2 cores (12 MP: ~10-17 s, README's speed table).
WORK_PIXELS = 2_000_000
#: Bytes all cached photos may hold together (arrays of the working copies, previews
#: and drafts); the least recently used are dropped first.
CACHE_BYTES = 1_000_000_000
#: Largest upload per request, all files together (Gradio's limit is per file).
MAX_REQUEST_BYTES = 200 * 2**20


@dataclass
class Prepared:
    """A photo prepared once: full resolution, its preview and its draft copies."""

    full: PreparedPhoto  # the working copy (the photo itself when small enough)
    preview: PreparedPhoto
    draft: PreparedPhoto
    source_path: str | None = None
    depth_path: str | None = None
    depth_kind: str | None = None
    depth_model: str | None = None  # the network for a photo without depth (None: the default)
    align_depth: bool = False  # a map at the photo's size aligned with its edges too (--align-depth)
    full_shape: tuple[int, int] = (0, 0)  # (H, W) of the photo itself
    #: (the UI's settings, draft or not) of the last preview or draft, and its render
    #: (image, CoC, focal plane): reused when only an overlay changes.
    last_render: tuple | None = None

    def nbytes(self) -> int:
        total, seen = 0, set()
        for p in (self.full, self.preview, self.draft):
            for a in (p.image, p.disparity, p.input_blur_px, p.all_in_focus, p._linear, p._aif_linear):
                if isinstance(a, np.ndarray) and id(a) not in seen:
                    seen.add(id(a))
                    total += a.nbytes
        if self.last_render is not None:
            total += sum(a.nbytes for a in self.last_render[1] if isinstance(a, np.ndarray))
        return total


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


def photo_key(photo_path: str, depth_path: str | None, depth_kind: str | None, depth_model: str | None = None,
              align_depth: bool = False) -> str:
    return f"{_digest(photo_path)}:{_digest(depth_path)}:{depth_kind}:{depth_model or ''}:{'aligned' if align_depth else ''}"


def check_request(paths, max_megapixels: float | None = None) -> None:
    """Refuse an upload request before decoding anything: more than
    :data:`MAX_REQUEST_BYTES` in all, or any file declaring more pixels than the budget."""
    from refocus.io.limits import check_file, max_pixels, pillow_open

    limit = max_pixels(max_megapixels)
    files = [Path(p) for p in paths if p]
    total = 0
    for p in files:
        try:
            total += p.stat().st_size
        except OSError:
            raise RefocusError(f"upload {p.name} is missing") from None
    if total > MAX_REQUEST_BYTES:
        raise RefocusError(f"the upload holds {total / 2**20:.0f} MiB, over the limit of {MAX_REQUEST_BYTES / 2**20:.0f} MiB per request")
    for p in files:
        if check_file(p, p.name, limit) is None and p.suffix.lower() not in (".npy", ".pfm", ".exr"):
            try:
                with pillow_open(p, p.name, limit):
                    pass
            except RefocusError:
                raise
            except Exception:
                # Not a file Pillow knows (a text file named .jpg, a HEIC...): the
                # pipeline's reader then says what is wrong, in the CLI's words, and
                # checks the budget of the formats it reads itself.
                pass


def load(
    photo_path: str,
    depth_path: str | None = None,
    depth_kind: str | None = None,
    max_megapixels: float | None = None,
    device: str = "cpu",
    depth_model: str | None = None,
    progress=None,
    align_depth: bool = False,
) -> str:
    """Prepare a photo (depth, DeblurNet once, on ``device``) and return its cache key.

    ``progress``: called with (fraction done, what runs now) as the stages start (a
    12 MP HEIC takes 25-40 s on a laptop).

    ``depth_model``: the depth network (hub id or folder) for a photo without depth;
    None or empty: the default (:data:`refocus.depth.estimate.DEFAULT_DEPTH_MODEL`).

    ``align_depth``: align a depth map already at the photo's size with the photo's
    edges too (the command line's ``--align-depth``); by default it is used as it is.

    A photo larger than :data:`WORK_PIXELS` is prepared on a working copy of that size.
    """
    if not photo_path:
        raise RefocusError("upload a photo first")
    check_request([photo_path, depth_path], max_megapixels)
    depth_model = (depth_model or "").strip() or None
    key = photo_key(photo_path, depth_path, depth_kind, depth_model, align_depth)
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return key
    budget = {} if max_megapixels is None else {"max_megapixels": max_megapixels}
    cfg = RefocusConfig.build(depth_path=depth_path, depth_kind=depth_kind, depth_model=depth_model, align_depth=align_depth,
                              device=device, **budget)
    plain = default_refocuser()
    pipeline = plain if progress is None else reporting(plain, progress)
    if progress is not None:
        progress(0.02, "reading the photo")
    full = pipeline.prepare(photo_path, cfg, work_pixels=WORK_PIXELS)
    full_shape = full.source_shape or full.shape
    # DeblurNet runs once here (when installed); renders use it where it helps.
    pipeline.ensure_all_in_focus(full, "auto", cfg.device)
    full.refocuser = plain  # later renders belong to other requests: they report nothing here
    # The preview and draft composite with over everywhere (speed); the export sums
    # the layers away from depth jumps (pipeline.speed.preview_refocuser).
    preview = replace(full.resized(PREVIEW_PIXELS), refocuser=preview_refocuser(plain))
    entry = Prepared(
        full=full, preview=preview, draft=preview.resized(DRAFT_PIXELS), source_path=str(photo_path),
        depth_path=depth_path, depth_kind=depth_kind, depth_model=depth_model, align_depth=align_depth, full_shape=full_shape,
    )
    with _lock:
        _cache[key] = entry
        _evict()
    return key


def _evict() -> None:
    """Drop the least recently used photos beyond :data:`CACHE_SIZE` or :data:`CACHE_BYTES`
    (the newest is always kept). Call with the lock held."""
    while len(_cache) > CACHE_SIZE:
        _cache.popitem(last=False)
    while len(_cache) > 1 and sum(e.nbytes() for e in _cache.values()) > CACHE_BYTES:
        _cache.popitem(last=False)


def get(key: str | None) -> Prepared:
    with _lock:
        entry = _cache.get(key or "")
    if entry is None:
        raise RefocusError("upload a photo first")
    return entry


def notes(key: str) -> list[str]:
    """The one-line remarks the photo's preparation made (depth filled, resampled or
    estimated, DeblurNet unavailable, working copy...), once each, for the status
    line: the CLI prints them as ``warning:``/``note:`` lines, the UI must show them too."""
    entry = get(key)
    out: list[str] = []
    for n in list(entry.full.notes) + ([entry.full.deblur_note] if entry.full.deblur_note else []):
        if n and not any(n in m for m in out):
            out.append(n)
    return out


def render(key: str, cfg: RefocusConfig, full_resolution: bool = False, draft: bool = False) -> tuple[np.ndarray, np.ndarray, float]:
    """Render a photo from the cache with ``cfg`` (focus and strength in full-size pixels).

    Returns (image sRGB, signed CoC px, focal-plane disparity) at preview size,
    at draft size with ``draft``, or at full size with ``full_resolution``.
    """
    r = render_result(key, cfg, full_resolution, draft)
    return r.image, r.coc_px, r.focus_disparity


def render_result(key: str, cfg: RefocusConfig, full_resolution: bool = False, draft: bool = False):
    """:func:`render`'s whole result (the pipeline's ``Rendered``: also ``deblurred``,
    whether it started from the all-in-focus image rather than the photo as it is)."""
    entry = get(key)
    photo = entry.full if full_resolution else (entry.draft if draft else entry.preview)
    return photo.pipeline.render_focus(photo, cfg, run=False)  # DeblurNet ran once, at load


def genfocus_unusable() -> str | None:
    """Why the generative engine cannot be offered here (None: it can).

    Not installed: it is not shown. Installed on a machine without a CUDA GPU: it would
    take hours per image on the CPU, so the UI shows it disabled with this reason and
    refuses it (:func:`export` itself runs it anywhere: tests use a tiny model on a CPU)."""
    from refocus.pipeline.genfocus import available

    if not available():
        return "not installed (pip install 'refocus[genfocus]')"
    import torch

    if not torch.cuda.is_available():
        return "needs a CUDA GPU, and torch sees none here (on the CPU it would take hours per image)"
    return None


def default_blur(key: str) -> tuple[bool, float]:
    """The blur the pipeline gives this photo when none is asked for (the CLI without
    ``-k`` or ``--f-number``): (whether it is the lens the photo's file states, as a
    Lens Blur JPEG does; K in the photo's full-size pixels)."""
    p = get(key).full
    # Without an f-number the focal plane does not change K.
    return p.own_lens is not None, p.strength(RefocusConfig(), 0.0) / p.scale


def export(key: str, cfg: RefocusConfig, out_dir: str | Path, fmt: str = "png16", engine: str = "physical", progress=None) -> Path:
    """Render at full resolution and write it: ``png8``, ``png16`` or ``jpeg`` (EXIF kept).

    ``engine="genfocus"``: the generative engine (Genfocus DeblurNet + BokehNet, options
    from ``REFOCUS_GENFOCUS_*``) on the same photo, depth and settings.
    ``progress``: called with (fraction done, what runs now) as the stages start (a
    12 MP HEIC takes minutes on a laptop).
    """
    from refocus.io import write_image

    say = progress or (lambda f, text: None)
    entry = get(key)
    ext, bits = {"png8": (".png", 8), "png16": (".png", 16), "jpeg": (".jpg", 8)}.get(fmt, (None, None))
    if ext is None:
        raise RefocusError(f"unknown export format {fmt!r}")
    if engine == "genfocus":
        from refocus.pipeline.genfocus import GenfocusOptions
        from refocus.pipeline.genfocus.run import genfocus_refocuser

        say(0.05, "full size: the generative engine (about a minute on a large GPU)")
        src = entry.source_path if entry.source_path is not None else entry.full.image
        res = reporting(genfocus_refocuser(GenfocusOptions.from_env()), say, "full size: ").refocus(
            src, cfg.model_copy(update={"depth_path": entry.depth_path, "depth_kind": entry.depth_kind,
                                        "align_depth": entry.align_depth}))
        img, info = res.image, res.info
    elif entry.full.scale != 1.0 and entry.source_path is not None:
        # A working copy: the full size is rendered now, on demand, by the whole pipeline
        # (whose result carries the output metadata already).
        say(0.02, "full size: reading the photo")
        upd = {"depth_path": entry.depth_path, "depth_kind": entry.depth_kind, "depth_model": entry.depth_model,
               "align_depth": entry.align_depth}
        res = reporting(entry.full.pipeline, say, "full size: ").refocus(entry.source_path, cfg.model_copy(update=upd))
        img, info = res.image, res.info
    else:
        say(0.5, "full size: rendering the new focus")
        img, _, _ = render(key, cfg, full_resolution=True)
        info = output_info(entry.full.info, cfg)
    say(0.95, "writing the file")
    stem = Path(info.path).stem if info is not None and info.path is not None else "photo"
    out = Path(out_dir) / f"{stem}-refocused{ext}"
    return write_image(out, img, info, bit_depth=bits)


#: Formats every browser shows as they are. Any other photo (HEIC, TIFF...) gets a
#: JPEG stand-in in the Photo panel: Chromium shows a HEIC as a 0x0 broken image,
#: and a click needs something to land on.
BROWSER_FORMATS = frozenset({"JPEG", "PNG", "GIF", "WEBP", "BMP"})


def display_copy(photo_path: str, out_dir: str | Path) -> Path | None:
    """A JPEG of the photo for the browser to show, or None when it can show the file.

    Decoded the way the pipeline decodes it (orientation applied), at full size, so a
    click on the stand-in lands on the same pixel of the photo the renders use.
    """
    from PIL import Image

    from refocus.io import atomic_write_bytes, read_image
    from refocus.io.limits import max_pixels, pillow_open

    p = Path(photo_path)
    try:
        with pillow_open(p, p.name, max_pixels()) as im:
            if im.format in BROWSER_FORMATS:
                return None
    except Exception:
        pass  # not a Pillow format (or refused): read_image says why, once
    out = Path(out_dir) / f"{_digest(str(p))}.jpg"
    if not out.exists():  # decoded once per upload; atomic, so two tabs may race
        rgb, _ = read_image(p)
        atomic_write_bytes(out, lambda tmp: Image.fromarray(np.round(rgb * 255).astype(np.uint8)).save(tmp, format="JPEG", quality=90))
    return out


@dataclass
class _View:
    """What one browser tab asked for last (see :func:`ask`)."""

    latest: object = None  # the settings of the newest request
    screen: object = None  # what the preview panel shows: a sig (its preview), ("draft", sig), or None
    key: str | None = None
    focus: tuple[float, float] | None = None
    upload: int = 0  # the number of the tab's newest load (begin_upload)
    photo: str | None = None  # the photo of that load (None: removed)
    settings: tuple | None = None  # the controls' newest values (begin_upload, note_settings)
    defaults_photo: str | None = None  # the photo whose blur defaults the controls were set to


#: Browser tabs remembered (least recently seen dropped first).
MAX_VIEWS = 256
_views: OrderedDict[str, _View] = OrderedDict()


def _view(client: str) -> _View:
    v = _views.get(client)
    if v is None:
        v = _views[client] = _View()
        while len(_views) > MAX_VIEWS:
            _views.popitem(last=False)
    _views.move_to_end(client)
    return v


def ask(client: str, sig: object) -> bool:
    """Record a render request of one tab; False: not worth rendering (the full
    preview of these settings is on screen already).

    Renders of one tab run side by side (two clicks, a drag's drafts and the release's
    preview) and finish in any order; only the newest request's may reach the screen
    (:func:`may_show`), so the last click or setting wins and a late draft never
    replaces the preview of the same settings.
    """
    with _lock:
        v = _view(client)
        v.latest = sig
        return v.screen != sig


def may_show(client: str, sig: object, draft: bool = False) -> bool:
    """Whether a finished render of ``sig`` is still the tab's newest request (and,
    for a draft, its preview not shown already). A render that may be shown is
    recorded as on screen."""
    with _lock:
        v = _view(client)
        if v.latest != sig or (draft and v.screen == sig):
            return False
        v.screen = ("draft", sig) if draft else sig
        return True


def shown(client: str, sig: object | None) -> None:
    """Record what the tab's preview panel shows now: the preview of ``sig`` (rendered
    outside :func:`ask`, e.g. on upload), or nothing (None: cleared after an error)."""
    with _lock:
        _view(client).screen = sig


def is_latest(client: str, sig: object) -> bool:
    """Whether ``sig`` is still the tab's newest request."""
    with _lock:
        v = _views.get(client)
        return v is not None and v.latest == sig


def set_view(client: str, key: str | None, focus: tuple[float, float] | None = None) -> None:
    """The tab's photo (None: removed) and focus point; a new photo or focus makes the
    tab's renders in flight stale."""
    with _lock:
        v = _view(client)
        v.key, v.focus, v.latest = key, focus, ("view", key, focus)


def begin_upload(client: str, photo_path: str | None, settings=None) -> int:
    """A new load for the tab (a photo, a depth map for it, or the photo's removal), with
    the controls' values it was asked with: returns its number. Loads run side by side and
    finish in any order (a 12 MP HEIC takes half a minute, a small JPEG a second); only the
    newest may reach the screen (:func:`upload_is_current`)."""
    with _lock:
        v = _view(client)
        v.upload += 1
        v.photo = photo_path
        if settings is not None:
            v.settings = tuple(settings)
        return v.upload


def note_settings(client: str, settings) -> None:
    """The tab's controls changed (a render request, with or without a photo ready):
    a load that finishes later renders with these (:func:`tab_settings`)."""
    with _lock:
        _view(client).settings = tuple(settings)


def tab_settings(client: str) -> tuple | None:
    """The tab's newest control values (None: none known)."""
    with _lock:
        v = _views.get(client)
        return None if v is None else v.settings


def upload_is_current(client: str, token: int) -> bool:
    """Whether the load ``token`` is still the tab's newest."""
    with _lock:
        v = _views.get(client)
        return v is not None and v.upload == token


def set_defaults_photo(client: str, photo_path: str | None) -> None:
    """Record that the tab's blur controls were set to ``photo_path``'s defaults."""
    with _lock:
        _view(client).defaults_photo = photo_path


def has_defaults_of(client: str, photo_path: str | None) -> bool:
    """Whether the tab's blur controls were set to this photo's defaults: not after a
    load of it that failed (then the previous photo's own-lens mode and strength
    stayed, and a depth map uploaded next rendered with them; found 2026-12-07)."""
    with _lock:
        v = _views.get(client)
        return v is not None and photo_path is not None and v.defaults_photo == photo_path


def tab_photo(client: str) -> str | None:
    """The photo of the tab's newest load, finished or not (None: none, or removed)."""
    with _lock:
        v = _views.get(client)
        return None if v is None else v.photo


def view_focus(client: str, key: str | None, fallback: tuple[float, float] | None) -> tuple[float, float] | None:
    """The tab's focus point for ``key``: the newest click, even one whose render has
    not come back yet (a slider moved right after a click keeps the click).

    A click made while a focus mask was set is not recorded (the mask decides the
    focus until it is removed), so removing the mask returns to the focus the tab had
    before it: the last click made before the mask, or auto."""
    with _lock:
        v = _views.get(client)
        return v.focus if v is not None and v.key == key and key is not None else fallback
