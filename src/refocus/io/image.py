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
from refocus.io.outputs import DEFAULT_JPEG_QUALITY

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
    #: The photo's XMP packet (captions, rights, keywords, ratings...), as stored.
    xmp: bytes | None = None
    #: The photo's IPTC-IIM record (captions, credit, copyright, keywords), as a JPEG's
    #: Photoshop segment (resource 0x0404) or a TIFF's tag 33723 stores it.
    iptc: bytes | None = None

    @property
    def grayscale(self) -> bool:
        """Whether the input had one colour channel (results are written the same way)."""
        return self.mode in _GRAY_MODES


#: Pillow modes of single-channel images (with or without alpha).
_GRAY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")


#: Full-scale value of each integer pixel type: uint8 and uint16 pixels are this
#: fraction of white, in and out (:func:`as_float_rgb`, :func:`write_image`). Other
#: numbers (floats, other integer types) are the [0, 1] values themselves.
_FULL_SCALE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}

#: Largest float value taken for a [0, 1] image with its excess clipped (and a
#: warning); above it the image is refused. A display-referred float image overshoots
#: 1 by little (resampling ringing, a wide-gamut conversion, an HDR export's highlights
#: a few stops over white, which ``refocus`` has always read clipped with a warning);
#: one in 0..255 (a notebook's ``img.astype(float)``) reaches far beyond, unless the
#: photo is all but black (its brightest pixel under 16/255), and clipped it came out
#: white.
FLOAT_PEAK_MAX = 16.0
#: Overshoot clipped without a warning: under half an 8-bit step, float round-off.
_FLOAT_PEAK_QUIET = 1.0 + 0.5 / 255


def _unit_float(pixels: np.ndarray) -> np.ndarray:
    """Numeric pixels as float32 on the [0, 1] scale: uint8 and uint16 divided by their
    full scale (:data:`_FULL_SCALE`), any other number cast as it is (not clipped)."""
    full = _FULL_SCALE.get(pixels.dtype)
    if full is None:
        return np.asarray(pixels, dtype=np.float32)
    return pixels.astype(np.float32) / np.float32(full)


def check_float_range(pixels: np.ndarray, name: str, stacklevel: int = 2) -> None:
    """The one rule for float pixels above 1 (arrays given to the API and float TIFFs):
    up to :data:`FLOAT_PEAK_MAX` they are clipped, with a warning; beyond it a one-line
    :class:`RefocusError` naming ``name`` says how to bring the image to [0, 1]."""
    peak = float(np.max(pixels)) if pixels.size else 0.0
    if not np.isfinite(peak):  # NaN and inf are the callers' (0 and 1 after clipping)
        finite = pixels[np.isfinite(pixels)]
        peak = float(finite.max()) if finite.size else 0.0
    if peak > FLOAT_PEAK_MAX:
        raise RefocusError(
            f"{name} has float values up to {peak:.4g}; refocus reads float pixels in [0, 1]: "
            "divide a 0..255 image by 255, scale any other to [0, 1]"
        )
    if peak > _FLOAT_PEAK_QUIET:
        import warnings

        warnings.warn(f"{name}: float values up to {peak:.3g} clipped to 1 (refocus reads display-referred "
                      "images in [0, 1]); scale the image to [0, 1] to keep its highlights", stacklevel=stacklevel + 1)


def _pixel_array(image) -> np.ndarray:
    """``image`` as a numeric numpy array, or a one-line error that says how to pass a file."""
    if isinstance(image, np.ndarray) and image.ndim == 0 and image.dtype.kind in "USO":
        image = image.item()  # a path that went through np.asarray on its way here
    if isinstance(image, (str, os.PathLike)):
        got = f"the {type(image).__name__} {os.fspath(image)!r}"
    else:
        try:
            arr = np.asarray(image)
        except (TypeError, ValueError):  # rows of different lengths
            arr = None
        if arr is not None and arr.dtype.kind in "biuf":
            return arr
        if arr is not None and arr.dtype.kind == "O" and arr.ndim > 0:  # numbers held as objects
            try:
                return np.asarray(arr, dtype=np.float32)
            except (TypeError, ValueError):
                pass
        got = type(image).__name__ + (f" of dtype {arr.dtype}" if arr is not None and arr.ndim > 0 else "")
    raise RefocusError(f"image must be an array of pixels, got {got}; read a photo file with refocus.io.read_image(path)")


def as_float_rgb(image) -> tuple[np.ndarray, np.ndarray | None]:
    """An in-memory image as the project's float32 H x W x 3 in [0, 1], plus its alpha.

    Accepts uint8 and uint16 (scaled by their full scale), floats and other numbers
    in [0, 1] (NaN -> 0; above 1 clipped, with a warning, up to :data:`FLOAT_PEAK_MAX`
    and refused beyond: :func:`check_float_range`), grayscale H x W (repeated to 3
    channels) and RGBA (alpha returned separately, else None). Raises
    :class:`RefocusError` for any other shape, an empty image, or what is not an
    array of numbers (a file path: :func:`read_image` reads it).
    """
    arr = _pixel_array(image)
    scaled = arr.dtype in _FULL_SCALE
    arr = _unit_float(arr)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4) or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise RefocusError(f"image must be H x W x 3 (or 4) and non-empty, got shape {arr.shape}")
    if not scaled:
        check_float_range(arr, "image", stacklevel=3)
    # fmax and fmin skip NaN: NaN -> 0, -inf -> 0, +inf -> 1 in two passes (nan_to_num
    # and a clip took four, 0.12 s at 12 MP, on every stage's copy of the photo).
    alpha = np.fmin(np.fmax(arr[..., 3], np.float32(0.0)), np.float32(1.0)) if arr.shape[2] == 4 else None
    rgb = np.fmax(arr[..., :3], np.float32(0.0))
    np.fmin(rgb, np.float32(1.0), out=rgb)
    rgb = np.ascontiguousarray(rgb, dtype=np.float32)
    if alpha is not None:
        rgb = fill_transparent(rgb, alpha)  # rgb is a new array: np.clip made it
    return rgb, alpha


