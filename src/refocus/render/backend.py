"""The few array operations the renderer needs, for numpy and for torch.

The layered renderer (:mod:`refocus.render.layered`) is written once against this
interface, so the CPU (numpy/scipy) and GPU (torch) paths run the same algorithm and
agree to float32 round-off. Arrays are channel-first ``(C, H, W)`` float32.
"""

from __future__ import annotations

import numpy as np


def _bilinear_taps(n_out: int, n_in: int, scale: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices and weights of half-pixel-centred linear interpolation (align_corners=False)."""
    src = (np.arange(n_out) + 0.5) / scale - 0.5
    src = np.clip(src, 0, n_in - 1)
    i0 = np.floor(src).astype(np.int64)
    i1 = np.minimum(i0 + 1, n_in - 1)
    w1 = (src - i0).astype(np.float32)
    return i0, i1, w1


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

    def sl(a, b, step=None):
        idx = [slice(None)] * nd
        idx[axis] = slice(a, b, step)
        return tuple(idx)

    out = zeros(tuple(shape))
    for m in range(s):
        v = x[sl(m, None, s)]
        pos = (m + 0.5) / s - 0.5  # position of this phase relative to its coarse sample
        step = -1 if pos < 0 else 1
        out[sl(1, n_low + 1)] += v * (1.0 - abs(pos))
        out[sl(1 + step, n_low + 1 + step)] += v * abs(pos)
    res = out[sl(1, n_low + 1)]
    res[sl(0, 1)] += out[sl(0, 1)]
    res[sl(n_low - 1, n_low)] += out[sl(n_low + 1, n_low + 2)]
    return res / s


def _upsample_axis(x: np.ndarray, s: int, axis: int, n_out: int) -> np.ndarray:
    """Half-pixel bilinear upsampling by s along one axis, cropped to n_out samples.

    Output sample s*k + m lies at k + pos(m) with pos = (m + 0.5)/s - 0.5, so each
    phase m is a fixed blend of x[k] and one neighbour (edge-clamped): s strided
    writes of whole slices instead of a gather per output sample.
    """
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


class NumpyBackend:
    """CPU path: numpy + scipy.fft."""

    name = "numpy"

    def asarray(self, x) -> np.ndarray:
        return np.ascontiguousarray(x, dtype=np.float32)

    def to_numpy(self, x) -> np.ndarray:
        return np.asarray(x, dtype=np.float32)

    def zeros(self, shape) -> np.ndarray:
        return np.zeros(shape, dtype=np.float32)

    def scalar_max(self, x) -> float:
        return float(x.max()) if x.size else 0.0

    def concat(self, xs) -> np.ndarray:
        return np.concatenate(xs, axis=0)

    def where(self, cond, a, b):
        return np.where(cond, a, b).astype(np.float32)

    def clip(self, x, lo, hi):
        return np.clip(x, lo, hi)

    def pad_edge(self, x, top, bottom, left, right):
        return np.pad(x, ((0, 0), (top, bottom), (left, right)), mode="edge")

    def downsample(self, x: np.ndarray, s: int) -> np.ndarray:
        """Area average over s x s blocks (edges replicated to a multiple of s)."""
        if s == 1:
            return x
        c, h, w = x.shape
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
        c, h, w = x.shape
        return x.reshape(c, h // q, q, w // q, q).mean(axis=(2, 4), dtype=np.float32)

    def upsample(self, x: np.ndarray, s: int, h: int, w: int) -> np.ndarray:
        """Bilinear upsampling by s (half-pixel centres), cropped to (h, w)."""
        if s == 1:
            return x[:, :h, :w]
        return _upsample_axis(_upsample_axis(x, s, 1, h), s, 2, w)

    def conv(self, x: np.ndarray, k: np.ndarray) -> np.ndarray:
        """'Same' convolution (scatter semantics) with edge-replicated borders."""
        kh, kw = k.shape
        if kh == 1 and kw == 1:
            return x * float(k[0, 0])
        ry, rx = kh // 2, kw // 2
        xp = self.pad_edge(x, ry, ry, rx, rx)
        if kh * kw <= 25:
            # Tiny kernels: shifted multiply-adds beat an FFT of the whole image.
            c, hp, wp = xp.shape
            h, w = hp - kh + 1, wp - kw + 1
            out = np.zeros((c, h, w), dtype=np.float32)
            for dy in range(kh):
                for dx in range(kw):
                    wgt = float(k[kh - 1 - dy, kw - 1 - dx])
                    if wgt != 0.0:
                        out += wgt * xp[:, dy : dy + h, dx : dx + w]
            return out
        return _fft_conv_valid(xp, np.asarray(k, dtype=np.float32))

    def interp(self, x, xp: np.ndarray, fp: np.ndarray):
        return np.interp(x, xp, fp).astype(np.float32)

    def interp_ratio(self, y, thresh: float, xp: np.ndarray, fp: np.ndarray, eps: float):
        """``interp(y) / y`` where ``y > thresh``, else 1 (the highlight gain map).

        Only the few pixels above the threshold are looked up: np.interp is a
        binary search per element and dominated the cost over the whole frame.
        """
        ratio = np.ones(y.shape, dtype=np.float32)
        m = y > thresh
        ym = y[m]
        ratio[m] = np.interp(ym, xp, fp).astype(np.float32) / np.maximum(ym, np.float32(eps))
        return ratio


class TorchBackend:
    """GPU (or torch-CPU) path."""

    name = "torch"

    def __init__(self, device: str = "cuda"):
        import torch
        import torch.nn.functional as F

        self.torch = torch
        self.F = F
        self.device = torch.device(device)

    def asarray(self, x):
        t = self.torch
        if isinstance(x, t.Tensor):
            return x.to(self.device, t.float32)
        return t.as_tensor(np.ascontiguousarray(x, dtype=np.float32), device=self.device)

    def to_numpy(self, x) -> np.ndarray:
        return x.detach().float().cpu().numpy()

    def zeros(self, shape):
        return self.torch.zeros(shape, dtype=self.torch.float32, device=self.device)

    def scalar_max(self, x) -> float:
        return float(x.max()) if x.numel() else 0.0

    def concat(self, xs):
        return self.torch.cat(xs, dim=0)

    def where(self, cond, a, b):
        t = self.torch
        a = a if isinstance(a, t.Tensor) else t.tensor(a, dtype=t.float32, device=self.device)
        b = b if isinstance(b, t.Tensor) else t.tensor(b, dtype=t.float32, device=self.device)
        return t.where(cond, a, b)

    def clip(self, x, lo, hi):
        return self.torch.clamp(x, lo, hi)

    def pad_edge(self, x, top, bottom, left, right):
        return self.F.pad(x[None], (left, right, top, bottom), mode="replicate")[0]

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
        t = self.torch
        ry, rx = kh // 2, kw // 2
        xp = self.pad_edge(x, ry, ry, rx, rx)
        # conv2d correlates; flip for scatter (true convolution) semantics.
        weight = t.as_tensor(np.ascontiguousarray(k[::-1, ::-1]), dtype=t.float32, device=self.device)
        if kh * kw > 32 * 32 and self.device.type == "cuda":
            return self._fft_conv(xp, weight, kh, kw)
        return self.F.conv2d(xp[:, None], weight[None, None])[:, 0]

    def _fft_conv(self, xp, weight, kh, kw):
        t = self.torch
        c, hp, wp = xp.shape
        fh, fw = hp, wp
        X = t.fft.rfft2(xp, s=(fh, fw))
        K = t.fft.rfft2(t.flip(weight, dims=(0, 1)), s=(fh, fw))
        full = t.fft.irfft2(X * K[None], s=(fh, fw))
        return full[:, kh - 1 : hp, kw - 1 : wp]

    def interp(self, x, xp: np.ndarray, fp: np.ndarray):
        t = self.torch
        xp_t = t.as_tensor(xp, dtype=t.float32, device=self.device)
        fp_t = t.as_tensor(fp, dtype=t.float32, device=self.device)
        xc = t.clamp(x, xp_t[0], xp_t[-1])
        idx = t.clamp(t.searchsorted(xp_t, xc.contiguous(), right=True) - 1, 0, len(xp) - 2)
        x0, x1 = xp_t[idx], xp_t[idx + 1]
        f0, f1 = fp_t[idx], fp_t[idx + 1]
        w = (xc - x0) / t.clamp(x1 - x0, min=1e-12)
        return f0 + w * (f1 - f0)

    def interp_ratio(self, y, thresh: float, xp: np.ndarray, fp: np.ndarray, eps: float):
        """``interp(y) / y`` where ``y > thresh``, else 1 (see NumpyBackend)."""
        ratio = self.interp(y, xp, fp) / self.torch.clamp(y, min=eps)
        return self.where(y > thresh, ratio, 1.0)


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
