"""Reading and writing photos.

Every image inside the project is float32, H x W x 3, sRGB-encoded, in [0, 1].
:func:`read_image` converts whatever Pillow (plus pillow-heif and tifffile) can open
to that form, applies the EXIF orientation, and returns what is needed to write the
result back faithfully (bit depth, alpha, EXIF, ICC profile). :func:`write_image`
writes atomically (temporary file in the same folder, then rename), so an
interrupted run never leaves a half-written file and never touches the input.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from refocus.errors import DiskError, RefocusError, check_interrupted, describe_os_error, unreadable_image
from refocus.io.limits import DEFAULT_MAX_MEGAPIXELS, check_file, max_pixels as _budget, pillow_open

try:  # HEIC/HEIF support is optional at import time but installed by default.
    import pillow_heif

    pillow_heif.register_heif_opener()
except Exception:  # pragma: no cover - only when pillow-heif is broken
    pillow_heif = None

#: Default pixel limit (100 megapixels); the setting is :func:`refocus.io.limits.max_pixels`.
DEFAULT_MAX_PIXELS = int(DEFAULT_MAX_MEGAPIXELS * 1e6)


@dataclass
class ImageInfo:
    """What was read alongside the pixels, to write results back faithfully."""

    path: Path | None = None
    bit_depth: int = 8
    alpha: np.ndarray | None = None  # H x W float32 in [0, 1], if the input had one
    exif: bytes | None = None
    icc_profile: bytes | None = None
    mode: str = "RGB"
    extra: dict = field(default_factory=dict)

    @property
    def grayscale(self) -> bool:
        """Whether the input had one colour channel (results are written the same way)."""
        return self.mode in _GRAY_MODES


#: Pillow modes of single-channel images (with or without alpha).
_GRAY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")


def as_float_rgb(image) -> tuple[np.ndarray, np.ndarray | None]:
    """An in-memory image as the project's float32 H x W x 3 in [0, 1], plus its alpha.

    Accepts uint8 and uint16 (scaled), floats (NaN -> 0, clipped to [0, 1]),
    grayscale H x W (repeated to 3 channels) and RGBA (alpha returned separately,
    else None). Raises :class:`RefocusError` for any other shape or an empty image.
    """
    arr = np.asarray(image)
    if arr.dtype == np.uint8:
        arr = arr.astype(np.float32) / 255.0
    elif arr.dtype == np.uint16:
        arr = arr.astype(np.float32) / 65535.0
    arr = np.asarray(arr, dtype=np.float32)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4) or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise RefocusError(f"image must be H x W x 3 (or 4) and non-empty, got shape {arr.shape}")
    alpha = np.clip(np.nan_to_num(arr[..., 3]), 0, 1) if arr.shape[2] == 4 else None
    rgb = np.clip(np.nan_to_num(arr[..., :3], nan=0.0), 0.0, 1.0)
    return np.ascontiguousarray(rgb, dtype=np.float32), alpha


def _to_float_rgb(img: Image.Image) -> tuple[np.ndarray, np.ndarray | None, int]:
    """Convert a Pillow image of any mode to (rgb float32, alpha or None, bit depth)."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float32)
        scale = 65535.0 if mode != "I" or arr.max() > 255 else 255.0
        g = np.clip(arr / scale, 0, 1)
        return np.repeat(g[..., None], 3, axis=2).astype(np.float32), None, 16
    if mode == "F":
        g = np.clip(np.asarray(img, dtype=np.float32), 0, 1)
        return np.repeat(g[..., None], 3, axis=2), None, 16
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        a = np.asarray(rgba, dtype=np.float32) / 255.0
        return a[..., :3].copy(), a[..., 3].copy(), 8
    if mode != "RGB":
        img = img.convert("RGB")  # palette, grayscale, CMYK, YCbCr...
    rgb = np.asarray(img, dtype=np.float32)
    rgb *= np.float32(1 / 255.0)  # in place: a second float copy is 12 bytes per pixel more at the peak
    return rgb, None, 8


