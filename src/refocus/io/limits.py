"""One pixel budget for every image that enters refocus, checked before decoding.

A compressed file can declare far more pixels than its size suggests (a 1 MB PNG of
zero rows can declare 1 gigapixel, about 4 GB once decoded as float32). So every
reader first reads the size the file *declares* (PNG IHDR, TIFF IFD, the ``.npy``
header, the PFM/EXR header, or Pillow's lazy open for everything else, which decodes
nothing) and refuses it when it is over the budget; only then does it decode.

The budget is one setting, :func:`max_pixels`: ``--max-megapixels`` on the command
line (root option or per command), else the environment variable
``REFOCUS_MAX_MEGAPIXELS``, else 100 MP. Pillow's own decompression-bomb guard stays on:
we only raise its threshold to our budget when the budget is larger, never disable it.
"""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path

from refocus.errors import RefocusError

ENV_VAR = "REFOCUS_MAX_MEGAPIXELS"
#: 100 MP: above any camera's single frame, so only stitched panoramas and scans must
#: ask for more. It is a guard against decompression bombs, not a promise that the
#: machine holds the work: measured peaks (2-core Xeon, 2026-12-06) were 8.0 GB for a
#: 48 MP render (~170 bytes per pixel), 4.5 GB for DeblurNet on 48 MP and 5.5 GB for
#: the whole pipeline on 24 MP, so a 100 MP photo needs about 17 GB.
DEFAULT_MAX_MEGAPIXELS = 100.0
_HINT = f"raise it with --max-megapixels or {ENV_VAR}"


def max_pixels(megapixels: float | None = None) -> int:
    """The pixel budget: ``megapixels`` when given, else the setting (env), else 100 MP."""
    name = "--max-megapixels"
    if megapixels is None:
        name = ENV_VAR
        raw = os.environ.get(ENV_VAR, "").strip()
        if not raw:
            megapixels = DEFAULT_MAX_MEGAPIXELS
        else:
            try:
                megapixels = float(raw)
            except ValueError:
                raise RefocusError(f"{ENV_VAR} must be a number of megapixels, got {raw[:20]!r}") from None
    if not (megapixels > 0 and megapixels < 1e6):  # also refuses NaN
        # "between 0 and 1e6" read as if 0 were allowed, and named no option.
        raise RefocusError(f"{name} must be above 0 and below 1000000 (megapixels), got {megapixels:g}")
    return int(megapixels * 1e6)


def set_max_megapixels(megapixels: float) -> None:
    """Set the budget for this process and the workers it starts (through the environment)."""
    max_pixels(megapixels)  # validates
    os.environ[ENV_VAR] = repr(float(megapixels))


def check_pixels(width: int, height: int, what: str, limit: int | None = None) -> None:
    """Refuse an empty image or one over the budget, naming it and the limit."""
    limit = max_pixels() if limit is None else limit
    if width <= 0 or height <= 0:
        raise RefocusError(f"{what} is an empty image ({width}x{height})")
    if width * height > limit:
        raise RefocusError(
            f"{what} declares {width}x{height} = {width * height / 1e6:.4g} megapixels, "
            f"over the pixel limit of {limit / 1e6:g}; {_HINT}"
        )


def sync_pillow_guard(limit: int | None = None) -> None:
    """Keep Pillow's bomb guard on, at least as high as our budget (so that it does not
    refuse, or warn about, images our budget allows: its default is 89 MP)."""
    from PIL import Image

    limit = max_pixels() if limit is None else limit
    current = Image.MAX_IMAGE_PIXELS
    if current is None or current < limit:
        Image.MAX_IMAGE_PIXELS = limit


_BOMB = re.compile(r"\((\d+) pixels\)")


def pillow_open(source, what: str, limit: int | None = None):
    """``PIL.Image.open`` (lazy: nothing decoded) with the size checked against the budget.

    ``source`` is a path or a file object. Pillow's own guard is turned into our message.
    """
    from PIL import Image

    limit = max_pixels() if limit is None else limit
    sync_pillow_guard(limit)
    from refocus.notes import ignoring_warnings

    try:
        # Between our budget and twice it Pillow warns ("possible decompression bomb
        # DOS attack") before check_pixels below refuses the file in its own line.
        with ignoring_warnings(Image.DecompressionBombWarning):
            img = Image.open(source)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:  # the warning: under an "error" filter
        m = _BOMB.search(str(exc))
        mp = f"{int(m.group(1)) / 1e6:.1f} megapixels" if m else "more pixels than Pillow allows"
        raise RefocusError(f"{what} declares {mp}, over the pixel limit of {limit / 1e6:g}; {_HINT}") from None
    try:
        check_pixels(img.size[0], img.size[1], what, limit)
        if img.format in ("HEIF", "AVIF") and isinstance(source, (str, os.PathLike)):
            check_boxes_complete(source, what)
    except RefocusError:
        img.close()
        raise
    return img


