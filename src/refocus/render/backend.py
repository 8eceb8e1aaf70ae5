"""The few array operations the renderer needs, for numpy and for torch.

The layered renderer (:mod:`refocus.render.layered`) is written once against this
interface, so the CPU (numpy/scipy) and GPU (torch) paths run the same algorithm and
agree to float32 round-off. Arrays are channel-first ``(C, H, W)`` float32.
"""

from __future__ import annotations

from functools import partial

import numpy as np


#: Kernels with at most this many non-zero taps are applied as shifted
#: multiply-adds; larger ones by FFT (measured crossover on a 2-core Xeon).
_DIRECT_TAPS = 9


def add_(view, value) -> None:
    """``view += value`` in place. Written ``a[i] += b``, Python would also assign the
    result back (``a[i] = a[i]``): a redundant copy, one more kernel launch on a GPU."""
    view += value


def mul_(view, value) -> None:
    """``view *= value`` in place (see :func:`add_`)."""
    view *= value


def _axis_slice(nd: int, axis: int, a, b, step=None) -> tuple:
    """Index selecting ``a:b:step`` along ``axis`` of an ``nd``-dimensional array."""
    idx = [slice(None)] * nd
    idx[axis] = slice(a, b, step)
    return tuple(idx)


def _fft_conv_valid(xp: np.ndarray, k: np.ndarray) -> np.ndarray:
    """'Valid' 2-D convolution of each channel of xp (C,H,W) with k, by real FFT."""
    import scipy.fft as sfft

    c, hp, wp = xp.shape
    kh, kw = k.shape
    fh, fw = sfft.next_fast_len(hp, real=True), sfft.next_fast_len(wp, real=True)
    X = sfft.rfft2(xp, s=(fh, fw), workers=-1)
    X *= sfft.rfft2(k, s=(fh, fw), workers=-1)[None]
    full = sfft.irfft2(X, s=(fh, fw), workers=-1)
    return np.ascontiguousarray(full[:, kh - 1 : hp, kw - 1 : wp], dtype=np.float32)


def _direct_conv_valid(xp, k: np.ndarray, out):
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


def _fast_len(n: int) -> int:
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


def _splat_axis(x, s: int, axis: int, zeros):
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
        return _splat2(x, axis)
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


def _upsample_axis(x: np.ndarray, s: int, axis: int, n_out: int) -> np.ndarray:
    """Half-pixel bilinear upsampling by s along one axis, cropped to n_out samples.

    Output sample s*k + m lies at k + pos(m) with pos = (m + 0.5)/s - 0.5, so each
    phase m is a fixed blend of x[k] and one neighbour (edge-clamped): s strided
    writes of whole slices instead of a gather per output sample.
    """
    if s == 2 and n_out == 2 * x.shape[axis]:
        return _upsample2_axis(x, axis)
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


def _splat2(x, axis: int):
    """Factor-2 case of :func:`_splat_axis` in whole-slice passes (numpy or torch):
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


def _upsample2_axis(x: np.ndarray, axis: int) -> np.ndarray:
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


def _splat2_interior(x, axis: int):
    """The factor-2 splat of :func:`_splat_axis` without its border fold: n samples
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


def _down_win(x, s: int):
    """Splat downsampling by s in {1, 2} of a window batch (N,C,h,w) whose windows
    carry one level-s sample of margin on each side; the margin is dropped."""
    if s == 1:
        return x[:, :, 1:-1, 1:-1]
    if s != 2:
        raise ValueError("tile-sparse layers support levels 1 and 2 only")
    return _splat2_interior(_splat2_interior(x, 2), 3)