def read_image(path: str | os.PathLike, max_pixels: int | None = None) -> tuple[np.ndarray, ImageInfo]:
    """Read a photo as float32 H x W x 3 sRGB in [0, 1].

    16-bit PNG and TIFF keep their precision; EXIF orientation is applied; an alpha
    channel is returned in ``info.alpha`` (the colour is not premultiplied).

    Raises
    ------
    RefocusError
        When the file is missing, unreadable, empty, or declares more than ``max_pixels``
        (default: the pixel budget setting, :mod:`refocus.io.limits`), checked before decoding.
    """
    path = Path(path)
    if not path.exists():
        raise RefocusError(f"image not found: {path}")
    if path.is_dir():
        raise RefocusError(f"expected an image file, got a folder: {path}")
    max_pixels = _budget() if max_pixels is None else int(max_pixels)
    check_file(path, path.name, max_pixels)
    suffix = path.suffix.lower()
    if suffix == ".png":
        png16 = _read_png16(path, max_pixels)
        if png16 is not None:
            return png16
    if suffix in (".tif", ".tiff"):
        rgb, info = _read_tiff(path, max_pixels)
        if rgb is not None:
            return rgb, info
    try:
        with pillow_open(path, path.name, max_pixels) as img:
            exif = img.info.get("exif")
            icc = img.info.get("icc_profile")
            frames = getattr(img, "n_frames", 1)
            if frames > 1:
                import warnings

                warnings.warn(f"{path.name} holds {frames} frames (an animation or a multi-page file): the first is used",
                              stacklevel=2)
            img.load()
            img = ImageOps.exif_transpose(img)
            if img.mode in ("I;16", "I;16B", "I;16L") or (img.mode == "I"):
                bit_depth = 16
            else:
                bit_depth = 8
            rgb, alpha, depth_bits = _to_float_rgb(img)
            mode = img.mode
    except RefocusError:
        raise
    except Exception as exc:  # Pillow raises many types for corrupt files; the same words as info's
        raise unreadable_image(path, exc) from None
    if rgb.size == 0:
        raise RefocusError(f"{path.name} is an empty image")
    info = ImageInfo(path=path, bit_depth=max(bit_depth, depth_bits), alpha=alpha, exif=exif, icc_profile=icc, mode=mode)
    return np.ascontiguousarray(rgb, dtype=np.float32), info


def _read_png16(path: Path, max_pixels: int) -> tuple[np.ndarray, ImageInfo] | None:
    """16-bit colour PNGs, which Pillow reads only as 8 bit; None for other PNGs."""
    with open(path, "rb") as f:
        head = f.read(33)
    if len(head) < 33 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[24] != 16 or head[25] not in (2, 6):
        return None
    try:  # the declared size was checked by read_image
        import imagecodecs

        arr = imagecodecs.png_decode(path.read_bytes())
    except Exception as exc:
        raise RefocusError(f"cannot read image {path.name}: {exc.__class__.__name__}: {exc}".split("\n")[0]) from None
    x = arr.astype(np.float32) / 65535.0
    alpha = x[..., 3].copy() if x.shape[2] == 4 else None
    return np.ascontiguousarray(x[..., :3]), ImageInfo(path=path, bit_depth=16, alpha=alpha, mode="RGB;16")