def check_boxes_complete(path: str | os.PathLike, what: str) -> None:
    """Refuse an ISO media file (HEIC, AVIF) whose top-level boxes run past its end.

    libheif decodes a grid image (an iPhone's) with tiles missing without an error and
    paints them green: half an iPhone HEIC came out whole, its lower third solid
    green (found 2026-12-07). Its image data box ('mdat') then ends past the file's
    end, which the box sizes show before any decoding.
    """
    n = os.path.getsize(path)
    off = 0
    with open(path, "rb") as f:
        while off + 8 <= n:
            f.seek(off)
            head = f.read(16)
            size, kind = struct.unpack(">I4s", head[:8])
            if size == 1 and len(head) == 16:
                size = struct.unpack(">Q", head[8:16])[0]
            elif size == 0:  # to the end of the file
                return
            if size < 8:
                return  # not a box layout we can follow: the decoder decides
            if off + size > n:
                name = kind.decode("latin-1", "replace")
                raise RefocusError(f"cannot read {what}: the file is truncated or damaged "
                                   f"(its '{name}' box ends {off + size - n} bytes past the end of the file)")
            off += size


def declared_size(path: str | os.PathLike) -> tuple[int, int, str] | None:
    """(width, height, format name) a file declares, read from its header without decoding; None
    when the format is not one read here (the caller then uses :func:`pillow_open`).

    Raises :class:`RefocusError` when the header is unreadable.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            suffix = path.suffix.lower()
            if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) >= 24:
                return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big"), "PNG"
            if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
                size = _tiff_size(path)
                return None if size is None else (*size, "TIFF")
            if head[:6] == b"\x93NUMPY":
                return (*_npy_size(path), "NumPy array")
            if head[:2] in (b"PF", b"Pf") and suffix == ".pfm":
                return (*_pfm_size(head + f.read(1024), path), "PFM")  # room for comment lines
            if head[:4] == b"\x76\x2f\x31\x01":
                f.seek(0)
                return (*_exr_size(f, path), "OpenEXR")
    except OSError as exc:
        raise RefocusError(f"cannot read {path.name}: {exc.strerror or exc}") from None
    return None


def check_file(path: str | os.PathLike, what: str | None = None, limit: int | None = None) -> tuple[int, int] | None:
    """Check a file's declared size against the budget before it is decoded.

    Returns (width, height) when the header was read here, else None (Pillow formats:
    open them with :func:`pillow_open`, which checks).
    """
    path = Path(path)
    size = declared_size(path)
    if size is None:
        return None
    w, h, fmt = size
    check_pixels(w, h, f"{what or path.name} ({fmt})", limit)
    return w, h


def _tiff_size(path: Path) -> tuple[int, int] | None:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            shape = tuple(int(s) for s in series.shape)
            page = tif.pages[0]
            w, h = int(page.imagewidth), int(page.imagelength)
    except Exception:
        return None  # not a TIFF tifffile reads: Pillow's lazy open checks it instead
    # Several pages (a stack) count as more pixels: only one is used but all are decoded.
    total = 1
    for s in shape:
        total *= s
    planes = max(1, total // max(1, w * h * max(1, int(getattr(page, "samplesperpixel", 1)))))
    return w, h * planes


def _npy_size(path: Path) -> tuple[int, int]:
    import numpy as np

    fmt = np.lib.format
    try:
        with open(path, "rb") as f:
            version = fmt.read_magic(f)
            reader = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}.get(version)
            shape, _, _ = reader(f) if reader else fmt._read_array_header(f, version)
    except Exception as exc:
        raise RefocusError(f"cannot read {path.name}: malformed .npy header ({exc.__class__.__name__})") from None
    dims = [int(s) for s in shape]
    if len(dims) == 3 and dims[2] <= 4:  # H x W x channels: one pixel per row of channels
        dims = dims[:2]
    dims += [1] * (2 - len(dims))
    # Anything beyond H x W counts in full: np.load reads all of it.
    h = 1
    for i, s in enumerate(dims):
        if i != 1:
            h *= s
    return dims[1], h


def _pfm_size(head: bytes, path: Path) -> tuple[int, int]:
    lines = head.split(b"\n")
    dims = [ln for ln in lines[1:] if not ln.startswith(b"#")]
    try:
        w, h = (int(v) for v in dims[0].split())
    except (ValueError, IndexError):
        raise RefocusError(f"{path.name}: malformed PFM header") from None
    return w, h


def _exr_size(f, path: Path) -> tuple[int, int]:
    """The dataWindow attribute of an OpenEXR header (box2i: xMin, yMin, xMax, yMax)."""
    f.read(8)  # magic + version
    for _ in range(1000):  # a header has a few dozen attributes
        name = _cstr(f)
        if not name:
            break
        _cstr(f)
        raw = f.read(4)
        if len(raw) < 4:
            break
        (size,) = struct.unpack("<i", raw)
        if size < 0 or size > 1 << 24:
            break
        value = f.read(size)
        if name == b"dataWindow" and len(value) == 16:
            x0, y0, x1, y1 = struct.unpack("<4i", value)
            return x1 - x0 + 1, y1 - y0 + 1
    raise RefocusError(f"{path.name}: malformed EXR header (no dataWindow)")


def _cstr(f, limit: int = 256) -> bytes:
    out = bytearray()
    while len(out) < limit:
        c = f.read(1)
        if not c or c == b"\x00":
            break
        out += c
    return bytes(out)


def photo_size(path: str | os.PathLike) -> tuple[int, int] | None:
    """(width, height) a photo declares, from its header (nothing decoded); None when
    it cannot be told (the reader will report why)."""
    from PIL import Image

    try:
        size = declared_size(path)
        if size is not None:
            return size[0], size[1]
        sync_pillow_guard()
        with Image.open(path) as img:
            return img.size
    except Exception:
        return None
