"""Array helpers shared by the numpy and torch backends: resampling along one axis
(half-pixel bilinear upsampling and its adjoint, the centroid-preserving splat) and
'valid' convolutions. Each works on numpy arrays and torch tensors alike unless its
docstring says numpy; the renderer reaches them only through a backend."""

from __future__ import annotations

from functools import partial

import numpy as np

from refocus.render.backends.base import add_

#: Kernels with at most this many non-zero taps are applied as shifted
#: multiply-adds; larger ones by FFT (measured crossover on a 2-core Xeon).
DIRECT_TAPS = 9


def _axis_slice(nd: int, axis: int, a, b, step=None) -> tuple:
    """Index selecting ``a:b:step`` along ``axis`` of an ``nd``-dimensional array."""
    idx = [slice(None)] * nd
    idx[axis] = slice(a, b, step)
    return tuple(idx)


def fft_conv_valid(xp: np.ndarray, k: np.ndarray) -> np.ndarray:
    """'Valid' 2-D convolution of each channel of xp (C,H,W) with k, by real FFT."""
    import scipy.fft as sfft

    c, hp, wp = xp.shape
    kh, kw = k.shape
    fh, fw = sfft.next_fast_len(hp, real=True), sfft.next_fast_len(wp, real=True)
    X = sfft.rfft2(xp, s=(fh, fw), workers=-1)
    X *= sfft.rfft2(k, s=(fh, fw), workers=-1)[None]
    full = sfft.irfft2(X, s=(fh, fw), workers=-1)
    return np.ascontiguousarray(full[:, kh - 1 : hp, kw - 1 : wp], dtype=np.float32)


def direct_conv_valid(xp, k: np.ndarray, out):
    """'Valid' convolution (scatter semantics) of xp (..., H, W) with a small kernel, as
    shifted multiply-adds into the zeroed ``out`` (numpy or torch; float32 throughout)."""
    kh, kw = k.shape
    h, w = out.shape[-2:]
    for dy in range(kh):
        for dx in range(kw):
            wgt = float(k[kh - 1 - dy, kw - 1 - dx])
            if wgt != 0.0:
                out += wgt * xp[..., dy : dy + h, dx : dx + w]
    return out


def fast_len(n: int) -> int:
    """Smallest m >= n with no prime factor above 7 (cuFFT's fast radices): a prime
    length such as 3 001 falls back to a much slower algorithm."""
    m = n
    while True:
        r = m
        for p in (2, 3, 5, 7):
            while r % p == 0:
                r //= p
        if r == 1:
            return m
        m += 1


def splat_axis(x, s: int, axis: int, zeros):
    """Adjoint of half-pixel bilinear upsampling along one axis (length divisible by s).

    Each fine sample is shared between the two coarse samples that bracket its
    position, so the centroid of any blob is preserved (an area average would snap
    it to its block centre, shifting small bright spots by up to s/2 pixels). Works
    on numpy arrays and torch tensors alike; ``zeros(shape)`` makes the accumulator.
    """
    nd = x.ndim
    n_low = x.shape[axis] // s
    shape = list(x.shape)
    shape[axis] = n_low + 2  # one guard sample on each side, folded back below

    sl = partial(_axis_slice, nd, axis)

    if s == 2:
        return splat2(x, axis)
    out = zeros(tuple(shape))
    for m in range(s):
        v = x[sl(m, None, s)]
        pos = (m + 0.5) / s - 0.5  # position of this phase relative to its coarse sample
        step = -1 if pos < 0 else 1
        add_(out[sl(1, n_low + 1)], v * (1.0 - abs(pos)))
        add_(out[sl(1 + step, n_low + 1 + step)], v * abs(pos))
    res = out[sl(1, n_low + 1)]
    add_(res[sl(0, 1)], out[sl(0, 1)])
    add_(res[sl(n_low - 1, n_low)], out[sl(n_low + 1, n_low + 2)])
    return res / s


