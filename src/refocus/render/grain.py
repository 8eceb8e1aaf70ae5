"""The photo's grain, restored where the new blur averaged it away.

A real lens blurs the scene *before* the sensor adds its noise, so a shallow depth
of field photo is as grainy in its blurred background as on its sharp subject. A
render blurs the photo, noise included: a disc of radius r px averages about
1 + pi r^2 pixels and keeps ``1 / (1 + pi r^2)`` of the noise's variance, so a
blurred background comes out smooth as plastic beside a grainy subject (visible on
any high-ISO photo). Photoshop's Lens Blur filter has a "Noise" section for this
reason; this module measures the photo's own noise and adds back what each pixel's
blur removed.

Noise model: per level of brightness, a 3 x 3 covariance of the three sRGB channels
(the channels' noise is correlated after demosaicing: mostly luminance grain, some
colour), read from the finest diagonal Haar details of the photo's flattest blocks
(as Donoho & Johnstone 1994 read the noise of a wavelet transform, with a trimmed
mean of absolute values in place of their median, which 8-bit data quantises).
White in space: grain coarser than a pixel (a phone's denoised noise) is matched in
its finest-scale strength only.

Conventions: sRGB images float32 H x W x 3 in [0, 1] (the noise is measured and
added where the photo has it, after the tone curve); ``coc_px`` the signed radius
the renderer blurred each pixel by.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Brightness levels the noise is measured at (quantiles of the flat blocks' luma).
NOISE_LEVELS = 6
#: Fewest flat blocks that give a level its own estimate (else the photo's).
MIN_BLOCKS = 400
#: Most blocks read (evenly spaced over the photo's valid ones).
MAX_BLOCKS = 400_000
#: Share of each level's blocks, the flattest, the noise is read from.
FLAT_SHARE = 0.3
#: Levels of luma the noise's factor is tabulated at when it is added.
LUT_STEPS = 64
#: Blocks with a channel this close to 0 or 1 are clipped there: no noise to read.
CLIP_MARGIN = 2.0 / 255.0
#: The largest details dropped from each estimate (texture the flattest blocks
#: still hold), and the mean |x| of a normal variable below its (1 - TRIM) quantile
#: of |x|, in standard deviations: sqrt(2/pi) (1 - exp(-c^2/2)) / (1 - TRIM), c = 1.96.
TRIM = 0.05
_TRIMMED_MEAN_ABS = 0.7168
_LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)


@dataclass(frozen=True)
class NoiseModel:
    """The photo's noise: ``factor[k]`` a matrix S (3 x 3, sRGB units) with the
    channels' covariance S S^T at luma ``luma[k]`` (ascending)."""

    luma: np.ndarray
    factor: np.ndarray

    def sigma(self) -> np.ndarray:
        """Per level, the three channels' standard deviations (sRGB, 0..1)."""
        return np.sqrt(np.einsum("kij,kij->ki", self.factor, self.factor))

    @classmethod
    def none(cls) -> "NoiseModel":
        """No measurable noise: adds nothing."""
        return cls(np.zeros(1, np.float32), np.zeros((1, 3, 3)))