def _read_tiff(path: Path, max_pixels: int) -> tuple[np.ndarray | None, ImageInfo]:
    """16-bit and float RGB TIFFs, which Pillow only partly supports."""
    import tifffile

    try:
        arr = tifffile.imread(path)
    except Exception:
        return None, ImageInfo(path=path)  # let Pillow try and report
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[0] * arr.shape[1] == 0:
        return None, ImageInfo(path=path)
    alpha = None
    if arr.dtype == np.uint16:
        x, bits = arr.astype(np.float32) / 65535.0, 16
    elif arr.dtype == np.uint8:
        x, bits = arr.astype(np.float32) / 255.0, 8
    elif arr.dtype.kind == "f":
        x, bits = np.clip(arr.astype(np.float32), 0, 1), 16
    else:
        return None, ImageInfo(path=path)
    mode = "RGB"
    if x.shape[2] == 1:
        x, mode = np.repeat(x, 3, axis=2), "L"
    elif x.shape[2] == 4:
        alpha = x[..., 3].copy()
        x = x[..., :3]
    elif x.shape[2] != 3:
        return None, ImageInfo(path=path)
    if arr.dtype.kind == "f":
        peak = float(np.nanmax(arr)) if np.isfinite(arr).any() else 0.0
        if peak > 1.0:
            import warnings

            warnings.warn(f"{path.name}: float values up to {peak:.3g} clipped to 1 (refocus reads display-referred "
                          "images in [0, 1]); scale the image to [0, 1] to keep its highlights", stacklevel=3)
    # A 16-bit or float TIFF lost its EXIF and ICC in every output, and was not turned
    # upright: orientation and profile come from the first page's tags, the EXIF from
    # Pillow's view of the header where Pillow can open the file (not float colour).
    exif, icc, orientation = None, None, 1
    try:
        with tifffile.TiffFile(path) as tf:
            tags = tf.pages[0].tags
            orientation = int(tags[274].value) if 274 in tags else 1
            icc = bytes(tags[34675].value) if 34675 in tags else None
    except Exception:
        pass  # metadata is a bonus here; the pixels were read
    try:
        with pillow_open(path, path.name, max_pixels) as img:
            e = img.getexif()
            e.get_ifd(0x8769)  # loaded, so that tobytes() carries the EXIF sub-IFD
            e.get_ifd(0x8825)
            exif = e.tobytes() if len(e) else None
    except Exception:
        pass
    x = apply_orientation(np.nan_to_num(x, nan=0.0), orientation)
    if alpha is not None:
        alpha = apply_orientation(np.nan_to_num(alpha, nan=0.0), orientation)
    info = ImageInfo(path=path, bit_depth=bits, alpha=alpha, mode=mode, exif=exif, icc_profile=icc)
    return np.ascontiguousarray(x, dtype=np.float32), info


def apply_orientation(a: np.ndarray, orientation: int) -> np.ndarray:
    """An H x W (x C) array stored as the sensor saw it, turned as EXIF ``orientation``
    (1-8) says, so that it reads upright (what Pillow's ``exif_transpose`` does)."""
    swap = (lambda t: np.swapaxes(t, 0, 1))
    ops = {
        2: lambda t: t[:, ::-1],
        3: lambda t: t[::-1, ::-1],
        4: lambda t: t[::-1, :],
        5: swap,
        6: lambda t: np.rot90(t, -1),
        7: lambda t: swap(t[::-1, ::-1]),
        8: lambda t: np.rot90(t, 1),
    }
    op = ops.get(int(orientation))
    return a if op is None else np.ascontiguousarray(op(a))


# Temporary files are named ".<name>.refocus-<host>-<pid>-<random>.part<ext>" in the
# output's own folder (so the final rename is atomic); a run killed while writing
# leaves one, which the next write into that folder removes once its process is gone.
# <host> (a hash of the host name) keeps a process id of another machine or container
# sharing the folder from being mistaken for a dead one of ours.
_PART = re.compile(r"^\..*\.refocus-([0-9a-f]{6})-(\d+)-[A-Za-z0-9_]{6,}\.part(\.[A-Za-z0-9]+)?$")
_HOST = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:6]
#: A temporary file this old is stale even if its process id was reused since
#: (no single write of ours takes an hour).
_STALE_PART_S = 3600.0
_cleaned_folders: set[str] = set()
_clean_lock = threading.Lock()


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True


def clean_stale_parts(folder: str | os.PathLike, force: bool = False) -> list[Path]:
    """Remove temporary files that killed runs left in ``folder`` (once per process and
    folder unless ``force``); returns what was removed."""
    key = os.path.abspath(folder)
    with _clean_lock:
        if key in _cleaned_folders and not force:
            return []
        _cleaned_folders.add(key)
    removed = []
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for e in entries:
        m = _PART.match(e.name)
        if not m:
            continue
        try:
            old = now - e.stat(follow_symlinks=False).st_mtime > _STALE_PART_S
            dead = m.group(1) == _HOST and not _pid_alive(int(m.group(2)))
            if (old or dead) and e.is_file(follow_symlinks=False):
                os.unlink(e.path)
                removed.append(Path(e.path))
        except OSError:
            pass
    return removed


