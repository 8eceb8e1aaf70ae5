"""Reading depth and disparity maps from files.

Returns the raw values as float32 H x W; what they mean (disparity or distance,
normalised or metric) is decided by the caller (``--depth-kind``). Supported:
``.npy``, ``.pfm`` (rows bottom-up, as the format requires), 8/16-bit PNG, float or
integer TIFF, and ``.exr`` when OpenEXR or imageio can read it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from refocus.errors import RefocusError


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


def read_pfm(path: str | os.PathLike) -> np.ndarray:
    """Read a PFM file (grayscale 'Pf' or colour 'PF'; first channel kept)."""
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
        channels = 3 if header == b"PF" else 1
        dtype = "<f4" if scale < 0 else ">f4"
        data = np.frombuffer(f.read(), dtype=dtype)
    if data.size < w * h * channels:
        raise RefocusError(f"{Path(path).name}: truncated PFM data")
    arr = data[: w * h * channels].reshape(h, w, channels)[..., 0]
    return np.ascontiguousarray(np.flipud(arr), dtype=np.float32)


def write_pfm(path: str | os.PathLike, arr: np.ndarray) -> None:
    """Write a grayscale little-endian PFM (rows bottom-up)."""
    arr = np.asarray(arr, dtype="<f4")
    h, w = arr.shape
    with open(path, "wb") as f:
        f.write(b"Pf\n" + f"{w} {h}\n".encode() + b"-1.0\n")
        f.write(np.flipud(arr).tobytes())


def read_depth_file(path: str | os.PathLike) -> np.ndarray:
    """Read a depth/disparity map as float32 H x W (raw values, not normalised).

    Integer images are returned in their native units (0..255 or 0..65535), which is
    harmless because the renderer min-max normalises relative maps anyway.
    """
    path = Path(path)
    if not path.exists():
        raise RefocusError(f"depth map not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
        elif suffix == ".pfm":
            arr = read_pfm(path)
        elif suffix in (".tif", ".tiff"):
            import tifffile

            arr = tifffile.imread(path)
        elif suffix == ".exr":
            arr = _read_exr(path)
        else:
            from PIL import Image

            with Image.open(path) as img:
                if img.mode in ("I;16", "I;16B", "I;16L", "I", "F", "L"):
                    arr = np.asarray(img)
                else:
                    arr = np.asarray(img.convert("L"))
    except RefocusError:
        raise
    except Exception as exc:
        raise RefocusError(f"cannot read depth map {path.name}: {exc.__class__.__name__}: {exc}".split("\n")[0]) from None
    arr = np.asarray(arr)
    if arr.ndim == 3:
        arr = arr[..., 0] if arr.shape[-1] <= 4 else arr[0]
    if arr.ndim != 2 or arr.size == 0:
        raise RefocusError(f"depth map {path.name} must be a 2-D array, got shape {arr.shape}")
    if arr.dtype.kind not in "uif":
        raise RefocusError(f"depth map {path.name} has unsupported type {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def _read_exr(path: Path) -> np.ndarray:
    try:
        import imageio.v3 as iio

        return np.asarray(iio.imread(path))
    except Exception as exc:
        raise RefocusError(
            f"cannot read EXR {path.name} ({exc.__class__.__name__}); install an EXR plugin (pip install OpenEXR) or convert to .npy/.pfm/.tif"
        ) from None
