"""The numpy backend: the CPU path in numpy and scipy.fft (see refocus.render.backends)."""

from __future__ import annotations

import numpy as np

from refocus.io.color import linear_to_srgb
from refocus.render.backends._arrays import (
    DIRECT_TAPS,
    direct_conv_valid,
    down_win,
    fft_conv_valid,
    splat_axis,
    upsample2_axis,
    upsample_axis,
)
from refocus.render.backends.base import ArrayBackend


class NumpyBackend(ArrayBackend):
    """CPU path: numpy + scipy.fft."""

    name = "numpy"
    #: Render the finest layers tile-sparse (see refocus.render.sparse): on a CPU
    #: the work saved outweighs the many small window batches.
    tile_sparse = True
    parallel_sweeps = True

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
        ph, pw = (-h) % s, (-w) % s
        if ph or pw:
            x = self.pad_edge(x, 0, ph, 0, pw)
        x = splat_axis(x, s, 1, self.zeros)
        return splat_axis(x, s, 2, self.zeros)

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
        # Columns first: the strided writes along the last axis then touch half the data.
        return upsample_axis(upsample_axis(x, s, 2, w), s, 1, h)

    def conv(self, x: np.ndarray, k: np.ndarray) -> np.ndarray:
        """'Same' convolution (scatter semantics) with edge-replicated borders."""
        kh, kw = k.shape
        if kh == 1 and kw == 1:
            return x * float(k[0, 0])
        ry, rx = kh // 2, kw // 2
        xp = self.pad_edge(x, ry, ry, rx, rx)
        if np.count_nonzero(k) <= DIRECT_TAPS:
            # Tiny kernels: shifted multiply-adds beat an FFT of the whole image.
            c, hp, wp = xp.shape
            return direct_conv_valid(xp, k, np.zeros((c, hp - kh + 1, wp - kw + 1), dtype=np.float32))
        return fft_conv_valid(xp, np.asarray(k, dtype=np.float32))

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
        """See :func:`refocus.render.backends._arrays.down_win`."""
        return down_win(x, s)

    def box_down2_win(self, x: np.ndarray) -> np.ndarray:
        rows = x[..., 0::2, :] + x[..., 1::2, :]
        out = rows[..., 0::2] + rows[..., 1::2]
        out *= np.float32(0.25)
        return out

    def upsample2_win(self, x: np.ndarray) -> np.ndarray:
        """Half-pixel bilinear x2 of a batch, edge-clamped at the window border."""
        return upsample2_axis(upsample2_axis(x, 3), 2)  # columns first, as in upsample

    def conv_valid_win(self, x: np.ndarray, k: np.ndarray) -> np.ndarray:
        """'Valid' convolution (scatter semantics) of every channel of a batch (N,C,h,w)."""
        n, c, h, w = x.shape
        kh, kw = k.shape
        if kh == 1 and kw == 1:
            return x * float(k[0, 0])
        flat = x.reshape(n * c, h, w)
        if np.count_nonzero(k) <= DIRECT_TAPS:
            out = direct_conv_valid(flat, k, np.zeros((n * c, h - kh + 1, w - kw + 1), dtype=np.float32))
        else:
            out = fft_conv_valid(flat, np.asarray(k, dtype=np.float32))
        return out.reshape(n, c, out.shape[1], out.shape[2])

    def scale_highlights(self, x: np.ndarray, y: np.ndarray, thresh: float, ratio_of, channel_axis: int = 0):
        """``x`` (C,H,W, or H,W,C with ``channel_axis=-1``; contiguous) times a ratio
        where ``y > thresh``, in place. ``ratio_of(take)`` computes the ratio from
        per-pixel maps passed through ``take``: here only the pixels above the
        threshold are taken (usually a small fraction of the frame)."""
        idx = np.flatnonzero(y > thresh)
        if idx.size:
            ratio = np.asarray(ratio_of(lambda a: a.reshape(-1)[idx]), dtype=np.float32)
            if channel_axis == 0:
                flat = x.reshape(x.shape[0], -1)
                flat[:, idx] *= ratio[None]
            else:
                flat = x.reshape(-1, x.shape[-1])
                flat[idx] *= ratio[:, None]
        return x

    def map_above(self, y: np.ndarray, thresh: float, fn) -> np.ndarray:
        """``fn(y)`` where ``y > thresh``, 0 elsewhere (fn is evaluated on those
        pixels only)."""
        out = np.zeros(y.shape, np.float32)
        idx = np.flatnonzero(y > thresh)
        if idx.size:
            out.reshape(-1)[idx] = fn(y.reshape(-1)[idx])
        return out

    def box_mean(self, x, radius: int) -> np.ndarray:
        """Mean of a 2-D array over (2 radius + 1)^2 squares, edges replicated."""
        from scipy import ndimage

        return ndimage.uniform_filter(np.asarray(x, dtype=np.float32), size=2 * int(radius) + 1, mode="nearest")

    # --- per-pixel passes of the pipeline around the renderer (refocus.pipeline.core) ---
    def residual_coc(self, coc_px: np.ndarray, blur_px: np.ndarray) -> np.ndarray:
        """``sign(c) sqrt(max(c^2 - b^2, 0))`` per pixel: the CoC still to render onto
        an input that carries its own blur b (float32, finite)."""
        b = blur_px
        return (np.sign(coc_px) * np.sqrt(np.maximum(coc_px * coc_px - b * b, 0.0))).astype(np.float32)

    def blend_kept(self, rendered: np.ndarray, src: np.ndarray, coc: np.ndarray, blur: np.ndarray, keep_px: float,
                   sharp_px: float, agree: float) -> np.ndarray:
        """``rendered`` (H, W, 3, linear light) blended towards ``src`` where |coc| <
        2 keep_px and blur <= sharp_px (unknown, NaN, blur never): weight clip((2 keep_px
        - |coc|) / keep_px, 0, 1) times clip((2 agree - d) / agree, 0, 1), d the largest
        channel difference between the two once sRGB-encoded (so the blend moves no
        pixel by more than ``agree`` as displayed). ``rendered`` itself when no pixel
        qualifies, else a new array."""
        a = np.abs(coc)
        # Unknown (NaN) or infinite input blur compares False: those pixels are not kept.
        sel = np.flatnonzero((a < 2.0 * keep_px) & (np.asarray(blur) <= sharp_px))
        if sel.size == 0:
            return rendered
        # Blend only the selected pixels (usually a small part of the frame).
        out = np.array(rendered, dtype=np.float32)
        flat = out.reshape(-1, out.shape[-1])
        src = np.asarray(src, dtype=np.float32).reshape(flat.shape)[sel]
        d = np.abs(linear_to_srgb(flat[sel]) - linear_to_srgb(src)).max(axis=1)
        w = np.clip((2.0 * keep_px - a.ravel()[sel]) / keep_px, 0.0, 1.0).astype(np.float32)
        w *= np.clip((2.0 * agree - d) / agree, 0.0, 1.0).astype(np.float32)
        w = w[:, None]
        flat[sel] = flat[sel] * (1.0 - w) + src * w
        return out