def upsample_axis(x: np.ndarray, s: int, axis: int, n_out: int) -> np.ndarray:
    """Half-pixel bilinear upsampling by s along one axis, cropped to n_out samples.

    Output sample s*k + m lies at k + pos(m) with pos = (m + 0.5)/s - 0.5, so each
    phase m is a fixed blend of x[k] and one neighbour (edge-clamped): s strided
    writes of whole slices instead of a gather per output sample.
    """
    if s == 2 and n_out == 2 * x.shape[axis]:
        return upsample2_axis(x, axis)
    n_in = x.shape[axis]
    xs = np.moveaxis(x, axis, 0)
    prev = np.concatenate([xs[:1], xs[:-1]], axis=0)  # x[k-1], clamped at 0
    nxt = np.concatenate([xs[1:], xs[-1:]], axis=0)  # x[k+1], clamped at the end
    out = np.empty((n_in * s,) + xs.shape[1:], dtype=np.float32)
    for m in range(s):
        pos = (m + 0.5) / s - 0.5
        nb = prev if pos < 0 else nxt
        dst = out[m::s]
        np.multiply(xs, np.float32(1.0 - abs(pos)), out=dst)
        dst += np.float32(abs(pos)) * nb
    return np.moveaxis(out[:n_out], 0, axis)


def splat2(x, axis: int):
    """Factor-2 case of :func:`splat_axis` in whole-slice passes (numpy or torch):
    out[k] = 3/8 (x[2k] + x[2k+1]) + 1/8 (x[2k-1] + x[2k+2]), the missing outer
    samples folded back (x[-1] -> x[0], x[n] -> x[n-1]) as the guard samples are."""
    nd = x.ndim
    axis = axis % nd

    sl = partial(_axis_slice, nd, axis)

    a, b = x[sl(0, None, 2)], x[sl(1, None, 2)]
    out = (a + b) * 0.375
    add_(out[sl(1, None)], b[sl(0, -1)] * 0.125)
    add_(out[sl(0, 1)], a[sl(0, 1)] * 0.125)
    add_(out[sl(0, -1)], a[sl(1, None)] * 0.125)
    add_(out[sl(-1, None)], b[sl(-1, None)] * 0.125)
    return out


def upsample2_axis(x: np.ndarray, axis: int) -> np.ndarray:
    """Half-pixel bilinear x2 along one axis: out[2k] = .75 x[k] + .25 x[k-1],
    out[2k+1] = .75 x[k] + .25 x[k+1] (edge-clamped), in four whole-array passes."""
    nd = x.ndim
    axis = axis % nd

    sl = partial(_axis_slice, nd, axis)

    shape = list(x.shape)
    shape[axis] *= 2
    out = np.empty(shape, dtype=np.float32)
    q = x * np.float32(0.75)
    t = x * np.float32(0.25)
    even, odd = out[sl(0, None, 2)], out[sl(1, None, 2)]
    np.add(q[sl(1, None)], t[sl(0, -1)], out=even[sl(1, None)])
    even[sl(0, 1)] = x[sl(0, 1)]
    np.add(q[sl(0, -1)], t[sl(1, None)], out=odd[sl(0, -1)])
    odd[sl(-1, None)] = x[sl(-1, None)]
    return out


def splat2_interior(x, axis: int):
    """The factor-2 splat of :func:`splat_axis` without its border fold: n samples
    (even) give n/2 - 2, the first and last coarse sample (incomplete) dropped.

    out[k] = 3/8 (x[2k] + x[2k+1]) + 1/8 (x[2k-1] + x[2k+2]); numpy or torch.
    """
    nd = x.ndim
    axis = axis % nd

    sl = partial(_axis_slice, nd, axis)

    a, b = x[sl(0, None, 2)], x[sl(1, None, 2)]
    out = (a[sl(1, -1)] + b[sl(1, -1)]) * 0.375
    out += (b[sl(0, -2)] + a[sl(2, None)]) * 0.125
    return out


def down_win(x, s: int):
    """Splat downsampling by s in {1, 2} of a window batch (N,C,h,w) whose windows
    carry one level-s sample of margin on each side; the margin is dropped."""
    if s == 1:
        return x[:, :, 1:-1, 1:-1]
    if s != 2:
        raise ValueError("tile-sparse layers support levels 1 and 2 only")
    return splat2_interior(splat2_interior(x, 2), 3)