def flatten(rgb: np.ndarray, alpha: np.ndarray | None, background: float = 1.0) -> np.ndarray:
    """``rgb`` over a ``background`` grey (white by default, as an editor flattens a
    cut-out) by ``alpha``, for outputs without alpha; ``rgb`` itself when there is no
    alpha (or one of another size)."""
    if alpha is None or np.shape(alpha) != np.shape(rgb)[:2]:
        return rgb
    a = np.clip(np.nan_to_num(np.asarray(alpha, dtype=np.float32), nan=0.0), 0, 1)[..., None]
    return np.asarray(rgb, dtype=np.float32) * a + np.float32(background) * (1 - a)


def fill_transparent(rgb: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """``rgb`` (float32 H x W x 3, changed in place and returned) with the colour of
    fully transparent pixels replaced by the colour of the visible pixels around them.

    What a file stores under alpha 0 is invisible and often black (or anything): blurred
    with the visible pixels, it bled into them as a dark fringe round a cut-out. Every
    visible pixel (alpha > 0) keeps its colour. Push-pull: alpha-weighted means on a
    pyramid of halvings, each hole taking the colour of the finest level that has any.
    """
    if alpha is None:
        return rgb
    hole = ~(np.asarray(alpha) > 0)  # NaN alpha counts as transparent
    if not hole.any() or hole.all():
        return rgb
    w = np.where(hole, np.float32(0), np.clip(np.asarray(alpha, dtype=np.float32), 0, 1))
    coarse = np.pad(_push_pull(*_halve(rgb, w)), ((1, 1), (1, 1), (0, 0)), mode="edge")
    for dy in (0, 1):
        for dx in (0, 1):
            view = rgb[dy::2, dx::2]  # a view: assigning through it fills rgb
            sub = hole[dy::2, dx::2]
            if sub.any():
                view[sub] = _upsampled(coarse, dy, dx, view.shape[:2])[sub]
    return rgb


def _upsampled(padded: np.ndarray, dy: int, dx: int, shape: tuple[int, int]) -> np.ndarray:
    """The pixels (dy::2, dx::2) of the bilinear 2x enlargement of a level (given with
    a one-pixel edge border), ``shape`` of them: smooth, where nearest-neighbour gave
    blocks that a blur would show as steps along a cut-out's edge."""
    n, m = shape
    rows = 0.75 * padded[1 : n + 1] + 0.25 * padded[2 * dy : n + 2 * dy]
    return 0.75 * rows[:, 1 : m + 1] + 0.25 * rows[:, 2 * dx : m + 2 * dx]


def _halve(col: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted 2 x 2 means (colour, summed weight) of a pyramid level."""
    h, wd = w.shape
    c2 = np.zeros(((h + 1) // 2, (wd + 1) // 2, col.shape[2]), np.float32)
    w2 = np.zeros(c2.shape[:2], np.float32)
    for dy in (0, 1):
        for dx in (0, 1):
            ws = w[dy::2, dx::2]
            n, m = ws.shape
            w2[:n, :m] += ws
            c2[:n, :m] += col[dy::2, dx::2] * ws[..., None]
    c2 /= np.maximum(w2, np.float32(1e-12))[..., None]
    return c2, w2


def _push_pull(col: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The level's colour, defined everywhere: own colour by weight, the coarser
    level's for the rest."""
    if (w > 0).all() or w.size == 1:
        return col
    coarse = np.pad(_push_pull(*_halve(col, w)), ((1, 1), (1, 1), (0, 0)), mode="edge")
    for dy in (0, 1):
        for dx in (0, 1):
            view = col[dy::2, dx::2]
            ws = np.minimum(w[dy::2, dx::2], np.float32(1))[..., None]
            view *= ws
            view += _upsampled(coarse, dy, dx, view.shape[:2]) * (1 - ws)
    return col


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


def read_image(path: str | os.PathLike, max_pixels: int | None = None, *, fill_hidden: bool = True) -> tuple[np.ndarray, ImageInfo]:
    """Read a photo as float32 H x W x 3 sRGB in [0, 1].

    16-bit PNG and TIFF keep their precision; EXIF orientation is applied; an alpha
    channel is returned in ``info.alpha`` (the colour is not premultiplied; under fully
    transparent pixels it is the surrounding visible colour, :func:`fill_transparent`,
    so that a blur does not pull the file's hidden colour, often black, into the edges).

    Raises
    ------
    RefocusError
        When the file is missing, unreadable, empty, or declares more than ``max_pixels``
        (default: the pixel budget setting, :mod:`refocus.io.limits`), checked before decoding.

    ``fill_hidden=False`` leaves the colour under fully transparent pixels as the file
    stores it, for a reader that weighs colour by alpha anyway (an aperture image):
    the fill is a push-pull pass over the whole image.
    """
    rgb, info = _read_image(Path(path), max_pixels)
    if info.alpha is not None and fill_hidden:
        rgb = fill_transparent(rgb, info.alpha)
    return rgb, info


def _read_image(path: Path, max_pixels: int | None) -> tuple[np.ndarray, ImageInfo]:
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
        rgb, info = _read_tiff(path)
        if rgb is not None:
            return rgb, info
    try:
        with pillow_open(path, path.name, max_pixels) as img:
            # An MPO (an iPhone's or a camera's multi-picture JPEG) stores depth and gain
            # maps as its other "frames": the photo is the first, nothing to say.
            frames = getattr(img, "n_frames", 1) if img.format != "MPO" else 1
            if frames > 1:
                import warnings

                warnings.warn(f"{path.name} holds {frames} frames (an animation or a multi-page file): the first is used",
                              stacklevel=2)
            img.load()
            # After load(): a PNG's eXIf chunk may follow its pixels.
            exif = img.info.get("exif")
            icc = photo_icc(img)
            xmp = img.info.get("xmp") or img.info.get("XML:com.adobe.xmp")  # JPEG, WebP, TIFF, HEIC; PNG's iTXt
            if isinstance(xmp, str):
                xmp = xmp.encode("utf-8")
            iptc = (img.info.get("photoshop") or {}).get(_IPTC_RESOURCE) if img.format in ("JPEG", "MPO") else None
            extra = {"webp_lossless": True} if suffix == ".webp" and _webp_lossless(path) else {}
            img = ImageOps.exif_transpose(img)
            if img.mode == "CMYK":
                img, icc = _cmyk_to_rgb(img, icc)
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
    info = ImageInfo(path=path, bit_depth=max(bit_depth, depth_bits), alpha=alpha, exif=exif, icc_profile=icc, mode=mode,
                     extra=extra, xmp=xmp if isinstance(xmp, bytes) and xmp else None,
                     iptc=iptc if isinstance(iptc, bytes) and iptc else None)
    return np.ascontiguousarray(rgb, dtype=np.float32), info


def _webp_lossless(path: Path) -> bool:
    """Whether a WebP file holds lossless (VP8L) pixels, from its RIFF chunks."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if head[:4] != b"RIFF" or head[8:12] != b"WEBP":
                return False
            for _ in range(64):
                chunk = f.read(8)
                if len(chunk) < 8:
                    return False
                if chunk[:4] in (b"VP8L", b"VP8 "):
                    return chunk[:4] == b"VP8L"
                size = int.from_bytes(chunk[4:], "little")
                f.seek(size + (size & 1), 1)
    except OSError:
        pass
    return False


def _cmyk_to_rgb(img: Image.Image, icc: bytes | None) -> tuple[Image.Image, bytes | None]:
    """A CMYK photo as sRGB, through its own (CMYK) ICC profile where it has one; the
    profile is not kept: it describes ink, not the RGB pixels written from it (an RGB
    result tagged with a CMYK profile is refused or misdrawn by viewers)."""
    from refocus.io.color import icc_space

    if icc_space(icc) == b"CMYK":
        try:
            import io

            from PIL import ImageCms

            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            return ImageCms.profileToProfile(img, src, ImageCms.createProfile("sRGB"), outputMode="RGB"), None
        except Exception:
            pass  # an unusable profile: Pillow's plain conversion
    return img.convert("RGB"), None


def _png_walk(data: bytes):
    """(type, body, stored CRC-32 bytes) of each chunk of a PNG file's bytes, in order,
    up to IEND (a truncated chunk's body and CRC are what is there)."""
    import struct

    pos = 8
    while pos + 8 <= len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        tag = data[pos + 4 : pos + 8]
        yield tag, data[pos + 8 : pos + 8 + n], data[pos + 8 + n : pos + 12 + n]
        if tag == b"IEND":
            return
        pos += 12 + n


def png_bad_chunk(data: bytes) -> bytes | None:
    """The type of the first chunk of a PNG file's bytes that fails its CRC-32, or None.
    Pillow does not check the pixel data's; a truncated chunk is left to the decoder,
    which says so in its own words."""
    import zlib

    for tag, body, crc in _png_walk(data):
        if len(crc) < 4:
            return None
        if zlib.crc32(tag + body) != int.from_bytes(crc, "big"):
            return tag
    return None


def _png_chunks(data: bytes, want: tuple[bytes, ...]) -> dict[bytes, bytes]:
    """The first chunk of each type in ``want`` of a PNG file's bytes."""
    found: dict[bytes, bytes] = {}
    for tag, body, _ in _png_walk(data):
        if tag in want and tag not in found:
            found[tag] = body
    return found


def _png_xmp(data: bytes) -> bytes | None:
    """The XMP packet of a PNG file's bytes (an uncompressed iTXt chunk before the
    pixels), or None."""
    key = _PNG_XMP_KEY.encode("latin-1") + b"\0"
    for tag, body, _ in _png_walk(data):
        if tag == b"iTXt" and body.startswith(key):
            body = body[len(key) :]
            if body[:1] != b"\0":  # compressed: rare for XMP, which must stay editable in place
                return None
            rest = body[2:]
            for _ in range(2):  # language tag, translated keyword
                rest = rest[rest.index(b"\0") + 1 :] if b"\0" in rest else b""
            return rest or None
        if tag == b"IDAT":
            return None
    return None


def is_png16_multichannel(path: Path) -> bool:
    """A 16-bit PNG with more than one channel (grey + alpha, RGB, RGBA), which Pillow
    reads only as 8 bit (grey + alpha even as RGBA)."""
    try:
        with open(path, "rb") as f:
            head = f.read(26)
    except OSError:
        return False
    return len(head) == 26 and head[:8] == b"\x89PNG\r\n\x1a\n" and head[24] == 16 and head[25] in (2, 4, 6)


def _read_png16(path: Path, max_pixels: int) -> tuple[np.ndarray, ImageInfo] | None:
    """16-bit colour and grey + alpha PNGs (:func:`is_png16_multichannel`); None for other
    PNGs. Their ICC profile (iCCP) and EXIF (eXIf) are kept and the EXIF orientation
    applied, as for any photo."""
    if not is_png16_multichannel(path):
        return None
    try:  # the declared size was checked by read_image
        import imagecodecs

        data = path.read_bytes()
        arr = imagecodecs.png_decode(data)
    except Exception as exc:
        raise RefocusError(f"cannot read image {path.name}: {exc.__class__.__name__}: {exc}".split("\n")[0]) from None
    if arr.ndim == 2:
        arr = arr[..., None]
    exif = icc = None
    orientation = 1
    chunks = _png_chunks(data, (b"iCCP", b"eXIf"))
    try:
        if b"iCCP" in chunks:
            import zlib

            body = chunks[b"iCCP"]
            icc = zlib.decompress(body[body.index(b"\0") + 2 :]) or None
    except Exception:
        icc = None  # a damaged profile: the pixels were read
    if chunks.get(b"eXIf"):
        exif = b"Exif\x00\x00" + chunks[b"eXIf"]  # as Pillow gives it for every format
        try:
            e = Image.Exif()
            e.load(exif)
            orientation = int(e.get(0x0112, 1) or 1)
        except Exception:
            pass
    x = apply_orientation(arr, orientation).astype(np.float32)
    x *= np.float32(1 / 65535.0)
    grey = x.shape[2] in (1, 2)
    alpha = x[..., -1].copy() if x.shape[2] in (2, 4) else None
    rgb = np.repeat(x[..., :1], 3, axis=2) if grey else np.ascontiguousarray(x[..., :3])
    info = ImageInfo(path=path, bit_depth=16, alpha=alpha, mode="LA" if grey else "RGB;16", exif=exif, icc_profile=icc,
                     xmp=_png_xmp(data))
    return rgb, info


def _tifffile_colours(page) -> bool:
    """Whether tifffile's samples of this page are the picture's grey or RGB values:
    black-is-zero grey, RGB, or JPEG-compressed YCbCr (decoded to RGB). A CMYK TIFF
    came out transparent (K read as alpha), a palette one as grey indices and a
    white-is-zero one inverted (found 2026-12-07): those go to Pillow, which converts
    them."""
    import tifffile

    ph = tifffile.PHOTOMETRIC
    photometric = page.photometric
    if photometric in (ph.MINISBLACK, ph.RGB):
        return True
    return photometric == ph.YCBCR and page.compression == tifffile.COMPRESSION.JPEG


def tiff_orientation(page) -> int:
    """The EXIF orientation (tag 274) of a tifffile page, 1 when it states none."""
    tag = page.tags.get(274)
    return int(tag.value) if tag is not None else 1


def exif_orientation(data: bytes) -> int:
    """The EXIF orientation (tag 274) of an image file's bytes, 1 when it states none
    or its header cannot be read (the embedded-depth readers align maps with it)."""
    import io

    try:
        with Image.open(io.BytesIO(data)) as img:
            return int(img.getexif().get(0x0112, 1) or 1)
    except Exception:  # any damage means no stated turn; reading the pixels says why
        return 1


def _read_tiff(path: Path) -> tuple[np.ndarray | None, ImageInfo]:
    """TIFFs through tifffile (16-bit, float, grey + alpha, planar), which Pillow only
    partly supports; (None, ...) for what tifffile cannot read, for Pillow to try."""
    import tifffile

    # One parse of the file for the pixels and the first page's tags. A 16-bit or float
    # TIFF lost its EXIF and ICC in every output, and was not turned upright:
    # orientation and profile come from those tags, the EXIF from the file's directory
    # (tiff_exif: Pillow cannot open a 16-bit grey + alpha or a float colour TIFF).
    icc, orientation, premultiplied, xmp, iptc = None, 1, False, None, None
    try:
        with tifffile.TiffFile(path) as tf:
            if not _tifffile_colours(tf.pages[0]):
                return None, ImageInfo(path=path)
            arr = tf.asarray()
            if tf.series[0].axes.startswith("S") and arr.ndim == 3:
                # Planar (one plane per sample, PlanarConfiguration 2): samples last, as
                # the contiguous layout gives them (Pillow cannot read these either).
                arr = np.moveaxis(arr, 0, -1)
            try:
                page = tf.pages[0]
                tags = page.tags
                orientation = tiff_orientation(page)
                icc = bytes(tags[34675].value) if 34675 in tags else None
                premultiplied = int((page.extrasamples or (0,))[0]) == 1  # associated alpha
                xmp = bytes(tags[_XMP_TAG].value) if _XMP_TAG in tags else None
                iptc = bytes(tags[_TIFF_IPTC_TAG].value) if _TIFF_IPTC_TAG in tags else None  # tifffile reads it as bytes
            except Exception:
                pass  # metadata is a bonus here; the pixels were read
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
    elif x.shape[2] == 2:  # grey + alpha, as refocus writes a 16-bit one (Pillow cannot read it)
        alpha = x[..., 1].copy()
        x, mode = np.repeat(x[..., :1], 3, axis=2), "LA"
    elif x.shape[2] == 4:
        alpha = x[..., 3].copy()
        x = x[..., :3]
    elif x.shape[2] != 3:
        return None, ImageInfo(path=path)
    if arr.dtype.kind == "f":
        check_float_range(arr, path.name, stacklevel=3)
    if premultiplied and alpha is not None:
        # Associated alpha stores colour times alpha; refocus keeps colour unassociated
        # (the writers say so): divided back, a semi-transparent edge is not darkened.
        np.divide(x, np.maximum(alpha, np.float32(1e-6))[..., None], out=x, where=(alpha > 0)[..., None])
        np.minimum(x, np.float32(1), out=x)  # a colour above its alpha is not a valid pixel
    e = tiff_exif(path)
    exif = e.tobytes() if e is not None else None
    # In place: x and alpha are this function's own arrays (a copy each was a frame).
    x = apply_orientation(np.nan_to_num(x, nan=0.0, copy=False), orientation)
    if alpha is not None:
        alpha = apply_orientation(np.nan_to_num(alpha, nan=0.0, copy=False), orientation)
    info = ImageInfo(path=path, bit_depth=bits, alpha=alpha, mode=mode, exif=exif, icc_profile=icc, xmp=xmp or None, iptc=iptc or None)
    return np.ascontiguousarray(x, dtype=np.float32), info


def photo_icc(img: Image.Image) -> bytes | None:
    """The colour profile of an opened photo: its ICC profile, or for a HEIC that states
    its colours as CICP codes (many Android phones) a profile made from them
    (:func:`refocus.io.color.icc_from_nclx`). The commands and ``refocus info`` read it here."""
    icc = img.info.get("icc_profile")
    if not icc and img.info.get("nclx_profile"):
        from refocus.io.color import icc_from_nclx

        icc = icc_from_nclx(img.info["nclx_profile"])
    return icc or None


def tiff_exif(path: str | os.PathLike) -> Image.Exif | None:
    """A TIFF's own tags (IFD0 with its EXIF and GPS IFDs) as a ``PIL.Image.Exif`` held
    in memory, read from the file's directory alone; None when it has none or they
    cannot be read.

    Pillow's ``getexif()`` needs Pillow to open the image, which it cannot for a 16-bit
    grey + alpha, a planar or a float colour TIFF: their EXIF was lost in every output
    and ``refocus info`` showed no camera. Nothing is decoded here."""
    from refocus.notes import ignoring_warnings

    try:
        # Pillow's "Truncated File Read" for a sub-IFD pointer that leads nowhere (the
        # Interop pointer refocus's TIFFs carried until _tiff_exif dropped it): the
        # tags that can be read are the bonus here, the pixels are read apart.
        with open(path, "rb") as f, ignoring_warnings(UserWarning, "PIL"):  # only Pillow's own
            e = Image.Exif()
            e.load_from_fp(f)
            if not len(e):
                return None
            data = e.tobytes()  # the sub-IFDs are read from the file, while it is open
        e = Image.Exif()
        e.load(data)
    except Exception:
        return None
    return e


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


def upright_fraction(x: float, y: float, orientation: int) -> tuple[float, float]:
    """A point given as fractions (x, y) of a frame stored as the sensor saw it, as
    fractions of the upright frame (:func:`apply_orientation`'s turn)."""
    return {
        2: (1 - x, y), 3: (1 - x, 1 - y), 4: (x, 1 - y), 5: (y, x),
        6: (1 - y, x), 7: (1 - y, 1 - x), 8: (y, 1 - x),
    }.get(int(orientation), (x, y))


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


def nearest_existing(path: str | os.PathLike) -> Path:
    """``path`` or its nearest ancestor that exists (the folder a later ``mkdir -p``
    would start from), to check before any work."""
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_output_folder(path: str | os.PathLike) -> Path:
    """The folder ``path`` will be written into, checked: exists, is a folder, writable.

    Raises :class:`refocus.errors.DiskError` naming the user's path and the cause.
    """
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        p = nearest_existing(parent)
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
    quality: int = DEFAULT_JPEG_QUALITY,
    grayscale: bool | None = None,
) -> Path:
    """Write float32 H x W x 3 sRGB in [0, 1] to PNG, JPEG, TIFF, WebP (atomically).

    uint8 and uint16 images are read as :func:`as_float_rgb` reads them (by their full
    scale), grey H x W is accepted too.

    ``bit_depth`` 16 writes 16-bit PNG/TIFF (asked of JPEG or WebP, which hold 8
    bits, it is an error: :func:`refocus.io.outputs.check_bit_depth`); by default
    the input's depth is kept where the format allows.
    ``grayscale``: write one channel (the mean of the three); by default when the
    input (``info``) was grayscale, except to WebP, which has no grayscale mode.
    EXIF and ICC profile from ``info`` are carried over where the format allows (16-bit
    PNG included; a profile of another colour space than the pixels written, e.g. a
    grey one on WebP's RGB, is left out); an alpha channel in ``info`` is written back
    for formats that have one, and JPEG gets the image over white. JPEG at
    ``quality`` >= 90 keeps full-resolution colour (4:4:4); a photo read from a
    lossless WebP is written to WebP losslessly.

    Pixels of other types than uint8/uint16 follow the rule for reading them
    (:func:`check_float_range`): above 1 they are clipped, with a warning up to
    :data:`FLOAT_PEAK_MAX`, and refused beyond it (a 0..255 float image came out white).
    """
    return atomic_write_bytes(path, image_writer(path, image, info, bit_depth, quality, grayscale, stacklevel=3))


def image_writer(
    path: str | os.PathLike,
    image: np.ndarray,
    info: ImageInfo | None = None,
    bit_depth: int | None = None,
    quality: int = DEFAULT_JPEG_QUALITY,
    grayscale: bool | None = None,
    *,
    stacklevel: int = 2,
):
    """The checks of :func:`write_image`, then a function that writes the image to a
    given (temporary) path, for :func:`atomic_write_many`. ``stacklevel``: the warning
    of :func:`check_float_range` names the frame that many levels up from here."""
    path = Path(path)
    if info is not None and info.path is not None and path.resolve() == Path(info.path).resolve():
        raise RefocusError(f"refusing to overwrite the input {path.name}; choose another output path")
    from refocus.io.outputs import SIXTEEN_BIT_SUFFIXES, check_bit_depth, check_jpeg_quality

    check_bit_depth(path, bit_depth)
    quality = check_jpeg_quality(quality)
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4) or image.size == 0:
        raise RefocusError(f"image must be H x W x 3 and non-empty, got shape {image.shape}")
    if image.dtype not in _FULL_SCALE:
        # The values themselves are the [0, 1] scale (_unit_float): a 0..255 float image
        # clipped would be written white, with no word; the colour channels only, as
        # _quantize reads them (an alpha of 255 in a fourth channel is not written).
        check_float_range(image[..., :3], f"image for {path.name}", stacklevel=stacklevel)
    bits = bit_depth or (info.bit_depth if info else 8)
    alpha = info.alpha if info is not None else None
    if alpha is not None and alpha.shape != image.shape[:2]:
        alpha = None
    suffix = path.suffix.lower()
    if suffix not in (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp"):
        raise RefocusError(f"unsupported output format {suffix or '(none)'}: use .png, .jpg, .tif or .webp")
    if grayscale is None:
        grayscale = info is not None and info.grayscale and suffix != ".webp"
    grayscale = bool(grayscale)
    bits16 = bits == 16 and suffix in SIXTEEN_BIT_SUFFIXES
    exif = info.exif if info is not None else None
    xmp = xmp_for_output(info.xmp if info is not None else None)
    # A profile describes one colour space: an RGB one does not go with grey pixels,
    # nor a grey (or CMYK) one with RGB pixels.
    icc = _icc_matching(info.icc_profile if info is not None else None, grayscale)

    def _write(tmp: Path) -> None:
        # Quantised in row blocks straight into the written array: a 12 MP float image
        # is not copied three times over on its way out (nan_to_num, clip, scale, round).
        # Formats without alpha (JPEG) get the image over white, as an editor flattens
        # a cut-out, rather than the colour hidden under its transparent pixels.
        arr = _quantize(image, alpha, grayscale, 65535 if bits16 else 255, keep_alpha=suffix != ".jpg" and suffix != ".jpeg")
        if suffix in (".tif", ".tiff"):
            _write_tiff(tmp, arr, exif, icc, xmp, info.iptc if info is not None else None)
            return
        if suffix == ".png" and bits16:
            _write_png16(tmp, arr, None, exif=_exif_for_output(exif) if exif else None, icc=icc, xmp=xmp)
            return
        mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[arr.shape[2]]
        img = Image.fromarray(arr[..., 0] if mode == "L" else arr, mode)
        del arr
        kwargs = {}
        if exif:
            kwargs["exif"] = _exif_for_output(exif)
            if suffix in (".jpg", ".jpeg") and len(kwargs["exif"]) > _JPEG_EXIF_MAX:
                import warnings

                # Maker notes or a TIFF's own large tags: Pillow refused the whole result
                # ("EXIF data is too long") after the render.
                warnings.warn(f"the photo's EXIF ({len(kwargs['exif']) // 1024} KB) does not fit a JPEG; "
                              f"{path.name} is written without it (PNG, TIFF or WebP keep it)", stacklevel=stacklevel)
                del kwargs["exif"]
        if icc:
            kwargs["icc_profile"] = icc
        fmt = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}[suffix]
        if xmp and fmt == "PNG":
            from PIL import PngImagePlugin

            kwargs["pnginfo"] = PngImagePlugin.PngInfo()
            kwargs["pnginfo"].add_itxt(_PNG_XMP_KEY, xmp.decode("utf-8", "replace"))
        elif xmp and (fmt != "JPEG" or len(xmp) <= _JPEG_XMP_MAX):
            kwargs["xmp"] = xmp
        if fmt == "JPEG":
            kwargs["quality"] = quality
            if info is not None and info.iptc:
                kwargs["extra"] = iptc_segment(info.iptc)  # Pillow writes it after its APP segments
            # Full-resolution colour at high quality: Pillow's default 4:2:0 halves the
            # chroma, which smears a saturated edge (a purple collar on grey fur).
            kwargs["subsampling"] = 0 if quality >= 90 else 2
        elif fmt == "WEBP":
            if info is not None and info.extra.get("webp_lossless"):
                kwargs["lossless"] = True  # a lossless WebP stays lossless
            else:
                kwargs["quality"] = quality
        img.save(tmp, format=fmt, **kwargs)

    return _write


#: Rows quantised at a time by :func:`_quantize` (a few MB of float temporaries).
_QUANT_ROWS = 128


def _quantize(image: np.ndarray, alpha: np.ndarray | None, grayscale: bool, scale: int, keep_alpha: bool = True) -> np.ndarray:
    """uint8 (``scale`` 255) or uint16 (65535) H x W x C, C = 1 or 3 colours (grey: their
    mean) plus the alpha when there is one and ``keep_alpha``, else the colour over
    white (as :func:`flatten`); uint8/uint16 pixels by their full scale (:func:`_unit_float`),
    NaN is 0, values are clipped to [0, 1]. Done in row blocks, so
    the only full-size array made is the result."""
    h, w = image.shape[:2]
    colours = 1 if grayscale else 3
    with_alpha = alpha is not None and keep_alpha
    out = np.empty((h, w, colours + with_alpha), np.uint16 if scale > 255 else np.uint8)
    for r0 in range(0, h, _QUANT_ROWS):
        r1 = min(h, r0 + _QUANT_ROWS)
        x = np.nan_to_num(_unit_float(np.asarray(image[r0:r1, :, :3])), nan=0.0)  # a new block
        np.clip(x, 0, 1, out=x)
        if grayscale and x.shape[2] != 1:
            x = x.mean(axis=2, keepdims=True, dtype=np.float32)
        elif not grayscale and x.shape[2] == 1:
            x = np.repeat(x, 3, axis=2)
        if alpha is not None:
            a = np.clip(np.nan_to_num(np.asarray(alpha[r0:r1], dtype=np.float32), nan=0.0), 0, 1)[..., None]
            if with_alpha:
                x = np.concatenate([x, a], axis=2)
            else:
                x *= a
                x += 1 - a
        x *= np.float32(scale)
        np.rint(x, out=x)
        out[r0:r1] = x
    return out


def _icc_matching(icc: bytes | None, grayscale: bool) -> bytes | None:
    """``icc`` when its colour space (:func:`refocus.io.color.icc_space`) is that of the
    pixels written (GRAY for grey, RGB for colour), else None (a profile too short to
    say is passed on)."""
    from refocus.io.color import icc_space

    space = icc_space(icc)
    if space is None:
        return icc or None
    return icc if space == (b"GRAY" if grayscale else b"RGB ") else None


# Tags of a photo's EXIF IFD0 that describe how *its* pixels were stored (a JPEG's
# thumbnail, a TIFF's strips, a HEIC's 512x512 tiles...): they do not describe the
# pixels written with them in any output format (in a TIFF they would contradict
# them, and the TIFF writer's own values must stand), so every writer drops them.
# A TIFF's ICC profile (34675) and XMP packet (700) are among its IFD0 tags too: they
# are written apart, the XMP as xmp_for_output keeps it. Photoshop's image resources
# (34377: a thumbnail among them) and layers (37724) describe the original pixels, and
# can be megabytes: carried into a JPEG's EXIF they made it too long to write.
_TIFF_LAYOUT_TAGS = frozenset(
    {254, 255, 256, 257, 258, 259, 262, 266, 273, 277, 278, 279, 284, 317, 320, 322, 323, 324, 325,
     330, 338, 339, 513, 514, 529, 530, 531, 532, 34675, 700, 34377, 37724}
)
#: A TIFF's IPTC record (33723) is not EXIF: only a TIFF result carries it in its IFD0.
_TIFF_IPTC_TAG = 33723
#: The most EXIF one JPEG APP1 segment holds (64 KB less its length and "Exif" header).
_JPEG_EXIF_MAX = 65527


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
    # The TIFF writers write the EXIF and GPS IFDs as nested directories, but the
    # Interop IFD's pointer as the number it was: an offset into the photo's file,
    # which points at nothing in the TIFF (an index "R98" is all that IFD holds). Pillow
    # also puts one in IFD0 of EXIF it wrote after reading the Interop IFD.
    if 0xA005 in e:
        del e[0xA005]
    if 0x8769 in e:
        e.get_ifd(0x8769).pop(0xA005, None)
    if e:
        e[0x0112] = 1
    return e


def _write_tiff(path: Path, arr: np.ndarray, exif: bytes | None, icc: bytes | None, xmp: bytes | None = None,
                iptc: bytes | None = None) -> None:
    """Write uint8/uint16 H x W (x 1..4, the last alpha when 2 or 4) as TIFF, with the
    photo's EXIF (IFD0 tags, EXIF and GPS IFDs) and ICC profile, as PNG/JPEG/WebP get,
    and its IPTC record (tag 33723, from a JPEG's Photoshop segment or a TIFF's own).

    Pillow's TIFF writer writes EXIF IFDs (tifffile refuses to: its ExifTag is a
    filtered extratag) but has no 16-bit colour mode; for those images Pillow's own
    IFD writer (the one its TIFF plugin uses) writes the directory, followed by the
    pixels as one uncompressed strip."""
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    samples = 1 if arr.ndim == 2 else arr.shape[2]
    meta = _tiff_exif(exif)
    if xmp:
        meta[_XMP_TAG] = xmp
    if iptc:
        meta[_TIFF_IPTC_TAG] = iptc
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
    if xmp:
        ifd.tagtype[_XMP_TAG] = TiffTags.BYTE
    if iptc:
        ifd.tagtype[_TIFF_IPTC_TAG] = TiffTags.UNDEFINED
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


#: TIFF tag of an XMP packet, and the PNG iTXt keyword of one.
_XMP_TAG = 700
_PNG_XMP_KEY = "XML:com.adobe.xmp"
#: The most a JPEG's one XMP segment holds (64 KB less its header); a longer packet
#: was split by its writer into Extended XMP, which is not carried.
_JPEG_XMP_MAX = 65502

#: Markers of XMP that describes data tied to the photo's own pixels or file layout:
#: a Lens Blur depth map and original (GDepth, GImage, GFocus), a gain map (hdrgm),
#: container items and their offsets (Ultra HDR, motion photos), Extended XMP. In a
#: result they would describe what it is not (a refocused JPEG read as a Lens Blur
#: file again), so such a packet is not carried at all.
_XMP_TIED = (b"GDepth", b"GImage", b"GFocus", b"hdrgm", b"GContainer", b"Container:Directory", b"HasExtendedXMP",
             b"MicroVideo", b"MotionPhoto", b"apdi")
#: Camera Raw / Lightroom develop settings (crs:, as attributes or elements, an element
#: possibly holding an rdf:Seq): an editor re-applies them on import, so a rendered
#: result would be cropped, exposed and toned a second time.
_XMP_CAMERA_RAW = re.compile(
    rb"""\s+crs:\w+\s*=\s*(?:"[^"]*"|'[^']*')|<crs:(\w+)\b[^>]*/>|<crs:(\w+)\b[^>]*>.*?</crs:\2\s*>""", re.DOTALL
)
_XMP_ORIENTATION = re.compile(rb"(tiff:Orientation\s*=\s*[\"'])\d([\"'])|(<tiff:Orientation>)\s*\d\s*(</tiff:Orientation>)")


#: Photoshop image resource IDs: the IPTC-IIM record and its MD5 digest.
_IPTC_RESOURCE, _IPTC_DIGEST = 0x0404, 0x0425


def iptc_segment(iptc: bytes) -> bytes:
    """A JPEG APP13 segment (marker included) holding ``iptc``, an IPTC-IIM record, as
    Photoshop stores it, with its digest; ``b""`` when it does not fit one segment.

    Only the IPTC record and its digest are written: the segment's other resources (a
    thumbnail, slices, print settings) describe the original pixels and layout. Pillow
    reads the record on opening a JPEG but does not write it, so captions, credit and
    copyright were dropped from every result."""
    import struct

    def resource(rid: int, data: bytes) -> bytes:
        pad = b"\0" if len(data) % 2 else b""
        return b"8BIM" + struct.pack(">H", rid) + b"\0\0" + struct.pack(">I", len(data)) + data + pad

    body = (b"Photoshop 3.0\0" + resource(_IPTC_RESOURCE, iptc)
            + resource(_IPTC_DIGEST, hashlib.md5(iptc, usedforsecurity=False).digest()))
    if len(body) + 2 > 0xFFFF:
        return b""
    return b"\xff\xed" + struct.pack(">H", len(body) + 2) + body


def xmp_for_output(xmp: bytes | None) -> bytes | None:
    """The photo's XMP for a result: its captions, rights, keywords and ratings kept,
    the orientation said upright (the pixels are written upright, as in the EXIF);
    None for a packet that describes data tied to the photo's pixels (:data:`_XMP_TIED`)."""
    if not xmp or any(m in xmp for m in _XMP_TIED):
        return None
    xmp = _XMP_CAMERA_RAW.sub(b"", xmp)
    return _XMP_ORIENTATION.sub(lambda m: m.group(1) + b"1" + m.group(2) if m.group(1) else m.group(3) + b"1" + m.group(4), xmp)


def _exif_for_output(exif: bytes) -> bytes:
    """The photo's EXIF for a JPEG, PNG or WebP result: orientation 1 (the pixels are
    written upright) and no layout tags of the input's storage (:data:`_TIFF_LAYOUT_TAGS`,
    e.g. a HEIC's TileWidth/TileLength). Unreadable EXIF is carried as it is."""
    try:
        e = Image.Exif()
        e.load(exif)
        for tag in (_TIFF_LAYOUT_TAGS | {_TIFF_IPTC_TAG}) & set(e):
            del e[tag]
        e[0x0112] = 1
        return e.tobytes()
    except Exception:
        return exif


def _write_png16(path: Path, rgb: np.ndarray, alpha: np.ndarray | None, exif: bytes | None = None,
                 icc: bytes | None = None, xmp: bytes | None = None) -> None:
    """16-bit gray, gray + alpha, RGB or RGBA PNG (by the channels of ``rgb``: uint16 with
    any alpha as its last channel, or floats in [0, 1] with ``alpha`` apart), with the ICC profile
    (iCCP) and EXIF (eXIf) given; Pillow cannot write 16-bit colour PNGs itself.
    Compressed as a stream of row blocks: no second copy of the image is made."""
    import struct
    import zlib

    if rgb.ndim == 2:
        rgb = rgb[..., None]
    if rgb.dtype != np.uint16:
        rgb = _quantize(rgb, alpha, rgb.shape[2] == 1, 65535)
    h, w, c = rgb.shape

    color_type = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    ihdr = struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)
    comp = zlib.compressobj(6)
    with open(path, "wb") as f:

        def chunk(tag: bytes, payload) -> None:  # written in pieces: no copy of a large payload
            f.write(struct.pack(">I", len(payload)))
            f.write(tag)
            f.write(payload)
            f.write(struct.pack(">I", zlib.crc32(payload, zlib.crc32(tag)) & 0xFFFFFFFF))

        f.write(b"\x89PNG\r\n\x1a\n")
        chunk(b"IHDR", ihdr)
        if icc:
            chunk(b"iCCP", b"ICC Profile\0\0" + zlib.compress(icc))
        if exif:
            chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\x00\x00") else exif)
        if xmp:  # iTXt: keyword, no compression, no language, no translated keyword
            chunk(b"iTXt", _PNG_XMP_KEY.encode("latin-1") + b"\0\0\0\0\0" + xmp)
        rows = None
        for r0 in range(0, h, _QUANT_ROWS):
            block = rgb[r0 : r0 + _QUANT_ROWS]
            if rows is None or rows.shape[0] != block.shape[0]:
                rows = np.zeros((block.shape[0], 1 + w * c * 2), np.uint8)  # filter byte 0 (None) per row
            rows[:, 1:] = block.astype(">u2").reshape(block.shape[0], w * c).view(np.uint8)
            piece = comp.compress(rows.data)
            if piece:  # several IDAT chunks are one stream
                chunk(b"IDAT", piece)
        chunk(b"IDAT", comp.flush())
        chunk(b"IEND", b"")
