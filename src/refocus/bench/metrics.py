"""Image-quality metrics: PSNR, SSIM and LPIPS, computed on sRGB images in [0, 1].

Conventions
-----------
* Both images must have the same shape (a mismatch is a :class:`RefocusError`);
  values are clipped to [0, 1] first.
* PSNR is capped at :data:`PSNR_CAP_DB` (100 dB): identical images give exactly the
  cap instead of infinity, so every number in reports and JSON is finite and means
  over cases stay defined. Real differences never come close (one 16-bit code value
  of error everywhere is ~96 dB).
* SSIM is scikit-image's (Gaussian-free 7x7 window, ``data_range=1``, averaged over
  the three channels).
* LPIPS is AlexNet v0.1 (:mod:`refocus.bench.lpips`), 0 for identical images.
"""

from __future__ import annotations

import math
import os

import numpy as np

from refocus.errors import RefocusError

#: PSNR reported for identical images, dB.
PSNR_CAP_DB = 100.0


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if b.ndim == 2:
        b = np.repeat(b[..., None], 3, axis=2)
    if a.shape != b.shape:
        raise RefocusError(
            f"images differ in size: {a.shape[1]}x{a.shape[0]}x{a.shape[2]} vs {b.shape[1]}x{b.shape[0]}x{b.shape[2]}"
            if a.ndim == 3 and b.ndim == 3
            else f"images differ in shape: {a.shape} vs {b.shape}"
        )
    if a.ndim != 3 or a.shape[2] != 3 or a.size == 0:
        raise RefocusError(f"images must be H x W x 3 and non-empty, got shape {a.shape}")
    a = np.clip(np.nan_to_num(a, nan=0.0), 0.0, 1.0)
    b = np.clip(np.nan_to_num(b, nan=0.0), 0.0, 1.0)
    return a, b


def crop_border(img: np.ndarray, border_px: int) -> np.ndarray:
    """Remove ``border_px`` pixels from every side.

    Raises
    ------
    RefocusError
        When the crop would leave nothing.
    """
    border_px = int(border_px)
    if border_px < 0:
        raise RefocusError(f"crop must be >= 0 px, got {border_px}")
    if border_px == 0:
        return img
    h, w = img.shape[:2]
    if 2 * border_px >= min(h, w):
        raise RefocusError(f"crop of {border_px} px leaves nothing of a {w}x{h} image")
    return img[border_px : h - border_px, border_px : w - border_px]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB (peak 1), capped at :data:`PSNR_CAP_DB`."""
    a, b = _pair(a, b)
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    if mse <= 10.0 ** (-PSNR_CAP_DB / 10.0):
        return PSNR_CAP_DB
    return min(PSNR_CAP_DB, -10.0 * math.log10(mse))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Structural similarity (scikit-image, ``data_range=1``, mean over channels), in [-1, 1]."""
    from skimage.metrics import structural_similarity

    a, b = _pair(a, b)
    if min(a.shape[:2]) < 7:
        raise RefocusError(f"SSIM needs images of at least 7 x 7 px, got {a.shape[1]}x{a.shape[0]}")
    return float(structural_similarity(a, b, data_range=1.0, channel_axis=2))


def lpips(a: np.ndarray, b: np.ndarray, weights: str | os.PathLike | None = None) -> float:
    """LPIPS (AlexNet v0.1) distance; see :mod:`refocus.bench.lpips` for the weights."""
    from refocus.bench.lpips import lpips_distance

    a, b = _pair(a, b)
    return lpips_distance(a, b, weights)


def compute_metrics(
    a: np.ndarray,
    b: np.ndarray,
    crop_px: int = 0,
    with_lpips: bool = True,
    lpips_weights: str | os.PathLike | None = None,
) -> dict[str, float | None]:
    """PSNR (dB), SSIM and LPIPS of ``a`` against ``b`` after cropping a border.

    Parameters
    ----------
    a, b:
        float sRGB images, H x W x 3 (or H x W), in [0, 1], same shape.
    crop_px:
        Border removed from every side before measuring, px.
    with_lpips:
        When False, ``"lpips"`` is None (no weights needed).
    lpips_weights:
        Weights file for LPIPS (default search: see :mod:`refocus.bench.lpips`).

    Returns
    -------
    ``{"psnr": dB, "ssim": ..., "lpips": ... or None}``.
    """
    a, b = _pair(a, b)
    a = crop_border(a, crop_px)
    b = crop_border(b, crop_px)
    return {
        "psnr": psnr(a, b),
        "ssim": ssim(a, b),
        "lpips": lpips(a, b, lpips_weights) if with_lpips else None,
    }
