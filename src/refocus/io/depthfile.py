"""Reading depth and disparity maps from files.

Returns the raw values as float32 H x W; what they mean (disparity or distance,
normalised or metric) is decided by the caller (``--depth-kind``), or by what the
file records: a map ``refocus depth`` wrote (:func:`write_depth_file`) states its
kind -- in a TIFF's ImageDescription JSON, a PNG text chunk, a comment in a
``.npy`` header (invisible to ``np.load``) -- which :func:`read_depth_meta` returns.
PFM has no place for it. Supported: ``.npy``, ``.pfm`` (rows bottom-up, as the
format requires), 8/16-bit PNG, float or integer TIFF, and ``.exr`` when OpenEXR or
imageio can read it.

A map has one value per pixel: a grey image saved as colour (all colour channels
equal) is read as its grey, an alpha channel (grey + alpha, RGBA) is dropped, and a
map whose colour channels differ (a coloured preview, three maps in one array) is
refused, in every format alike.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np

from refocus.errors import RefocusError, unreadable_image

#: Largest magnitude accepted in a depth or disparity map (metres, 1/m, pixels or
#: raw integer units): 1e6 is far beyond any real scene (a 16-bit PNG holds at most
#: 65535) yet far below float32's 3e38, so sums and squares in the edge-aligning
#: filter cannot overflow.
MAX_DEPTH_MAGNITUDE = 1e6


def check_depth_values(arr: np.ndarray, what: str) -> None:
    """Refuse a map with no finite value or with finite values beyond +-1e6, saying which."""
    a = np.asarray(arr)
    if a.dtype.kind not in "uif":
        raise RefocusError(f"{what} has unsupported type {a.dtype}")
    if a.dtype.kind != "f":
        if a.size and float(np.abs(a).max()) > MAX_DEPTH_MAGNITUDE:
            raise RefocusError(f"{what} has values up to {float(np.abs(a).max()):.3g}, beyond +-{MAX_DEPTH_MAGNITUDE:g}: not a depth map")
        return
    finite = np.isfinite(a)
    n_finite = int(finite.sum())
    if n_finite == 0:
        raise RefocusError(f"{what} has no finite values (all NaN or infinite)")
    peak = float(np.abs(np.where(finite, a, 0)).max())
    if peak > MAX_DEPTH_MAGNITUDE:
        with np.errstate(invalid="ignore"):
            big = finite & (np.abs(a) > MAX_DEPTH_MAGNITUDE)
            background = bool((a[big] > 0).all()) and int(big.sum()) < n_finite
        # A rendered depth pass marks 'nothing hit' with a huge distance (Blender: 1e10).
        hint = ("; if those are a render's background (nothing hit), write them as inf, which --depth-kind depth "
                "reads as infinitely far") if background else ""
        raise RefocusError(
            f"{what} has values up to {peak:.3g}, beyond +-{MAX_DEPTH_MAGNITUDE:g} (metres or pixels): not a usable depth map{hint}"
        )


#: Where refocus records what a depth file it wrote holds: the key of a TIFF's
#: ImageDescription JSON and of a PNG text chunk, the tag of a ``.npy`` header comment.
META_KEY = "refocus"


def depth_meta(kind: str, metric: bool) -> dict:
    """What a depth file records about its values: ``{"kind": ..., "metric": ...}``."""
    if kind not in ("disparity", "depth"):
        raise RefocusError(f"unknown depth kind {kind!r}: use disparity or depth")
    return {"kind": kind, "metric": bool(metric)}


def _parse_meta(text: str | None, nested: bool = False) -> dict:
    """``{"kind": ..., "metric": ...}`` from JSON text (``nested``: under the key
    :data:`META_KEY` of a larger object, as in a TIFF's description), else ``{}``."""
    try:
        meta = json.loads(text) if text else None
    except ValueError:
        return {}
    if nested:
        meta = meta.get(META_KEY) if isinstance(meta, dict) else None
    if not isinstance(meta, dict) or meta.get("kind") not in ("disparity", "depth"):
        return {}
    return {"kind": meta["kind"], "metric": bool(meta.get("metric", False))}


def read_depth_meta(path: str | os.PathLike) -> dict:
    """What a depth file says it holds (``{"kind": "disparity"|"depth", "metric": bool}``),
    or ``{}`` when it says nothing (any file refocus did not write, and every PFM).

    Reads headers only; an unreadable header is ``{}`` (:func:`read_depth_file`
    reports the file's faults).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            with open(path, "rb") as f:
                head = f.read(12)
                if head[:6] != b"\x93NUMPY":
                    return {}
                n = struct.unpack("<H", head[8:10])[0] if head[6] == 1 else struct.unpack("<I", head[8:12])[0]
                f.seek(10 if head[6] == 1 else 12)
                header = f.read(min(n, 1 << 16)).decode("latin1")
            tag = f"# {META_KEY} "
            return _parse_meta(header.split(tag, 1)[1].strip()) if tag in header else {}
        if suffix in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                desc = tif.pages[0].description
            return _parse_meta(desc, nested=True)  # tifffile's {"shape": ..., "refocus": {...}}
        if suffix == ".png":
            from PIL import Image

            with Image.open(path) as img:  # text chunks before the pixels are read at open
                return _parse_meta(img.info.get(META_KEY))
    except Exception:
        return {}
    return {}


def _write_npy(path: str | os.PathLike, arr: np.ndarray, meta: dict) -> None:
    """A ``.npy`` file (format 1.0, as ``np.save`` writes) whose header ends with the
    comment ``# refocus {json}``, which ``np.load`` (and every reader that evaluates the
    header as a Python literal) ignores."""
    arr = np.ascontiguousarray(arr)
    d = np.lib.format.header_data_from_array_1_0(arr)
    text = "{" + "".join(f"{k!r}: {d[k]!r}, " for k in sorted(d)) + "}"
    text += f"  # {META_KEY} " + json.dumps(meta, separators=(", ", ": "))
    pad = -(10 + len(text) + 1) % 64  # magic, version, length; the data starts 64-aligned
    header = (text + " " * pad + "\n").encode("latin1")
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header)
        f.write(memoryview(arr).cast("B"))


def write_depth_file(path: str | os.PathLike, values: np.ndarray, kind: str, metric: bool = False,
                     suffix: str | None = None) -> None:
    """Write a float32 H x W map as ``.npy``, ``.pfm`` or ``.tif``/``.tiff`` (by
    ``suffix``, default ``path``'s), recording ``kind`` and ``metric`` where the format
    has room (not PFM): :func:`read_depth_meta` reads them back, so the map keeps its
    meaning when it is given to ``--depth``."""
    suffix = (suffix or Path(path).suffix).lower()
    vals = np.ascontiguousarray(values, dtype=np.float32)
    meta = depth_meta(kind, metric)
    if suffix == ".npy":
        _write_npy(path, vals, meta)
    elif suffix == ".pfm":
        write_pfm(path, vals)
    elif suffix in (".tif", ".tiff"):
        import tifffile

        tifffile.imwrite(path, vals, metadata={META_KEY: meta})
    else:
        raise RefocusError(f"depth output must be .npy, .pfm or .tif, got {suffix or '(none)'}")


def _channels_equal(colour: np.ndarray) -> bool:
    """Whether the channels of H x W x C agree: a grey image saved as colour (to within
    one 8-bit step for integers, a JPEG's rounding; 1e-6 of the peak for floats)."""
    if colour.dtype.kind in "ui":
        tol = float(np.iinfo(colour.dtype).max) / 255.0
    else:
        finite = np.isfinite(colour[..., 0])
        tol = 1e-6 * (float(np.abs(colour[..., 0][finite]).max()) if finite.any() else 0.0)
    first = colour[..., 0].astype(np.float64 if colour.dtype.kind == "f" else np.float32)
    for c in range(1, colour.shape[-1]):
        with np.errstate(invalid="ignore"):
            if bool((np.abs(colour[..., c] - first) > tol).any()):
                return False
    return True


def one_channel(arr: np.ndarray, name: str) -> np.ndarray:
    """The map of an H x W (x C) array as H x W: alpha dropped (C = 2 grey + alpha,
    C = 4 RGBA), a grey saved as colour taken as its grey; a colour map refused.
    Channels first (C x H x W, C <= 4: a torch tensor saved as it is, a TIFF of three
    pages) follow the same rule. A stack of maps (first axis longer than 4 and last
    axis too) gives its first."""
    arr = np.asarray(arr)
    if arr.ndim != 3 or arr.dtype.kind not in "uif":
        return arr  # the caller refuses other shapes and types, saying which
    shape = arr.shape  # as the file has it, for the message
    c = arr.shape[-1]
    if c > 4:
        if arr.shape[0] > 4:
            import warnings

            # A multi-page TIFF or an .npy of several maps: which one is meant cannot be
            # known; said, not silent.
            warnings.warn(f"depth map {name} holds {arr.shape[0]} maps of {arr.shape[2]}x{arr.shape[1]} (a stack): "
                          "the first is used", stacklevel=2)
            return arr[0]
        # Taking the first plane read the red of a colour-mapped preview as depth.
        arr = np.moveaxis(arr, 0, -1)
        c = arr.shape[-1]
    colour = arr[..., : {1: 1, 2: 1, 3: 3, 4: 3}[c]]
    if colour.shape[-1] > 1 and not _channels_equal(colour):
        raise RefocusError(
            f"depth map {name} has {colour.shape[-1]} colour channels that differ (shape {'x'.join(map(str, shape))}): "
            "a depth map has one value per pixel; save it with one channel (grey, or an H x W array)"
        )
    return colour[..., 0]


def as_depth_map(depth) -> np.ndarray:
    """A depth/disparity array as float32 H x W (first channel of H x W x C kept).

    Raises :class:`RefocusError` unless the result is 2-D and non-empty.
    """
    d = np.asarray(depth, dtype=np.float32)
    if d.ndim == 3 and d.shape[2] in (1, 3, 4):
        d = d[..., 0]
    if d.ndim != 2 or d.size == 0:
        raise RefocusError(f"depth map must be 2-D and non-empty, got shape {d.shape}")
    return d


def read_pfm(path: str | os.PathLike, max_pixels: int | None = None) -> np.ndarray:
    """Read a PFM file (grayscale 'Pf', or colour 'PF' whose channels are equal: see
    :func:`one_channel`).

    The scale line's sign gives the byte order (negative: little-endian); a scale of
    0, NaN or infinity is refused (the format has no such file). The declared size is
    checked against the pixel budget before the data is read.
    """
    from refocus.io.limits import check_pixels

    with open(path, "rb") as f:
        header = f.readline().strip()
        if header not in (b"PF", b"Pf"):
            raise RefocusError(f"{Path(path).name} is not a PFM file")
        dims = f.readline()
        while dims.startswith(b"#"):
            dims = f.readline()
        try:
            w, h = (int(v) for v in dims.split())
            scale = float(f.readline().strip())
        except ValueError:
            raise RefocusError(f"{Path(path).name}: malformed PFM header") from None
        if not np.isfinite(scale) or scale == 0:
            raise RefocusError(f"{Path(path).name}: invalid PFM scale {scale:g} (must be a non-zero number; its sign is the byte order)")
        check_pixels(w, h, f"depth map {Path(path).name}", max_pixels)
        channels = 3 if header == b"PF" else 1
        dtype = "<f4" if scale < 0 else ">f4"
        data = np.frombuffer(f.read(), dtype=dtype)
    if data.size < w * h * channels:
        raise RefocusError(f"{Path(path).name}: truncated PFM data")
    arr = one_channel(data[: w * h * channels].reshape(h, w, channels), Path(path).name)
    return np.ascontiguousarray(np.flipud(arr), dtype=np.float32)


def write_pfm(path: str | os.PathLike, arr: np.ndarray) -> None:
    """Write a grayscale little-endian PFM (rows bottom-up)."""
    arr = np.asarray(arr, dtype="<f4")
    h, w = arr.shape
    with open(path, "wb") as f:
        f.write(b"Pf\n" + f"{w} {h}\n".encode() + b"-1.0\n")
        f.write(np.flipud(arr).tobytes())


def read_depth_file(path: str | os.PathLike, max_pixels: int | None = None) -> np.ndarray:
    """Read a depth/disparity map as float32 H x W (raw values, not normalised).

    Integer images are returned in their native units (0..255 or 0..65535), which is
    harmless because the renderer min-max normalises relative maps anyway. The size the
    file declares is checked against the pixel budget (``max_pixels``, default the
    setting of :mod:`refocus.io.limits`) before decoding; a map without finite values,
    or with values beyond +-1e6, is refused.
    """
    from refocus.io.image import is_png16_multichannel
    from refocus.io.limits import check_file, max_pixels as budget, pillow_open

    path = Path(path)
    if not path.exists():
        raise RefocusError(f"depth map not found: {path}")
    if path.is_dir():
        raise RefocusError(f"expected a depth map file, got a folder: {path}")
    suffix = path.suffix.lower()
    what = f"depth map {path.name}"
    limit = budget() if max_pixels is None else int(max_pixels)
    # A map saved with an EXIF orientation is turned upright as its photo is (found
    # 2026-12-07: a map rotated by 180 degrees with orientation 3 swapped near and far
    # without a word, and one with orientation 6 was refused as the wrong aspect).
    orientation = 1
    try:
        check_file(path, what, limit)
        if suffix == ".npy":
            arr = _load_npy(path)
        elif suffix == ".pfm":
            arr = read_pfm(path, limit)
        elif suffix in (".tif", ".tiff"):
            import tifffile

            from refocus.io.image import tiff_orientation

            with tifffile.TiffFile(path) as tf:
                arr = tf.asarray()
                orientation = tiff_orientation(tf.pages[0])
        elif suffix == ".exr":
            arr = _read_exr(path)  # its declared size was checked by check_file
        elif is_png16_multichannel(path):  # 16-bit grey + alpha or colour: Pillow reads only 8 bits
            import imagecodecs

            arr = imagecodecs.png_decode(path.read_bytes())
        else:
            with pillow_open(path, what, limit) as img:
                orientation = int(img.getexif().get(274, 1) or 1)
                if img.mode in ("I;16", "I;16B", "I;16L", "I", "F", "L"):
                    arr = np.asarray(img)
                elif img.mode in ("1", "LA", "La"):
                    arr = np.asarray(img.convert("L"))  # grey + alpha: the alpha dropped
                else:  # colour, palette: a grey saved as colour is its grey, see one_channel
                    arr = np.asarray(img.convert("RGB"))
    except RefocusError:
        raise
    except Exception as exc:
        raise unreadable_image(path, exc, "depth map") from None
    arr = one_channel(np.asarray(arr), path.name)
    if arr.ndim != 2 or arr.size == 0:
        raise RefocusError(f"depth map {path.name} must be a 2-D array, got shape {arr.shape}")
    if orientation in range(2, 9):
        from refocus.io.image import apply_orientation

        arr = apply_orientation(arr, orientation)
    if arr.dtype.kind not in "uif":
        raise RefocusError(f"depth map {path.name} has unsupported type {arr.dtype}")
    check_depth_values(arr, what)
    return np.ascontiguousarray(arr, dtype=np.float32)


#: EXR channel names (the last part of a layered name such as ``ViewLayer.Depth.Z``)
#: that hold a depth map, in order of preference, when an EXR has several channels.
EXR_DEPTH_CHANNELS = ("z", "depth", "d", "distance", "disparity")


def _load_npy(path: Path) -> np.ndarray:
    """``np.load`` of a ``.npy`` array of numbers. Without the NumPy magic, np.load
    reads a file as a pickle, and a text or image file named ``.npy`` was answered
    "contains pickled (object) data ... if you trust the file ... allow_pickle"."""
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic and magic != b"\x93NUMPY":
        raise RefocusError(f"cannot read depth map {path.name}: not a NumPy .npy file (no .npy header); "
                           "save the map with numpy.save, or give it as PNG, TIFF, PFM or EXR")
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" not in str(exc):
            raise
        raise RefocusError(f"cannot read depth map {path.name}: it holds Python objects, not an array of numbers "
                           "(refocus never loads pickled data)") from None


def _read_exr(path: Path) -> np.ndarray:
    """An EXR's depth channel: read with the OpenEXR package when it is installed (the
    reader the error names), else by imageio's plugins; one line naming both when
    neither can."""
    try:
        import OpenEXR
    except ImportError:
        OpenEXR = None
    if OpenEXR is not None and (hasattr(OpenEXR, "File") or hasattr(OpenEXR, "InputFile")):
        try:
            return _read_exr_openexr(OpenEXR, path)
        except RefocusError:
            raise
        except Exception as exc:
            cause = (str(exc).splitlines() or [""])[0]
            raise RefocusError(f"cannot read EXR {path.name}: {exc.__class__.__name__}{': ' + cause if cause else ''}") from None
    try:
        import imageio.v3 as iio

        return np.asarray(iio.imread(path))
    except Exception as exc:
        raise RefocusError(
            f"cannot read EXR {path.name} ({exc.__class__.__name__}); install the OpenEXR package (pip install OpenEXR), "
            "which refocus then uses, or convert the map to .npy/.pfm/.tif"
        ) from None


def _pick_exr_channel(names: list[str], path: Path) -> list[str]:
    """The channel(s) of an EXR that hold its map: the only one, else the first depth
    channel by name (:data:`EXR_DEPTH_CHANNELS`), else Y, else R, G, B (the caller
    refuses them when they differ)."""
    if len(names) == 1:
        return names
    last = {n: n.rsplit(".", 1)[-1].lower() for n in names}
    for want in (*EXR_DEPTH_CHANNELS, "y"):  # Y: a grey image (with its alpha A)
        for n in names:
            if last[n] == want:
                return [n]
    rgb = [next((n for n in names if last[n] == c), None) for c in ("r", "g", "b")]
    if all(rgb):
        return rgb
    raise RefocusError(
        f"EXR {path.name} has the channels {', '.join(sorted(names))} and none of them is a depth map "
        f"(a single channel, or one named {', '.join(c.upper() if len(c) == 1 else c for c in EXR_DEPTH_CHANNELS)})"
    )


def _read_exr_openexr(OpenEXR, path: Path) -> np.ndarray:
    """The EXR's map through the OpenEXR package (3.x ``OpenEXR.File``, or the older
    ``OpenEXR.InputFile``)."""
    if hasattr(OpenEXR, "File"):
        channels = OpenEXR.File(str(path), separate_channels=True).channels()
        planes = [np.asarray(channels[n].pixels) for n in _pick_exr_channel(list(channels), path)]
    else:
        import Imath

        f = OpenEXR.InputFile(str(path))
        try:
            header = f.header()
            box = header["dataWindow"]
            w, h = box.max.x - box.min.x + 1, box.max.y - box.min.y + 1
            pt = Imath.PixelType(Imath.PixelType.FLOAT)
            planes = [np.frombuffer(f.channel(n, pt), dtype=np.float32).reshape(h, w)
                      for n in _pick_exr_channel(list(header["channels"]), path)]
        finally:
            f.close()
    return planes[0] if len(planes) == 1 else np.stack(planes, axis=-1)