def _quads(x: np.ndarray) -> tuple[np.ndarray, ...]:
    """The four pixels (top left, top right, bottom left, bottom right) of each whole
    2 x 2 block of ``x``, as strided views."""
    h, w = (x.shape[0] // 2) * 2, (x.shape[1] // 2) * 2
    return x[0:h:2, 0:w:2], x[0:h:2, 1:w:2], x[1:h:2, 0:w:2], x[1:h:2, 1:w:2]


def _haar(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per 2 x 2 block: the diagonal detail (H/2, W/2, 3), std sigma for white noise of
    std sigma, and the block mean."""
    a, b, c, d = _quads(img)
    return (a - b - c + d) * 0.5, (a + b + c + d) * 0.25


def _robust_cov(d: np.ndarray) -> np.ndarray:
    """3 x 3 covariance of rows of ``d`` (n, 3) from trimmed means of absolute values
    (a median of 8-bit data moves in steps of 0.003), with
    var(x + y) = var x + var y + 2 cov(x, y); three separate estimates, so not always
    positive semi-definite (:func:`_factor` drops what is not)."""
    def var(v):
        a = np.abs(v)
        kept = a[a <= np.quantile(a, 1.0 - TRIM)]
        return (float(kept.mean()) / _TRIMMED_MEAN_ABS) ** 2 if kept.size else 0.0

    cov = np.diag([var(d[:, i]) for i in range(3)])
    for i in range(3):
        for j in range(i + 1, 3):
            cov[i, j] = cov[j, i] = 0.5 * (var(d[:, i] + d[:, j]) - cov[i, i] - cov[j, j])
    return cov


def _factor(cov: np.ndarray) -> np.ndarray:
    """A matrix S with S S^T = ``cov`` with its negative eigenvalues dropped: its
    symmetric square root, which unlike a Cholesky factor needs no full rank (one
    channel noiseless)."""
    vals, vecs = np.linalg.eigh(cov)
    return (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T


def estimate_noise(image: np.ndarray) -> NoiseModel:
    """The noise of an sRGB photo (H x W x 3 float in [0, 1]), per brightness level.

    Read from the photo's flattest 2 x 2 blocks (:data:`FLAT_SHARE` of each level's,
    by the strength of their coarse detail), not clipped, in :data:`NOISE_LEVELS`
    levels of luma; a level with fewer than :data:`MIN_BLOCKS` blocks takes the
    whole photo's estimate. A photo too small to read gives no noise.
    """
    img = np.asarray(image, np.float32)
    diag, mean = _haar(img)
    if min(diag.shape[:2]) < 2:
        return NoiseModel.none()
    # The coarse detail of each block's neighbourhood: texture and edges, barely
    # moved by pixel noise (averaged over 4 pixels).
    luma = mean @ _LUMA
    gy, gx = np.gradient(luma)
    texture = np.abs(gx) + np.abs(gy)
    # Channel by channel: a reduction over the last axis of an H x W x 3 array is slow.
    lo = np.minimum(np.minimum(img[..., 0], img[..., 1]), img[..., 2])
    hi = np.maximum(np.maximum(img[..., 0], img[..., 1]), img[..., 2])
    a, b, c, e = _quads(lo)
    lo = np.minimum(np.minimum(a, b), np.minimum(c, e))
    a, b, c, e = _quads(hi)
    hi = np.maximum(np.maximum(a, b), np.maximum(c, e))
    ok = (lo > CLIP_MARGIN) & (hi < 1.0 - CLIP_MARGIN)
    d, l, t = diag[ok], luma[ok], texture[ok]
    if d.shape[0] > MAX_BLOCKS:
        # Enough blocks for the statistics; more only cost time (1.4 s at 12 MP).
        step = -(-d.shape[0] // MAX_BLOCKS)
        d, l, t = d[::step], l[::step], t[::step]
    if d.shape[0] < MIN_BLOCKS:
        return NoiseModel.none()

    def flattest(sel):
        cut = np.quantile(t[sel], FLAT_SHARE)
        return sel & (t <= cut)

    edges = np.quantile(l, np.linspace(0.0, 1.0, NOISE_LEVELS + 1))
    levels, factors = [], []
    for k in range(NOISE_LEVELS):
        sel = (l >= edges[k]) & ((l < edges[k + 1]) if k + 1 < NOISE_LEVELS else (l <= edges[k + 1]))
        if sel.sum() * FLAT_SHARE < MIN_BLOCKS:
            continue
        levels.append(float(np.median(l[sel])))
        factors.append(_factor(_robust_cov(d[flattest(sel)])))
    if not levels:  # too few blocks to split: one estimate for the whole photo
        everywhere = _robust_cov(d[flattest(np.ones(d.shape[0], bool))])
        return NoiseModel(np.array([float(np.median(l))], np.float32), _factor(everywhere)[None])
    return NoiseModel(np.asarray(levels, np.float32), np.asarray(factors))


def kept_variance(coc_px: np.ndarray) -> np.ndarray:
    """The share of a pixel's noise variance a blur of radius ``|coc_px|`` keeps:
    ``1 / (1 + pi r^2)`` (a disc averages about 1 + pi r^2 pixels; 1 when sharp)."""
    r = np.abs(np.asarray(coc_px, np.float32))
    return 1.0 / (1.0 + np.float32(np.pi) * r * r)


def grain_seed(*values: float) -> int:
    """A seed from settings (focal plane, strength): the same render gets the same
    grain, and each frame of a focus pull its own, as a camera's would."""
    import zlib

    return zlib.crc32(np.asarray(values, np.float64).tobytes())


def add_grain(image: np.ndarray, coc_px: np.ndarray, noise: NoiseModel, seed: int = 0) -> np.ndarray:
    """``image`` (the render, sRGB H x W x 3 in [0, 1]) with the noise its blur removed:
    at each pixel, noise of the photo's covariance at that pixel's brightness, scaled
    by ``sqrt(1 - kept_variance(coc_px))``, so the render is as grainy as the photo
    everywhere; sharp pixels are left as they are. ``seed`` picks the grain (a
    sequence of frames should give each its own). Returns a new array, clipped to [0, 1].
    """
    img = np.asarray(image, np.float32)
    added = np.sqrt(np.clip(1.0 - kept_variance(coc_px), 0.0, 1.0)).astype(np.float32)
    if not noise.factor.any() or float(added.max()) <= 0.0:
        return img.copy()
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(img.shape, dtype=np.float32)
    # The factor at each pixel's luma, from a table of LUT_STEPS levels interpolated
    # linearly between the measured ones (a product per level cost 4 s at 12 MP).
    grid = np.linspace(0.0, 1.0, LUT_STEPS)
    table = np.stack([np.stack([np.interp(grid, noise.luma, noise.factor[:, i, j]) for j in range(3)], -1)
                      for i in range(3)], -2).astype(np.float32)  # (LUT_STEPS, 3, 3)
    index = np.clip(np.rint((img @ _LUMA) * (LUT_STEPS - 1)), 0, LUT_STEPS - 1).astype(np.intp)
    out = img.copy()
    for i in range(3):
        n = table[index, i, 0] * z[..., 0]
        n += table[index, i, 1] * z[..., 1]
        n += table[index, i, 2] * z[..., 2]
        n *= added
        out[..., i] += n
    return np.clip(out, 0.0, 1.0, out=out)
