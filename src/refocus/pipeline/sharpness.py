"""How blurred the input already is, per depth: a cheap estimate for deciding work.

The pipeline must know where the input is sharp (to keep those pixels) and whether
the new blur is at least the old one everywhere (then DeblurNet cannot help: the
input only needs the *extra* blur). DeblurNet's own defocus map answers both, but
costs a network pass; this module answers them beforehand from the image alone.

Method: the re-blur gradient ratio (Zhuo and Sim, "Defocus map estimation from a
single image", 2011). At an edge blurred by a Gaussian of std ``s``, re-blurring
with ``s0`` divides the gradient peak by ``R = sqrt(s^2 + s0^2) / s``, so
``s = s0 / sqrt(R^2 - 1)``. Edge estimates are pooled per disparity bin (a scene's
defocus depends on depth only) by their median, then mapped to a disc radius by a
calibration table measured on the bundled demo photo (downscaled to be sharp, then
blurred with disc kernels of known radius 0..8 px). It is coarse (about +-1 px) and
under-reads blurs beyond ~8 px, which only makes the pipeline add slightly more blur
than asked where the input was already very blurred.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

#: Std (px) of the re-blur.
_S0 = 2.0
#: Median edge reading -> disc radius (px), measured as described above.
_CAL_READ = np.array([0.72, 1.03, 1.61, 2.30, 3.26, 4.20])
_CAL_RADIUS = np.array([0.0, 1.0, 2.0, 3.0, 5.0, 8.0])
#: Fewest edge pixels for a bin's estimate to count.
_MIN_EDGES = 40


def _sobel_xy(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sobel derivatives along x and y with scipy.ndimage's reflected borders, in
    whole-array passes (twice as fast as ``ndimage.sobel`` at 12 MP)."""
    p = np.pad(g, 1, mode="symmetric")
    dx = p[:, 2:] - p[:, :-2]
    gx = dx[:-2] + dx[2:]
    gx += 2.0 * dx[1:-1]
    dy = p[2:] - p[:-2]
    gy = dy[:, :-2] + dy[:, 2:]
    gy += 2.0 * dy[:, 1:-1]
    return gx, gy


