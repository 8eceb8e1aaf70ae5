"""Reading and writing photos.

Every image inside the project is float32, H x W x 3, sRGB-encoded, in [0, 1].
:func:`read_image` converts whatever Pillow (plus pillow-heif and tifffile) can open
to that form, applies the EXIF orientation, and returns what is needed to write the
result back faithfully (bit depth, alpha, EXIF, ICC profile). :func:`write_image`
writes atomically (temporary file in the same folder, then rename), so an
interrupted run never leaves a half-written file and never touches the input.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from refocus.errors import RefocusError

try:  # HEIC/HEIF support is optional at import time but installed by default.
    import pillow_heif

    pillow_heif.register_heif_opener()
except Exception:  # pragma: no cover - only when pillow-heif is broken
    pillow_heif = None

#: Default pixel limit (100 megapixels); raise it with ``max_pixels=``.
DEFAULT_MAX_PIXELS = 100_000_000


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
    return np.asarray(img, dtype=np.float32) / 255.0, None, 8


def read_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[np.ndarray, ImageInfo]:
    """Read a photo as float32 H x W x 3 sRGB in [0, 1].

    16-bit PNG and TIFF keep their precision; EXIF orientation is applied; an alpha
    channel is returned in ``info.alpha`` (the colour is not premultiplied).

    Raises
    ------
    RefocusError
        When the file is missing, unreadable, empty, or larger than ``max_pixels``.
    """
    path = Path(path)
    if not path.exists():
        raise RefocusError(f"image not found: {path}")
    if path.is_dir():
        raise RefocusError(f"expected an image file, got a folder: {path}")
    suffix = path.suffix.lower()
    if suffix == ".png":
        png16 = _read_png16(path, max_pixels)
        if png16 is not None:
            return png16
    if suffix in (".tif", ".tiff"):
        rgb, info = _read_tiff(path, max_pixels)
        if rgb is not None:
            return rgb, info
    Image.MAX_IMAGE_PIXELS = None  # we apply our own, clearer limit
    try:
        with Image.open(path) as img:
            w, h = img.size
            if w * h > max_pixels:
                raise RefocusError(
                    f"{path.name} has {w * h / 1e6:.0f} megapixels, over the limit of {max_pixels / 1e6:.0f}; "
                    "raise it with --max-megapixels"
                )
            if w == 0 or h == 0:
                raise RefocusError(f"{path.name} is an empty image")
            exif = img.info.get("exif")
            icc = img.info.get("icc_profile")
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
    except Exception as exc:  # Pillow raises many types for corrupt files
        raise RefocusError(f"cannot read image {path.name}: {exc.__class__.__name__}: {exc}".split("\n")[0]) from None
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
    w, h = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    if w * h > max_pixels:
        raise RefocusError(f"{path.name} has {w * h / 1e6:.0f} megapixels, over the limit of {max_pixels / 1e6:.0f}; raise it with --max-megapixels")
    try:
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
    if arr.shape[0] * arr.shape[1] > max_pixels:
        raise RefocusError(f"{path.name} is over the limit of {max_pixels / 1e6:.0f} megapixels; raise it with --max-megapixels")
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
    return np.ascontiguousarray(x, dtype=np.float32), ImageInfo(path=path, bit_depth=bits, alpha=alpha, mode=mode)


def _atomic_target(path: Path) -> Path:
    if not path.parent.exists():
        raise RefocusError(f"output folder does not exist: {path.parent}")
    if not os.access(path.parent, os.W_OK):
        raise RefocusError(f"output folder is not writable: {path.parent}")
    fd, tmp = tempfile.mkstemp(prefix="." + path.stem + ".", suffix=".part" + path.suffix, dir=path.parent)
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
    path = Path(path)
    tmp = _atomic_target(path)
    try:
        write_fn(tmp)
        # mkstemp creates the file private (0600); a result should get the
        # permissions any new file of the user gets.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_image(
    path: str | os.PathLike,
    image: np.ndarray,
    info: ImageInfo | None = None,
    bit_depth: int | None = None,
    quality: int = 95,
    grayscale: bool | None = None,
) -> Path:
    """Write float32 H x W x 3 sRGB in [0, 1] to PNG, JPEG, TIFF, WebP (atomically).

    ``bit_depth`` 16 writes 16-bit PNG/TIFF; by default the input's depth is kept.
    ``grayscale``: write one channel (the mean of the three); by default when the
    input (``info``) was grayscale, except to WebP, which has no grayscale mode.
    EXIF and ICC profile from ``info`` are carried over where the format allows; an
    alpha channel in ``info`` is written back for formats that have one.
    """
    path = Path(path)
    if info is not None and info.path is not None and path.resolve() == Path(info.path).resolve():
        raise RefocusError(f"refusing to overwrite the input {path.name}; choose another output path")
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
            import tifffile

            chans = x if alpha is None else np.concatenate([x, alpha[..., None]], axis=2)
            kw = {"photometric": "minisblack" if grayscale else "rgb"}
            if grayscale and alpha is not None:
                kw["extrasamples"] = ["unassalpha"]
            elif grayscale:
                chans = chans[..., 0]
            if bits == 16:
                tifffile.imwrite(tmp, np.round(chans * 65535).astype(np.uint16), **kw)
            else:
                tifffile.imwrite(tmp, np.round(chans * 255).astype(np.uint8), **kw)
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
            kwargs["exif"] = _exif_without_orientation(info.exif)
        if info is not None and info.icc_profile:
            kwargs["icc_profile"] = info.icc_profile
        fmt = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}[suffix]
        if fmt in ("JPEG", "WEBP"):
            kwargs["quality"] = quality
        img.save(tmp, format=fmt, **kwargs)

    return atomic_write_bytes(path, _write)


def _exif_without_orientation(exif: bytes) -> bytes:
    """The pixels are written upright, so the orientation tag must say 1."""
    try:
        e = Image.Exif()
        e.load(exif)
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
