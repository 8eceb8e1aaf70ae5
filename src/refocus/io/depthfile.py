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
        raise RefocusError(
            f"{what} has values up to {peak:.3g}, beyond +-{MAX_DEPTH_MAGNITUDE:g} (metres or pixels): not a usable depth map"
        )


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
    """Read a PFM file (grayscale 'Pf' or colour 'PF'; first channel kept).

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
    arr = data[: w * h * channels].reshape(h, w, channels)[..., 0]
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
    from refocus.io.limits import check_file, max_pixels as budget, pillow_open

    path = Path(path)
    if not path.exists():
        raise RefocusError(f"depth map not found: {path}")
    if path.is_dir():
        raise RefocusError(f"expected a depth map file, got a folder: {path}")
    suffix = path.suffix.lower()
    what = f"depth map {path.name}"
    limit = budget() if max_pixels is None else int(max_pixels)
    try:
        check_file(path, what, limit)
        if suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
        elif suffix == ".pfm":
            arr = read_pfm(path, limit)
        elif suffix in (".tif", ".tiff"):
            import tifffile

            arr = tifffile.imread(path)
        elif suffix == ".exr":
            arr = _read_exr(path)
        else:
            with pillow_open(path, what, limit) as img:
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
    check_depth_values(arr, what)
    return np.ascontiguousarray(arr, dtype=np.float32)


def _read_exr(path: Path) -> np.ndarray:
    try:
        import imageio.v3 as iio

        return np.asarray(iio.imread(path))
    except Exception as exc:
        raise RefocusError(
            f"cannot read EXR {path.name} ({exc.__class__.__name__}); install an EXR plugin (pip install OpenEXR) or convert to .npy/.pfm/.tif"
        ) from None