def _sobel_at(g: np.ndarray, flat_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_sobel_xy` at the pixels ``flat_idx`` only."""
    w = g.shape[1]
    p = np.pad(g, 1, mode="symmetric").ravel()
    wp = w + 2
    y, x = np.divmod(flat_idx, w)
    c = (y + 1) * wp + (x + 1)

    def at(dy: int, dx: int) -> np.ndarray:
        return p[c + dy * wp + dx]

    gx = (at(-1, 1) - at(-1, -1)) + (at(1, 1) - at(1, -1)) + 2.0 * (at(0, 1) - at(0, -1))
    gy = (at(1, -1) - at(-1, -1)) + (at(1, 1) - at(-1, 1)) + 2.0 * (at(1, 0) - at(-1, 0))
    return gx, gy


def _edge_readings(image_srgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edge pixels (flat indices) and their blur reading (px).

    The re-blurred gradient and the reading are computed at edge pixels only: they
    are a small fraction of the frame, and these per-pixel passes were most of the
    cost at 12 MP.
    """
    g = np.asarray(image_srgb, dtype=np.float32)
    if g.ndim == 3:
        g = g[..., 0] * 0.299 + g[..., 1] * 0.587 + g[..., 2] * 0.114
    mag = np.hypot(*_sobel_xy(g))
    mag /= 8.0
    # Edges: local maxima of the gradient that stand out of the noise.
    # An absolute threshold: one relative to the strongest edges would drop the
    # weaker edges of blurred regions, exactly the ones to measure.
    thresh = 0.02
    edges = np.flatnonzero((mag > thresh) & (mag >= ndimage.maximum_filter(mag, size=3)))
    mag_b = np.hypot(*_sobel_at(ndimage.gaussian_filter(g, _S0), edges)) / 8.0
    m = mag.ravel()[edges]
    ratio = m / np.maximum(mag_b, 1e-6)
    s = _S0 / np.sqrt(np.maximum(ratio**2 - 1.0, 1e-3))
    return edges, (2.0 * s).astype(np.float32)


def calibrate(reading: np.ndarray) -> np.ndarray:
    """Median edge reading -> disc blur radius (px); linear beyond the table."""
    r = np.asarray(reading, dtype=np.float64)
    slope = (_CAL_RADIUS[-1] - _CAL_RADIUS[-2]) / (_CAL_READ[-1] - _CAL_READ[-2])
    out = np.interp(r, _CAL_READ, _CAL_RADIUS)
    out = np.where(r > _CAL_READ[-1], _CAL_RADIUS[-1] + slope * (r - _CAL_READ[-1]), out)
    return out.astype(np.float32)


def blur_by_disparity(image_srgb: np.ndarray, disparity: np.ndarray, n_bins: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """Input blur radius (px) as a function of disparity.

    Parameters
    ----------
    image_srgb : (H, W, 3) float32 in [0, 1]
    disparity : (H, W) float32, normalised to [0, 1]
    n_bins : number of disparity bins

    Returns
    -------
    centres : (n_bins,) disparity of each bin centre
    radius_px : (n_bins,) blur radius per bin; NaN where too few edges were found.
    """
    edges, reading = _edge_readings(image_srgb)
    d = np.clip(np.asarray(disparity, dtype=np.float32).ravel()[edges], 0.0, 1.0)
    med = _median_per_bin(np.minimum((d * n_bins).astype(np.int64), n_bins - 1), reading, n_bins)
    out = np.where(np.isfinite(med), calibrate(np.nan_to_num(med)), np.nan).astype(np.float32)
    centres = (np.arange(n_bins, dtype=np.float32) + 0.5) / n_bins
    return centres, out


def _median_per_bin(idx: np.ndarray, values: np.ndarray, n_bins: int) -> np.ndarray:
    """Median of the finite ``values`` in each bin ``idx`` (NaN with fewer than
    ``_MIN_EDGES``); grouped with one sort, not a full-frame mask per bin."""
    order = np.argsort(idx, kind="stable")
    idx, values = idx[order], values[order]
    bounds = np.searchsorted(idx, np.arange(n_bins + 1))
    out = np.full(n_bins, np.nan, dtype=np.float32)
    for b in range(n_bins):
        v = values[bounds[b] : bounds[b + 1]]
        v = v[np.isfinite(v)]
        if v.size >= _MIN_EDGES:
            out[b] = float(np.median(v))
    return out


def input_blur_map(image_srgb: np.ndarray, disparity: np.ndarray, n_bins: int = 24) -> np.ndarray:
    """Per-pixel input blur radius (px), from the per-disparity estimate.

    Pixels whose disparity bin has too few edges get NaN (unknown): the pipeline
    neither keeps them as sharp nor subtracts a blur there, and runs the deblurrer
    when the new focus wants them sharp (a strong blur leaves no edge to read: a
    14 px disc reads NaN, a 10 px one reads 3-4 px on a dense texture).
    """
    centres, per_bin = blur_by_disparity(image_srgb, disparity, n_bins)
    idx = np.minimum((np.clip(disparity, 0, 1) * n_bins).astype(np.int64), n_bins - 1)
    return per_bin[idx].astype(np.float32)


def pool_blur_by_disparity(
    blur_px: np.ndarray, disparity: np.ndarray, image_srgb: np.ndarray, n_bins: int = 24, prior_px: np.ndarray | None = None
) -> np.ndarray:
    """A per-pixel blur map (e.g. DeblurNet's) made a function of disparity.

    A scene's defocus depends on depth only, while a network's per-pixel reading is
    only reliable where there is texture to read it from. Per disparity bin, the
    median of ``blur_px`` over the textured pixels (the edge pixels of
    :func:`_edge_readings`); bins with fewer than ``_MIN_EDGES`` of them keep the
    per-pixel values. With ``prior_px`` (the edge-based :func:`input_blur_map`), the
    smaller of the two where both are known: over-reading blur makes the pipeline
    sharpen or skip blur where none is needed, the costlier error.

    Returns
    -------
    (H, W) float32, px.
    """
    blur = np.asarray(blur_px, dtype=np.float32)
    edges, _ = _edge_readings(image_srgb)
    d = np.clip(np.asarray(disparity, dtype=np.float32), 0.0, 1.0)
    idx_all = np.minimum((d * n_bins).astype(np.int64), n_bins - 1)
    per_bin = _median_per_bin(idx_all.ravel()[edges], blur.ravel()[edges], n_bins)
    pooled = per_bin[idx_all]
    out = np.where(np.isfinite(pooled), pooled, blur)
    if prior_px is not None:
        prior = np.asarray(prior_px, dtype=np.float32)
        out = np.where(np.isfinite(prior) & np.isfinite(out), np.minimum(out, prior), np.where(np.isfinite(out), out, prior))
    return out.astype(np.float32)
