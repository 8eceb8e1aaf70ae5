"""Writing a depth result: the float map, a 16-bit disparity PNG and a coloured preview."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from refocus.errors import RefocusError

# Anchor colours of a perceptually ordered map (dark violet = far, yellow = near),
# sampled from matplotlib's "magma"-like ramp so no plotting library is needed.
_ANCHORS = np.array(
    [
        [0.001, 0.000, 0.014],
        [0.231, 0.059, 0.439],
        [0.550, 0.161, 0.506],
        [0.868, 0.288, 0.409],
        [0.994, 0.624, 0.427],
        [0.987, 0.991, 0.750],
    ],
    dtype=np.float32,
)


def colorize(disparity01: np.ndarray) -> np.ndarray:
    """H x W x 3 sRGB preview of a [0, 1] disparity map (bright = near)."""
    t = np.clip(np.nan_to_num(np.asarray(disparity01, np.float32)), 0, 1) * (len(_ANCHORS) - 1)
    i = np.minimum(t.astype(np.int32), len(_ANCHORS) - 2)
    f = (t - i)[..., None]
    return (_ANCHORS[i] * (1 - f) + _ANCHORS[i + 1] * f).astype(np.float32)


#: Colour of the in-focus band's hatching and outline in :func:`depth_overlay`.
BAND_RGB = np.array([0.25, 1.0, 0.35], dtype=np.float32)


def depth_overlay(disparity01: np.ndarray, in_focus: np.ndarray, image: np.ndarray | None = None, opacity: float = 0.7) -> np.ndarray:
    """The depth map with the in-focus band marked, for the UI's "show depth" view.

    ``colorize`` of the disparity (over the photo at ``opacity`` when ``image`` is
    given); the pixels of ``in_focus`` (H x W bool: what renders sharp) are hatched
    with green diagonal stripes and outlined, so the band reads at a glance and the
    depth colours under it stay visible.
    """
    from scipy.ndimage import binary_erosion

    col = colorize(disparity01)
    if image is not None:
        col = opacity * col + (1.0 - opacity) * np.asarray(image, dtype=np.float32)[..., :3]
    band = np.asarray(in_focus, dtype=bool)
    if band.any():
        h, w = band.shape
        # Stripes a fixed fraction of the picture apart, so a preview and a draft look alike.
        period_px = max(4, round(max(h, w) / 80))
        yy, xx = np.mgrid[0:h, 0:w]
        stripe = ((xx + yy) % period_px) < max(1, period_px // 3)
        edge = band & ~binary_erosion(band, iterations=max(1, period_px // 6), border_value=1)
        mark = (band & stripe) | edge
        col = np.where(mark[..., None], BAND_RGB, col)
    return np.clip(col, 0, 1).astype(np.float32)


#: Formats the float depth can be written in.
DEPTH_SUFFIXES = (".npy", ".pfm", ".tif", ".tiff")


def sidecar_paths(out: Path) -> tuple[Path, Path]:
    """The 16-bit disparity PNG and the preview written beside ``out`` (a path with a
    file name: ``refocus depth`` asks for none for ``-o .``, which it then refuses)."""
    out = Path(out)
    return out.with_name(out.stem + "-disparity.png"), out.with_name(out.stem + "-preview.png")


def write_depth_outputs(
    out: str | os.PathLike,
    values: np.ndarray,
    disparity01: np.ndarray,
    protect: list[Path] = (),
    kind: str = "disparity",
    metric: bool = False,
) -> list[Path]:
    """Write ``values`` (float32) to ``out`` (.npy, .pfm, .tif/.tiff) and the two PNGs beside it.

    ``kind`` ("disparity" or "depth") and ``metric`` say what ``values`` hold; ``out``
    records them where its format can (:func:`refocus.io.depthfile.write_depth_file`:
    not PFM), the disparity PNG records that it holds relative disparity, so either
    file keeps its meaning when it is given back to ``--depth``. Nothing in
    ``protect`` (the inputs) is ever overwritten. Writes are atomic.
    """
    from refocus.io.depthfile import depth_meta, write_depth_file
    from refocus.io.image import atomic_write_many, image_writer
    from refocus.io.outputs import check_outputs

    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in DEPTH_SUFFIXES:
        raise RefocusError(f"depth output must be .npy, .pfm or .tif, got {suffix or '(none)'}")
    depth_meta(kind, metric)  # an unknown kind: refused before anything is written
    png16, preview = sidecar_paths(out)
    check_outputs([out, png16, preview], protect, overwrite=True)  # the command checked the sidecars
    vals = np.ascontiguousarray(values, dtype=np.float32)

    # The three files appear together or not at all (a full disk must not leave a
    # half-written set that looks complete).
    return atomic_write_many([
        (out, lambda tmp: write_depth_file(tmp, vals, kind, metric, suffix=suffix)),
        (png16, _gray16_writer(np.clip(disparity01, 0, 1))),
        (preview, image_writer(preview, colorize(disparity01), bit_depth=8)),
    ])


def _gray16_writer(x01: np.ndarray):
    """The 16-bit PNG of a [0, 1] disparity, recording that it holds relative disparity."""
    import json

    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    from refocus.io.depthfile import META_KEY, depth_meta

    arr = np.round(x01 * 65535).astype(np.uint16)
    text = PngInfo()
    text.add_text(META_KEY, json.dumps(depth_meta("disparity", False)))
    return lambda tmp: Image.fromarray(arr).save(tmp, format="PNG", pnginfo=text)