class NumpyBackend:
    """CPU path: numpy + scipy.fft."""

    name = "numpy"
    #: Render the finest layers tile-sparse (see refocus.render.layered): on a CPU
    #: the work saved outweighs the many small window batches.
    tile_sparse = True

    def __init__(self, jit: bool = True):
        from refocus.render import _jit

        #: Compiled kernels for the tile-sparse layers (see refocus.render._jit), or None.
        self.jit = _jit.kernels() if jit else None

    def asarray(self, x) -> np.ndarray:
        return np.ascontiguousarray(x, dtype=np.float32)

    def image_chw_padded(self, image_hwc, top: int, bottom: int, left: int, right: int) -> np.ndarray:
        """An H x W x C image as (C, H, W), edge-padded, in one copy."""
        return np.pad(np.transpose(image_hwc, (2, 0, 1)), ((0, 0), (top, bottom), (left, right)), mode="edge")

    def output_hwc(self, x) -> np.ndarray:
        """(C, H, W) result -> the caller's H x W x C array."""
        return np.ascontiguousarray(np.transpose(x, (1, 2, 0)))

    def minmax(self, x) -> tuple[float, float]:
        return float(x.min()), float(x.max())

    def searchsorted(self, sorted_values: np.ndarray, x, right: bool):
        """Insertion indices of x into the ascending numpy array ``sorted_values``."""
        return np.searchsorted(sorted_values, x, side="right" if right else "left")

    def bincount(self, idx, minlength: int) -> np.ndarray:
        return np.bincount(idx.ravel(), minlength=minlength)

    def take(self, values: np.ndarray, idx):
        """values[idx] for a small numpy table and an index array of this backend."""
        return values[idx]

    def row_minmax(self, x) -> tuple[np.ndarray, np.ndarray]:
        """Per-row min and max of a 2-D array, as numpy arrays."""
        return x.min(axis=1), x.max(axis=1)

    def block_jump(self, x, b: int) -> np.ndarray:
        """max - min of a 2-D array over b x b blocks (the array edge-padded to a
        multiple of b): (ceil(H / b), ceil(W / b))."""
        h, w = x.shape
        x = np.pad(x, ((0, -h % b), (0, -w % b)), mode="edge")
        blocks = x.reshape(x.shape[0] // b, b, x.shape[1] // b, b)
        return blocks.max(axis=(1, 3)) - blocks.min(axis=(1, 3))

    def max_filter(self, x, radius: int) -> np.ndarray:
        """Maximum of a 2-D array over (2 radius + 1)^2 squares, edges replicated."""
        from scipy import ndimage

        return ndimage.maximum_filter(x, size=2 * int(radius) + 1, mode="nearest")

    def to_numpy(self, x) -> np.ndarray:
        return np.asarray(x, dtype=np.float32)

    def zeros(self, shape) -> np.ndarray:
        return np.zeros(shape, dtype=np.float32)

    def may_exceed(self, x, threshold: float) -> bool:
        """Whether any element of x may exceed threshold (exact here)."""
        return bool(x.size) and float(x.max()) > threshold

    def concat(self, xs, axis: int = 0) -> np.ndarray:
        return np.concatenate(xs, axis=axis)

    def contiguous(self, x) -> np.ndarray:
        return np.ascontiguousarray(x)

    def where(self, cond, a, b):
        return np.where(cond, a, b).astype(np.float32)

    def clip(self, x, lo, hi):
        return np.clip(x, lo, hi)

    def pad_edge(self, x, top, bottom, left, right):
        return np.pad(x, ((0, 0), (top, bottom), (left, right)), mode="edge")

    def concat_pad_edge(self, parts, e: int) -> np.ndarray:
        """``pad_edge(concat(parts), e, e, e, e)`` written in one pass over the frame."""
        h, w = parts[0].shape[1:]
        out = np.empty((sum(p.shape[0] for p in parts), h + 2 * e, w + 2 * e), dtype=np.float32)
        c0 = 0
        for p in parts:
            out[c0 : c0 + p.shape[0], e : e + h, e : e + w] = p
            c0 += p.shape[0]
        out[:, :e, e : e + w] = out[:, e : e + 1, e : e + w]
        out[:, e + h :, e : e + w] = out[:, e + h - 1 : e + h, e : e + w]
        out[:, :, :e] = out[:, :, e : e + 1]
        out[:, :, e + w :] = out[:, :, e + w - 1 : e + w]
        return out

    def downsample(self, x: np.ndarray, s: int) -> np.ndarray:
        """Area average over s x s blocks (edges replicated to a multiple of s)."""
        if s == 1:
            return x
        c, h, w = x.shape
        if self.jit is not None and s == 2 and h % 2 == 0 and w % 2 == 0:
            return self.jit.splat_down2(np.ascontiguousarray(x))
        ph, pw = (-h) % s, (-w) % s
        if ph or pw:
            x = self.pad_edge(x, 0, ph, 0, pw)
        x = _splat_axis(x, s, 1, self.zeros)
        return _splat_axis(x, s, 2, self.zeros)

    def box_down2(self, x: np.ndarray) -> np.ndarray:
        """2 x 2 block average (odd sizes: the last row/column is repeated)."""
        c, h, w = x.shape
        if h % 2 or w % 2:
            x = self.pad_edge(x, 0, h % 2, 0, w % 2)
        # Strided adds: several times faster than a reshape + mean over two axes.
        rows = x[:, 0::2] + x[:, 1::2]
        out = rows[:, :, 0::2] + rows[:, :, 1::2]
        out *= np.float32(0.25)
        return out

    def box_down(self, x: np.ndarray, q: int) -> np.ndarray:
        # Factor-2 steps of strided adds: a reshape + mean over two axes is slow.
        while q > 1:
            x = self.box_down2(x)
            q //= 2
        return x

    def upsample(self, x: np.ndarray, s: int, h: int, w: int) -> np.ndarray:
        """Bilinear upsampling by s (half-pixel centres), cropped to (h, w)."""
        if s == 1:
            return x[:, :h, :w]
        if self.jit is not None and s == 2 and x.shape[1] * 2 == h and x.shape[2] * 2 == w:
            return self.jit.upsample2(np.ascontiguousarray(x))
        # Columns first: the strided writes along the last axis then touch half the data.
        return _upsample_axis(_upsample_axis(x, s, 2, w), s, 1, h)

    def conv(self, x: np.ndarray, k: np.ndarray) -> np.ndarray:
        """'Same' convolution (scatter semantics) with edge-replicated borders."""
        kh, kw = k.shape
        if kh == 1 and kw == 1:
            return x * float(k[0, 0])
        ry, rx = kh // 2, kw // 2
        xp = self.pad_edge(x, ry, ry, rx, rx)
        if np.count_nonzero(k) <= _DIRECT_TAPS:
            # Tiny kernels: shifted multiply-adds beat an FFT of the whole image.
            c, hp, wp = xp.shape
            return _direct_conv_valid(xp, k, np.zeros((c, hp - kh + 1, wp - kw + 1), dtype=np.float32))
        return _fft_conv_valid(xp, np.asarray(k, dtype=np.float32))

    # --- Tile batches (N, C, h, w), for the tile-sparse layers -------------------
    def windows(self, x: np.ndarray, size: int, step: int, ty: np.ndarray, tx: np.ndarray) -> np.ndarray:
        """Windows of x (C,H,W) of size x size starting at (ty*step, tx*step): (N,C,size,size)."""
        v = np.lib.stride_tricks.sliding_window_view(x, (size, size), axis=(1, 2))[:, ::step, ::step]
        # Channel axis moved behind the tile axes first: the fancy index then makes
        # the one (N, C, size, size) copy, already contiguous.
        return np.moveaxis(v, 0, 2)[ty, tx]

    def window_max(self, x: np.ndarray) -> np.ndarray:
        """Maximum of each window of a batch (N,...), as a numpy array."""
        return x.reshape(x.shape[0], -1).max(axis=1) if x.size else np.zeros(x.shape[0], np.float32)

    def get_tiles(self, x: np.ndarray, size: int, ty: np.ndarray, tx: np.ndarray) -> np.ndarray:
        """Non-overlapping size x size tiles (ty, tx) of x (C,H,W), H and W multiples of size."""
        c, h, w = x.shape
        return x.reshape(c, h // size, size, w // size, size)[:, ty, :, tx, :]

    def put_tiles(self, x: np.ndarray, tiles: np.ndarray, ty: np.ndarray, tx: np.ndarray) -> None:
        """Inverse of get_tiles, in place (x must be contiguous)."""
        c, h, w = x.shape
        size = tiles.shape[-1]
        x.reshape(c, h // size, size, w // size, size)[:, ty, :, tx, :] = tiles

    def down_win(self, x: np.ndarray, s: int) -> np.ndarray:
        """See :func:`_down_win`."""
        return _down_win(x, s)

    def box_down2_win(self, x: np.ndarray) -> np.ndarray:
        rows = x[..., 0::2, :] + x[..., 1::2, :]
        out = rows[..., 0::2] + rows[..., 1::2]
        out *= np.float32(0.25)
        return out

    def upsample2_win(self, x: np.ndarray) -> np.ndarray:
        """Half-pixel bilinear x2 of a batch, edge-clamped at the window border."""
        return _upsample2_axis(_upsample2_axis(x, 3), 2)  # columns first, as in upsample

    def conv_valid_win(self, x: np.ndarray, k: np.ndarray) -> np.ndarray:
        """'Valid' convolution (scatter semantics) of every channel of a batch (N,C,h,w)."""
        n, c, h, w = x.shape
        kh, kw = k.shape
        if kh == 1 and kw == 1:
            return x * float(k[0, 0])
        flat = x.reshape(n * c, h, w)
        if np.count_nonzero(k) <= _DIRECT_TAPS:
            out = _direct_conv_valid(flat, k, np.zeros((n * c, h - kh + 1, w - kw + 1), dtype=np.float32))
        else:
            out = _fft_conv_valid(flat, np.asarray(k, dtype=np.float32))
        return out.reshape(n, c, out.shape[1], out.shape[2])

    def scale_highlights(self, x: np.ndarray, y: np.ndarray, thresh: float, xp: np.ndarray, fp: np.ndarray, eps: float):
        """``x`` times ``interp(y) / y`` where ``y > thresh``, in place on x (C,H,W,
        contiguous). Only the pixels above the threshold are looked up (usually a small
        fraction): np.interp is a binary search per element."""
        idx = np.flatnonzero(y > thresh)
        if idx.size:
            ym = y.reshape(-1)[idx]
            ratio = np.interp(ym, xp, fp).astype(np.float32) / np.maximum(ym, np.float32(eps))
            flat = x.reshape(x.shape[0], -1)
            flat[:, idx] *= ratio[None]
        return x


class TorchBackend:
    """GPU (or torch-CPU) path."""

    name = "torch"

    def __init__(self, device: str = "cuda", tile_sparse: bool = False):
        import torch
        import torch.nn.functional as F

        self.torch = torch
        self.F = F
        self.device = torch.device(device)
        # Dense by default: on a GPU the tile-sparse path's thousands of small
        # launches and host round trips cost more than the work they save
        # (H200, 12 MP: 18 477 kernel launches sparse, 4 253 dense).
        self.tile_sparse = tile_sparse

    def _upload(self, a: np.ndarray, dtype=np.float32):
        """A numpy array on this device without a stream sync: a copy from pageable
        memory waits for all queued kernels first (with one such wait per kernel
        upload, ~90 per frame, the 12 MP render at 32 px measured 0.117 s on one lent
        H200 machine, 0.088-0.093 s on others without them); one from page-locked
        memory is queued like a kernel."""
        a = np.ascontiguousarray(a, dtype=dtype)
        if not a.flags.writeable:  # e.g. a cached kernel; torch wants writable memory
            a = a.copy()
        t = self.torch.from_numpy(a)
        if self.device.type != "cuda":
            return t
        return t.pin_memory().to(self.device, non_blocking=True)

    def image_chw_padded(self, image_hwc, top: int, bottom: int, left: int, right: int):
        return self.pad_edge(self.asarray(image_hwc).permute(2, 0, 1), top, bottom, left, right)

    def output_hwc(self, x):
        """(C, H, W) result -> H x W x C: a tensor on this device (callers that passed
        numpy convert with :meth:`to_numpy`)."""
        return x.permute(1, 2, 0).contiguous()

    def minmax(self, x) -> tuple[float, float]:
        lo, hi = self.torch.aminmax(x)
        return float(lo), float(hi)

    def searchsorted(self, sorted_values: np.ndarray, x, right: bool):
        return self.torch.searchsorted(self._upload(sorted_values), x.contiguous(), right=right)

    def bincount(self, idx, minlength: int) -> np.ndarray:
        return self.torch.bincount(idx.reshape(-1), minlength=minlength).cpu().numpy()

    def take(self, values: np.ndarray, idx):
        return self._upload(values)[idx]

    def row_minmax(self, x) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self.torch.aminmax(x, dim=1)
        return lo.cpu().numpy(), hi.cpu().numpy()

    def block_jump(self, x, b: int):
        """max - min of a 2-D tensor over b x b blocks (edge-padded to a multiple of b)."""
        F = self.torch.nn.functional
        h, w = x.shape
        y = F.pad(x[None, None], (0, -w % b, 0, -h % b), mode="replicate")
        return (F.max_pool2d(y, b) + F.max_pool2d(-y, b))[0, 0]

    def max_filter(self, x, radius: int):
        """Maximum of a 2-D tensor over (2 radius + 1)^2 squares, edges replicated
        (two 1-D max-pools: separable, linear in the radius)."""
        F = self.torch.nn.functional
        r = int(radius)
        if r <= 0:
            return x
        y = F.pad(x[None, None], (r, r, r, r), mode="replicate")
        y = F.max_pool2d(y, (2 * r + 1, 1), stride=1)
        y = F.max_pool2d(y, (1, 2 * r + 1), stride=1)
        return y[0, 0]

    def asarray(self, x):
        t = self.torch
        if isinstance(x, t.Tensor):
            return x.to(self.device, t.float32)
        return self._upload(x)

    def to_numpy(self, x) -> np.ndarray:
        x = x.detach().float()
        if x.device.type == "cuda":
            # Through page-locked memory (reused by torch's host allocator), then one
            # host copy so the staging buffer is free again: a device-to-pageable copy
            # of a 12 MP result ran at 1.6 GB/s on an H200 machine.
            host = self.torch.empty(x.shape, dtype=x.dtype, pin_memory=True)
            host.copy_(x)
            return host.numpy().copy()
        return x.cpu().numpy()

    def zeros(self, shape):
        return self.torch.zeros(shape, dtype=self.torch.float32, device=self.device)

    def may_exceed(self, x, threshold: float) -> bool:
        """Whether any element of x may exceed threshold. On a GPU always yes (for a
        non-empty x): an exact answer is a device-to-host sync, which drains the
        launch queue; the work it could skip is cheap there."""
        if x.numel() == 0:
            return False
        return self.device.type == "cuda" or float(x.max()) > threshold

    def concat(self, xs, axis: int = 0):
        return self.torch.cat(xs, dim=axis)

    def contiguous(self, x):
        return x.contiguous()

    def where(self, cond, a, b):
        # Python scalars stay scalars: a tensor made of one would be an upload.
        return self.torch.where(cond, a, b)

    def clip(self, x, lo, hi):
        return self.torch.clamp(x, lo, hi)

    def pad_edge(self, x, top, bottom, left, right):
        return self.F.pad(x[None], (left, right, top, bottom), mode="replicate")[0]

    def concat_pad_edge(self, parts, e: int):
        return self.pad_edge(self.concat(parts), e, e, e, e)

    def downsample(self, x, s: int):
        if s == 1:
            return x
        c, h, w = x.shape
        ph, pw = (-h) % s, (-w) % s
        if ph or pw:
            x = self.pad_edge(x, 0, ph, 0, pw)
        x = _splat_axis(x, s, 1, self.zeros)
        return _splat_axis(x, s, 2, self.zeros)

    def box_down(self, x, q: int):
        return self.F.avg_pool2d(x[None], q)[0]

    def box_down2(self, x):
        c, h, w = x.shape
        if h % 2 or w % 2:
            x = self.pad_edge(x, 0, h % 2, 0, w % 2)
        return self.F.avg_pool2d(x[None], 2)[0]

    def upsample(self, x, s: int, h: int, w: int):
        if s == 1:
            return x[:, :h, :w]
        c, hs, ws = x.shape
        up = self.F.interpolate(x[None], size=(hs * s, ws * s), mode="bilinear", align_corners=False)[0]
        return up[:, :h, :w]

    def conv(self, x, k):
        kh, kw = k.shape
        if kh == 1 and kw == 1:
            return x * float(k[0, 0])
        ry, rx = kh // 2, kw // 2
        xp = self.pad_edge(x, ry, ry, rx, rx)
        if np.count_nonzero(k) > _DIRECT_TAPS:
            # FFT: cuDNN's float32 direct convolution took 11 ms per 12 MP layer with
            # a 13 x 13 kernel on an H200 (and runs in TF32, off by 3e-4).
            return self._fft_conv_valid(xp, k)
        # Tiny kernels: shifted multiply-adds, in float32 (cuDNN would use TF32).
        c, hp, wp = xp.shape
        return _direct_conv_valid(xp, k, self.zeros((c, hp - kh + 1, wp - kw + 1)))

    def _fft_conv_valid(self, xp, k: np.ndarray):
        """'Valid' convolution of each channel of xp (C,H,W) with k, by real FFT."""
        t = self.torch
        c, hp, wp = xp.shape
        kh, kw = k.shape
        fh, fw = _fast_len(hp), _fast_len(wp)
        kt = self._upload(k)
        X = t.fft.rfft2(xp, s=(fh, fw))
        X *= t.fft.rfft2(kt, s=(fh, fw))[None]
        full = t.fft.irfft2(X, s=(fh, fw))
        return full[:, kh - 1 : hp, kw - 1 : wp]

    # --- Tile batches (N, C, h, w): see NumpyBackend ------------------------------
    def windows(self, x, size: int, step: int, ty: np.ndarray, tx: np.ndarray):
        v = x.unfold(1, size, step).unfold(2, size, step)
        ty_t, tx_t = self._upload(ty, np.int64), self._upload(tx, np.int64)
        return v[:, ty_t, tx_t].permute(1, 0, 2, 3).contiguous()

    def window_max(self, x) -> np.ndarray:
        if x.numel() == 0:
            return np.zeros(x.shape[0], np.float32)
        return x.reshape(x.shape[0], -1).amax(dim=1).cpu().numpy()

    def get_tiles(self, x, size: int, ty: np.ndarray, tx: np.ndarray):
        c, h, w = x.shape
        ty_t, tx_t = self._upload(ty, np.int64), self._upload(tx, np.int64)
        return x.view(c, h // size, size, w // size, size)[:, ty_t, :, tx_t, :]

    def put_tiles(self, x, tiles, ty: np.ndarray, tx: np.ndarray) -> None:
        c, h, w = x.shape
        size = tiles.shape[-1]
        ty_t, tx_t = self._upload(ty, np.int64), self._upload(tx, np.int64)
        x.view(c, h // size, size, w // size, size)[:, ty_t, :, tx_t, :] = tiles

    def down_win(self, x, s: int):
        return _down_win(x, s)

    def box_down2_win(self, x):
        return self.F.avg_pool2d(x, 2)

    def upsample2_win(self, x):
        return self.F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)

    def conv_valid_win(self, x, k):
        n, c, h, w = x.shape
        kh, kw = k.shape
        if kh == 1 and kw == 1:
            return x * float(k[0, 0])
        weight = self._upload(k[::-1, ::-1])
        out = self.F.conv2d(x.reshape(n * c, 1, h, w), weight[None, None])
        return out.reshape(n, c, out.shape[2], out.shape[3])

    def interp(self, x, xp: np.ndarray, fp: np.ndarray):
        t = self.torch
        xp_t, fp_t = self._upload(xp), self._upload(fp)
        xc = t.clamp(x, xp_t[0], xp_t[-1])
        idx = t.clamp(t.searchsorted(xp_t, xc.contiguous(), right=True) - 1, 0, len(xp) - 2)
        x0, x1 = xp_t[idx], xp_t[idx + 1]
        f0, f1 = fp_t[idx], fp_t[idx + 1]
        w = (xc - x0) / t.clamp(x1 - x0, min=1e-12)
        return f0 + w * (f1 - f0)

    def scale_highlights(self, x, y, thresh: float, xp: np.ndarray, fp: np.ndarray, eps: float):
        """``x`` times ``interp(y) / y`` where ``y > thresh`` (see NumpyBackend), out of place."""
        ratio = self.interp(y, xp, fp) / self.torch.clamp(y, min=eps)
        return x * self.where(y > thresh, ratio, 1.0)[None]


def get_backend(device: str):
    """``"cpu"`` -> numpy; ``"cuda"``/``"torch-cpu"`` -> torch; ``"auto"`` picks CUDA if present."""
    from refocus.errors import RefocusError

    if device == "auto":
        try:
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        except Exception:
            device = "cpu"
    if device == "cpu":
        return NumpyBackend()
    if device == "torch-cpu":
        return TorchBackend("cpu")
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise RefocusError("--device cuda was asked for but no CUDA GPU is available; use --device cpu")
        return TorchBackend("cuda")
    raise RefocusError(f"unknown device {device!r}: use cpu, cuda or auto")
