"""The torch backend: the GPU path (or torch on the CPU), see refocus.render.backends.

Dense by default; torch is imported when a backend is made, not with this module."""

from __future__ import annotations

import numpy as np

from refocus.render.backends._arrays import DIRECT_TAPS, direct_conv_valid, down_win, fast_len, splat_axis
from refocus.render.backends.base import ArrayBackend


class TorchBackend(ArrayBackend):
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

    def _square_pool(self, x, radius: int, pool):
        """``pool`` (a torch 2-D pooling function) of a 2-D tensor over (2 radius + 1)^2
        squares, edges replicated: two 1-D pools, separable, linear in the radius."""
        r = int(radius)
        if r <= 0:
            return x
        y = self.torch.nn.functional.pad(x[None, None], (r, r, r, r), mode="replicate")
        y = pool(y, (2 * r + 1, 1), stride=1)
        return pool(y, (1, 2 * r + 1), stride=1)[0, 0]

    def max_filter(self, x, radius: int):
        """Maximum of a 2-D tensor over (2 radius + 1)^2 squares, edges replicated."""
        return self._square_pool(x, radius, self.torch.nn.functional.max_pool2d)

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
        x = splat_axis(x, s, 1, self.zeros)
        return splat_axis(x, s, 2, self.zeros)

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
        if np.count_nonzero(k) > DIRECT_TAPS:
            # FFT: cuDNN's float32 direct convolution took 11 ms per 12 MP layer with
            # a 13 x 13 kernel on an H200 (and runs in TF32, off by 3e-4).
            return self._fft_conv_valid(xp, k)
        # Tiny kernels: shifted multiply-adds, in float32 (cuDNN would use TF32).
        c, hp, wp = xp.shape
        return direct_conv_valid(xp, k, self.zeros((c, hp - kh + 1, wp - kw + 1)))

    def _fft_conv_valid(self, xp, k: np.ndarray):
        """'Valid' convolution of each channel of xp (C,H,W) with k, by real FFT."""
        t = self.torch
        c, hp, wp = xp.shape
        kh, kw = k.shape
        fh, fw = fast_len(hp), fast_len(wp)
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
        return down_win(x, s)

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

    def scale_highlights(self, x, y, thresh: float, ratio_of, channel_axis: int = 0):
        """``x`` times ``ratio_of(take)`` where ``y > thresh`` (see NumpyBackend), out of
        place; the ratio is computed over the whole frame (no host sync)."""
        ratio = self.where(y > thresh, ratio_of(lambda a: a), 1.0)
        return x * (ratio[None] if channel_axis == 0 else ratio[..., None])

    def map_above(self, y, thresh: float, fn):
        """``fn(y)`` where ``y > thresh``, 0 elsewhere (see NumpyBackend)."""
        return self.where(y > thresh, fn(y), 0.0)

    def box_mean(self, x, radius: int):
        """Mean of a 2-D tensor over (2 radius + 1)^2 squares, edges replicated."""
        return self._square_pool(x, radius, self.torch.nn.functional.avg_pool2d)