def check_output_folder(path: str | os.PathLike) -> Path:
    """The folder ``path`` will be written into, checked: exists, is a folder, writable.

    Raises :class:`refocus.errors.DiskError` naming the user's path and the cause.
    """
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        p = parent
        while not p.exists() and p != p.parent:
            p = p.parent
        if p.exists() and not p.is_dir():
            raise DiskError(f"cannot write {path}: {p} is a file, not a folder")
        raise DiskError(f"cannot write {path}: the folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise DiskError(f"cannot write {path}: the folder {parent} is not writable")
    return parent


def estimate_output_bytes(width: int, height: int, suffix: str, bits: int = 8, channels: int = 3) -> int:
    """An upper estimate of an image file's size, for the free-space check.

    PNG/TIFF: the raw samples (compression only makes them smaller); JPEG/WebP at
    quality 95: a quarter of the raw 8-bit size (about 6 bits per pixel, the upper end
    for detailed photos at that quality).
    """
    raw = width * height * channels * (2 if bits == 16 else 1)
    return raw // 4 if suffix.lower() in (".jpg", ".jpeg", ".webp") else raw


def check_free_space(path: str | os.PathLike, nbytes: int) -> None:
    """Refuse, before the work, to write ``nbytes`` where there is less room."""
    path = Path(path)
    parent = check_output_folder(path)
    try:
        free = shutil.disk_usage(parent).free
    except OSError:
        return  # cannot tell: the write itself will report
    if free < nbytes:
        raise DiskError(
            f"cannot write {path}: {free / 1e6:.1f} MB free on its disk, about {nbytes / 1e6:.1f} MB needed"
        )


def part_prefix(name: str, pid: int | None = None) -> str:
    """The start of a temporary file's name for output ``name`` (see ``_PART``)."""
    # Keep the name within NAME_MAX (255) whatever the output's name.
    return f".{name[:120]}.refocus-{_HOST}-{os.getpid() if pid is None else pid}-"


def _temp_for(path: Path) -> Path:
    parent = check_output_folder(path)
    clean_stale_parts(parent)
    fd, tmp = tempfile.mkstemp(prefix=part_prefix(path.name), suffix=".part" + path.suffix[:16], dir=parent)
    os.close(fd)
    return Path(tmp)


def _umask() -> int:
    """The process umask, read without changing it where /proc allows (thread-safe)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, write_fn) -> Path:
    """Call ``write_fn(tmp_path)`` then rename the temporary file onto ``path``."""
    return atomic_write_many([(path, write_fn)])[0]


def atomic_write_many(items) -> list[Path]:
    """Write several files all or none: each ``(path, write_fn)`` goes to a temporary
    file first, and only when every one is complete are they renamed into place.

    A disk fault (full, read-only, missing folder...) raises
    :class:`refocus.errors.DiskError` naming the user's path, never the temporary one;
    no temporary file is left behind (and one left by a kill is removed by the next
    write into the folder, :func:`clean_stale_parts`).
    """
    items = [(Path(p), fn) for p, fn in items]
    tmps: list[tuple[Path, Path]] = []
    placed: list[Path] = []
    current = items[0][0] if items else None
    try:
        for path, fn in items:
            current = path
            tmp = _temp_for(path)
            tmps.append((tmp, path))
            fn(tmp)
            # mkstemp creates the file private (0600); a result should get the
            # permissions any new file of the user gets.
            os.chmod(tmp, 0o666 & ~_umask())
        check_interrupted()  # a Ctrl-C some library swallowed must not end in a new output
        for tmp, path in tmps:
            current = path
            os.replace(tmp, path)
            placed.append(path)
    except BaseException as exc:
        for tmp, _ in tmps:
            tmp.unlink(missing_ok=True)
        if len(placed) < len(tmps):
            for p in placed:  # all or none
                p.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise DiskError(describe_os_error(exc, current, "write")) from None
        raise
    return [p for p, _ in items]


def write_image(
    path: str | os.PathLike,
    image: np.ndarray,
    info: ImageInfo | None = None,
    bit_depth: int | None = None,
    quality: int = 95,
    grayscale: bool | None = None,
) -> Path:
    """Write float32 H x W x 3 sRGB in [0, 1] to PNG, JPEG, TIFF, WebP (atomically).

    ``bit_depth`` 16 writes 16-bit PNG/TIFF (asked of JPEG or WebP, which hold 8
    bits, it is an error: :func:`refocus.io.outputs.check_bit_depth`); by default
    the input's depth is kept where the format allows.
    ``grayscale``: write one channel (the mean of the three); by default when the
    input (``info``) was grayscale, except to WebP, which has no grayscale mode.
    EXIF and ICC profile from ``info`` are carried over where the format allows; an
    alpha channel in ``info`` is written back for formats that have one.
    """
    return atomic_write_bytes(path, image_writer(path, image, info, bit_depth, quality, grayscale))


def image_writer(
    path: str | os.PathLike,
    image: np.ndarray,
    info: ImageInfo | None = None,
    bit_depth: int | None = None,
    quality: int = 95,
    grayscale: bool | None = None,
):
    """The checks of :func:`write_image`, then a function that writes the image to a
    given (temporary) path, for :func:`atomic_write_many`."""
    path = Path(path)
    if info is not None and info.path is not None and path.resolve() == Path(info.path).resolve():
        raise RefocusError(f"refusing to overwrite the input {path.name}; choose another output path")
    from refocus.io.outputs import check_bit_depth

    check_bit_depth(path, bit_depth)
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    bits = bit_depth or (info.bit_depth if info else 8)
    alpha = info.alpha if info is not None else None
    if alpha is not None and alpha.shape != image.shape[:2]:
        alpha = None
    suffix = path.suffix.lower()
    if suffix not in (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp"):
        raise RefocusError(f"unsupported output format {suffix or '(none)'}: use .png, .jpg, .tif or .webp")
    x = np.clip(np.nan_to_num(image, nan=0.0), 0, 1)
    if grayscale is None:
        grayscale = info is not None and info.grayscale and suffix != ".webp"
    if grayscale:
        x = x.mean(axis=2, keepdims=True)

    def _write(tmp: Path) -> None:
        if suffix in (".tif", ".tiff"):
            chans = x if alpha is None else np.concatenate([x, alpha[..., None]], axis=2)
            scale, dtype = (65535, np.uint16) if bits == 16 else (255, np.uint8)
            _write_tiff(
                tmp,
                np.round(chans * scale).astype(dtype),
                info.exif if info is not None else None,
                info.icc_profile if info is not None else None,
            )
            return
        if suffix == ".png" and bits == 16:
            _write_png16(tmp, x, alpha)
            return
        arr8 = np.round(x * 255).astype(np.uint8)
        if alpha is not None and suffix in (".png", ".webp"):
            a8 = np.round(np.clip(alpha, 0, 1) * 255).astype(np.uint8)
            img = Image.fromarray(np.concatenate([arr8, a8[..., None]], axis=2), "LA" if grayscale else "RGBA")
        elif grayscale:
            img = Image.fromarray(arr8[..., 0], "L")
        else:
            img = Image.fromarray(arr8, "RGB")
        kwargs = {}
        if info is not None and info.exif and suffix in (".jpg", ".jpeg", ".webp", ".png"):
            kwargs["exif"] = _exif_for_output(info.exif)
        if info is not None and info.icc_profile:
            kwargs["icc_profile"] = info.icc_profile
        fmt = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}[suffix]
        if fmt in ("JPEG", "WEBP"):
            kwargs["quality"] = quality
        img.save(tmp, format=fmt, **kwargs)

    return _write


# Tags of a photo's EXIF IFD0 that describe how *its* pixels were stored (a JPEG's
# thumbnail, a TIFF's strips, a HEIC's 512x512 tiles...): they do not describe the
# pixels written with them in any output format (in a TIFF they would contradict
# them, and the TIFF writer's own values must stand), so every writer drops them.
_TIFF_LAYOUT_TAGS = frozenset(
    {254, 255, 256, 257, 258, 259, 262, 266, 273, 277, 278, 279, 284, 317, 320, 322, 323, 324, 325,
     330, 338, 339, 513, 514, 529, 530, 531, 532, 34675}
)


def _tiff_exif(exif: bytes | None) -> Image.Exif:
    """The photo's EXIF for a TIFF's IFD0: camera tags and the EXIF/GPS IFDs kept,
    orientation 1 (the pixels are written upright), layout tags dropped."""
    e = Image.Exif()
    if exif:
        try:
            e.load(exif)
        except Exception:  # unreadable EXIF: write the pixels without it rather than fail
            e = Image.Exif()
    for tag in _TIFF_LAYOUT_TAGS & set(e):
        del e[tag]
    if e:
        e[0x0112] = 1
    return e


def _write_tiff(path: Path, arr: np.ndarray, exif: bytes | None, icc: bytes | None) -> None:
    """Write uint8/uint16 H x W (x 1..4, the last alpha when 2 or 4) as TIFF, with the
    photo's EXIF (IFD0 tags, EXIF and GPS IFDs) and ICC profile, as PNG/JPEG/WebP get.

    Pillow's TIFF writer writes EXIF IFDs (tifffile refuses to: its ExifTag is a
    filtered extratag) but has no 16-bit colour mode; for those images Pillow's own
    IFD writer (the one its TIFF plugin uses) writes the directory, followed by the
    pixels as one uncompressed strip."""
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    samples = 1 if arr.ndim == 2 else arr.shape[2]
    meta = _tiff_exif(exif)
    if arr.dtype == np.uint8 or samples == 1:
        img = Image.fromarray(np.ascontiguousarray(arr))  # L, LA, RGB, RGBA or I;16
        kwargs = {"exif": meta} if meta else {}
        if icc:
            kwargs["icc_profile"] = icc
        img.save(path, format="TIFF", **kwargs)
        return
    from PIL import TiffImagePlugin as tiff
    from PIL import TiffTags

    h, w = arr.shape[:2]
    ifd = tiff.ImageFileDirectory_v2(prefix=b"II")
    # As Pillow's TIFF writer copies exif=: nested IFDs (EXIF, GPS) as dicts.
    for key in meta:
        ifd[key] = meta.get_ifd(key) if key in TiffTags.TAGS_V2_GROUPS else meta.get(key)
    if icc:
        ifd[tiff.ICCPROFILE] = icc
    ifd[tiff.IMAGEWIDTH] = w
    ifd[tiff.IMAGELENGTH] = h
    ifd[tiff.BITSPERSAMPLE] = (16,) * samples
    ifd[tiff.SAMPLESPERPIXEL] = samples
    ifd[tiff.PHOTOMETRIC_INTERPRETATION] = 2 if samples >= 3 else 1  # RGB / min-is-black
    if samples in (2, 4):
        ifd[tiff.EXTRASAMPLES] = 2  # unassociated alpha, as the colour is not premultiplied
    ifd[tiff.COMPRESSION] = 1
    ifd[tiff.PLANAR_CONFIGURATION] = 1
    ifd[tiff.ROWSPERSTRIP] = h
    data = np.ascontiguousarray(arr, dtype="<u2")  # as the "II" byte order says
    ifd.tagtype[tiff.STRIPBYTECOUNTS] = TiffTags.LONG
    ifd[tiff.STRIPBYTECOUNTS] = data.nbytes
    ifd.tagtype[tiff.STRIPOFFSETS] = TiffTags.LONG
    ifd[tiff.STRIPOFFSETS] = 0  # relative: the IFD writer moves it past the directory
    with open(path, "wb") as f:
        f.seek(ifd.save(f))  # save() returns where the directory's data ends
        f.write(data.data)


def _exif_for_output(exif: bytes) -> bytes:
    """The photo's EXIF for a JPEG, PNG or WebP result: orientation 1 (the pixels are
    written upright) and no layout tags of the input's storage (:data:`_TIFF_LAYOUT_TAGS`,
    e.g. a HEIC's TileWidth/TileLength). Unreadable EXIF is carried as it is."""
    try:
        e = Image.Exif()
        e.load(exif)
        for tag in _TIFF_LAYOUT_TAGS & set(e):
            del e[tag]
        e[0x0112] = 1
        return e.tobytes()
    except Exception:
        return exif


def _write_png16(path: Path, rgb: np.ndarray, alpha: np.ndarray | None) -> None:
    """16-bit gray, gray + alpha, RGB or RGBA PNG (by the channels of ``rgb``);
    Pillow cannot write 16-bit colour PNGs itself."""
    import zlib
    import struct

    chans = rgb if alpha is None else np.concatenate([rgb, alpha[..., None]], axis=2)
    h, w, c = chans.shape
    data = np.round(chans * 65535).astype(">u2")
    raw = np.concatenate([np.zeros((h, 1), dtype=np.uint8), data.reshape(h, w * c).view(np.uint8)], axis=1)

    def chunk(tag: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + tag + payload + struct.pack(">I", zlib.crc32(tag + payload) & 0xFFFFFFFF)

    color_type = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    ihdr = struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", ihdr))
        f.write(chunk(b"IDAT", zlib.compress(raw.tobytes(), 6)))
        f.write(chunk(b"IEND", b""))
