"""Classical baselines for defocus deblurring.

* :func:`wiener_deblur`: spatially varying non-blind deconvolution. The defocus map
  (CoC radius, px) is cut into radius levels; the whole image is Wiener-deconvolved
  with the disc kernel of each level (in linear light, with the frame mirrored to
  avoid wrap-around ringing) and each pixel takes the tent-weighted mix of the two
  levels bracketing its own radius.
* :func:`unsharp_mask`: the usual sharpening, for comparison.
"""

from __future__ import annotations

import numpy as np

from refocus.aperture import ApertureConfig, kernel
from refocus.io.color import linear_to_srgb, srgb_to_linear

#: Wiener noise-to-signal ratio, tuned on the synthetic training pairs (see docs/deblurnet.md).
DEFAULT_NSR = 6e-2
#: Unsharp-mask parameters (radius px, amount), tuned on 20 synthetic training pairs over
#: radius {0.8, 1.5, 2.5} x amount {0.3, 0.6, 1, 1.5}: LPIPS within 0.001 of the best
#: (2.5, 0.3) with a higher PSNR. No setting improves PSNR over the input.
UNSHARP_RADIUS_PX = 1.5
UNSHARP_AMOUNT = 0.3


def _radius_levels(r_max: float) -> np.ndarray:
    """Radius levels, px: 0.5 px apart up to 3 px, then 15 % apart."""
    levels = [0.0]
    while levels[-1] < r_max:
        step = 0.5 if levels[-1] < 3.0 else 0.15 * levels[-1]
        levels.append(levels[-1] + step)
    return np.array(levels, dtype=np.float64)


def wiener_deconvolve(image_linear: np.ndarray, radius_px: float, nsr: float = DEFAULT_NSR,
                      aperture: ApertureConfig | None = None) -> np.ndarray:
    """Wiener deconvolution of a linear H x W x C image by the aperture kernel of ``radius_px``.

    The image is mirrored to twice its size, which makes it periodic without seams,
    so the circular FFT convolution adds no border ringing. ``nsr`` regularises
    frequencies the kernel suppresses (larger = smoother, less noise amplification).
    """
    if radius_px < 0.25:
        return image_linear.copy()
    k = kernel(aperture or ApertureConfig(), float(radius_px)).astype(np.float64)
    h, w = image_linear.shape[:2]
    big = np.concatenate([image_linear, image_linear[::-1]], axis=0)
    big = np.concatenate([big, big[:, ::-1]], axis=1).astype(np.float64)
    H, W = big.shape[:2]
    kp = np.zeros((H, W))
    kh, kw = k.shape
    kp[:kh, :kw] = k
    kp = np.roll(kp, (-(kh // 2), -(kw // 2)), axis=(0, 1))
    K = np.fft.rfft2(kp)
    filt = np.conj(K) / (np.abs(K) ** 2 + nsr)
    out = np.fft.irfft2(np.fft.rfft2(big, axes=(0, 1)) * filt[..., None], s=(H, W), axes=(0, 1))
    return out[:h, :w].astype(np.float32)


def wiener_deblur(image: np.ndarray, defocus_px: np.ndarray, nsr: float = DEFAULT_NSR,
                  aperture: ApertureConfig | None = None) -> np.ndarray:
    """Spatially varying Wiener deconvolution of an sRGB photo given its defocus map.

    Parameters
    ----------
    image: float32 H x W x 3 sRGB in [0, 1].
    defocus_px: float32 H x W unsigned CoC radius, px (e.g. DeblurNet's defocus map).
    nsr: Wiener noise-to-signal ratio.
    aperture: the lens aperture (default: a disc).

    Returns
    -------
    float32 H x W x 3 sRGB in [0, 1].
    """
    lin = srgb_to_linear(image)
    r = np.clip(np.asarray(defocus_px, dtype=np.float32), 0, None)
    levels = _radius_levels(float(r.max()))
    out = np.zeros_like(lin)
    for i, lv in enumerate(levels):
        lo = levels[i - 1] if i > 0 else lv
        hi = levels[i + 1] if i + 1 < len(levels) else lv
        wgt = np.zeros_like(r)
        if i > 0:
            m = (r >= lo) & (r <= lv)
            wgt[m] = (r[m] - lo) / (lv - lo)
        if i + 1 < len(levels):
            m = (r >= lv) & (r < hi)
            wgt[m] = (hi - r[m]) / (hi - lv)
        else:
            wgt[r >= lv] = 1.0
        if wgt.max() <= 0:
            continue
        out += wgt[..., None] * wiener_deconvolve(lin, lv, nsr, aperture)
    return linear_to_srgb(np.clip(out, 0, 1))


def unsharp_mask(image: np.ndarray, radius_px: float = 2.0, amount: float = 1.0) -> np.ndarray:
    """Unsharp masking of an sRGB image: ``x + amount * (x - gaussian(x, radius_px))``."""
    from scipy.ndimage import gaussian_filter

    img = np.asarray(image, dtype=np.float32)
    blurred = gaussian_filter(img, sigma=(radius_px, radius_px, 0))
    return np.clip(img + amount * (img - blurred), 0, 1).astype(np.float32)
