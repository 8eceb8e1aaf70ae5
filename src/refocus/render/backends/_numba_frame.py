"""Compiled full-frame passes of the CPU renderer (numba; imported only when numba is).

Image in (padded) and result out (:func:`image_in`,
:func:`image_out`), band counts, block and tile reductions, the x2 splat and the
4 x 4 block means, and the two per-pixel passes of the pipeline around the renderer
(:func:`coc_effective`, :func:`blend_kept`). Used by
:class:`refocus.render.backends.numba.NumbaBackend`; each mirrors the numpy
expression it replaces.
"""

from __future__ import annotations

import numba
import numpy as np

# cache=True: compiled once per machine (in __pycache__), loaded in ~0.1 s after.
# numba's cache notices changes to this file only: the kernels here call nothing
# compiled in another module.
jit = numba.njit(nogil=True, cache=True, boundscheck=False)
# Helpers over one row are inlined into their callers: called per row as functions,
# their loops ran 3-5x slower. Helpers called once per window stay functions
# (inlining them too made the first compilation take 40 s instead of ~10).
inline = numba.njit(nogil=True, cache=True, boundscheck=False, inline="always")
f32 = np.float32


@jit
def image_in(r0, r1, img, out, top, left, lum):
    """Rows [r0, r1) of ``out`` (3, Hb, Wb): the H x W x 3 image channel-first,
    edge-padded by (top, left) and to out's size, and of ``lum`` (Hb, Wb) its
    luminance (the highlight boost follows, in ``refocus.render.highlights``)."""
    H, W = img.shape[0], img.shape[1]
    Wb = out.shape[2]
    for R in range(r0, r1):
        row = img[min(max(R - top, 0), H - 1)]
        for ch in range(3):
            dst = out[ch, R]
            for C in range(left):
                dst[C] = row[0, ch]
            for C in range(W):
                dst[left + C] = row[C, ch]
            for C in range(left + W, Wb):
                dst[C] = row[W - 1, ch]
        o0, o1, o2, ly = out[0, R], out[1, R], out[2, R], lum[R]
        for C in range(Wb):
            ly[C] = o0[C] * f32(0.2126) + o1[C] * f32(0.7152) + o2[C] * f32(0.0722)


@jit
def image_out(r0, r1, back, front, has_back, has_front, out, eps, lum):
    """Rows [r0, r1) of the H x W x 3 result ``out``: the far sweep's
    premultiplied (4, ., .) accumulator un-premultiplied, the near one over it,
    clipped at 0; and of ``lum`` (H, W) its luminance (the highlights are
    compressed after, in ``refocus.render.highlights``)."""
    W = out.shape[1]
    rgb = np.empty((3, W), dtype=np.float32)
    far = back if has_back else front  # the accumulator that is un-premultiplied
    for y in range(r0, r1):
        for ch in range(3):
            dst = rgb[ch]
            src, al = far[ch, y], far[3, y]
            for x in range(W):
                dst[x] = src[x] / max(al[x], eps)
            if has_back and has_front:
                fs, fa = front[ch, y], front[3, y]
                for x in range(W):
                    dst[x] = dst[x] * (f32(1.0) - fa[x]) + fs[x]
            for x in range(W):
                dst[x] = max(dst[x], f32(0.0))
        orow, ly = out[y], lum[y]
        r_, g_, b_ = rgb[0], rgb[1], rgb[2]
        for x in range(W):
            orow[x, 0] = r_[x]
            orow[x, 1] = g_[x]
            orow[x, 2] = b_[x]
            ly[x] = r_[x] * f32(0.2126) + g_[x] * f32(0.7152) + b_[x] * f32(0.0722)


@jit
def bright_share(y, lo, radius, out):
    """``out`` (H, W): the mean over (2 radius + 1)^2 squares, edges replicated, of
    smoothstep((y - lo) / (1 - lo)) (0 below lo): the numpy path's
    ``box_mean(map_above(...))`` as running sums (float64) down and across."""
    H, W = y.shape
    k = f32(1.0) / (f32(1.0) - lo)
    ramp = np.empty((H, W), np.float32)
    for i in range(H):
        for j in range(W):
            v = y[i, j]
            u = min((v - lo) * k, f32(1.0)) if v > lo else f32(0.0)  # NaN counts as 0: it must not enter the running sums
            ramp[i, j] = u * u * (f32(3.0) - f32(2.0) * u)
    col = np.zeros(W, np.float64)
    for d in range(-radius, radius + 1):
        src = ramp[min(max(d, 0), H - 1)]
        for j in range(W):
            col[j] += src[j]
    n = 2 * radius + 1
    scale = 1.0 / (n * n)
    for i in range(H):
        if i > 0:
            add, sub = ramp[min(i + radius, H - 1)], ramp[max(i - radius - 1, 0)]
            for j in range(W):
                col[j] += add[j] - sub[j]
        acc = 0.0
        for d in range(-radius, radius + 1):
            acc += col[min(max(d, 0), W - 1)]
        orow = out[i]
        for j in range(W):
            if j > 0:
                acc += col[min(j + radius, W - 1)] - col[max(j - radius - 1, 0)]
            orow[j] = acc * scale


@jit
def band_counts(r0, r1, coc, centres):
    """bincount(searchsorted(centres, coc[r0:r1], 'left'), minlength=n + 1)."""
    n = centres.shape[0]
    counts = np.zeros(n + 1, dtype=np.int64)
    for y in range(r0, r1):
        row = coc[y]
        for x in range(row.shape[0]):
            v = row[x]
            lo, hi = 0, n  # first index with centres[i] >= v
            while lo < hi:
                mid = (lo + hi) // 2
                if centres[mid] < v:
                    lo = mid + 1
                else:
                    hi = mid
            counts[lo] += 1
    return counts


@inline
def _splat2_fold(a0, b0, bp, an, k, n):
    """Output k of the factor-2 splat with its border fold (``_arrays.splat2``),
    from x[2k] = a0, x[2k+1] = b0, x[2k-1] = bp and x[2k+2] = an (unused where
    folded), summed in the numpy version's order."""
    v = (a0 + b0) * f32(0.375)
    v = v + (bp if k > 0 else a0) * f32(0.125)
    return v + (an if k < n - 1 else b0) * f32(0.125)


@jit
def splat_down2(x):
    """``NumpyBackend.downsample(x, 2)`` of (C, h, w) with h and w even: the
    centroid-preserving splat along rows, then columns, in one pass."""
    c, h, w = x.shape
    nh, nw = h // 2, w // 2
    out = np.empty((c, nh, nw), dtype=np.float32)
    row = np.empty(w, dtype=np.float32)
    for ch in range(c):
        for k in range(nh):
            a, b = x[ch, 2 * k], x[ch, 2 * k + 1]
            bp = x[ch, 2 * k - 1] if k > 0 else b
            an = x[ch, 2 * k + 2] if k < nh - 1 else a
            for j in range(w):
                row[j] = _splat2_fold(a[j], b[j], bp[j], an[j], k, nh)
            dst = out[ch, k]
            dst[0] = _splat2_fold(row[0], row[1], row[0], row[2] if nw > 1 else row[0], 0, nw)
            for j in range(1, nw - 1):
                dst[j] = ((row[2 * j] + row[2 * j + 1]) * f32(0.375) + row[2 * j - 1] * f32(0.125)) + row[2 * j + 2] * f32(0.125)
            if nw > 1:
                dst[nw - 1] = _splat2_fold(row[w - 2], row[w - 1], row[w - 3], row[w - 2], nw - 1, nw)
    return out


@jit
def block_minmax(a, b):
    """Min and max of a 2-D array over b x b blocks (its sides multiples of b)
    (``base.block_reduce`` with np.minimum and np.maximum): rows reduced
    elementwise first (vectorised), then each block's b columns."""
    h, w = a.shape
    nh, nw = h // b, w // b
    lo = np.empty((nh, nw), dtype=a.dtype)
    hi = np.empty((nh, nw), dtype=a.dtype)
    rlo = np.empty(w, dtype=a.dtype)
    rhi = np.empty(w, dtype=a.dtype)
    for i in range(nh):
        first = a[i * b]
        for x in range(w):
            rlo[x] = first[x]
            rhi[x] = first[x]
        for r in range(1, b):
            row = a[i * b + r]
            for x in range(w):
                rlo[x] = min(rlo[x], row[x])
                rhi[x] = max(rhi[x], row[x])
        olo, ohi = lo[i], hi[i]
        for j in range(nw):
            m, n = rlo[j * b], rhi[j * b]
            for k in range(j * b + 1, j * b + b):
                m = min(m, rlo[k])
                n = max(n, rhi[k])
            olo[j], ohi[j] = m, n
    return lo, hi


@jit
def coc_effective(coc, blur):
    """sign(c) sqrt(max(c^2 - b^2, 0)) per pixel, b the input's own blur (0 where
    unknown or infinite): the blur still to add so the total is about c
    (``NumpyBackend.residual_coc``, float32 as numpy computes it)."""
    out = np.empty_like(coc)
    for y in range(coc.shape[0]):
        crow, brow, orow = coc[y], blur[y], out[y]
        for x in range(crow.shape[0]):
            c = crow[x]
            b = brow[x]
            if not np.isfinite(b):
                b = f32(0.0)
            v = np.sqrt(max(c * c - b * b, f32(0.0)))
            orow[x] = v if c > 0 else (-v if c < 0 else f32(0.0) * v)
    return out


@inline
def _srgb(v):
    """sRGB encoding of one linear value, clipped to [0, 1] (``refocus.io.color._encode``)."""
    v = min(max(v, f32(0.0)), f32(1.0))
    if v <= f32(0.0031308):
        return v * f32(12.92)
    return f32(1.055) * v ** f32(1 / 2.4) - f32(0.055)


@jit
def blend_kept(out, src, coc, blur, keep_px, sharp_px, agree):
    """In place on ``out`` (H, W, 3, linear): where |coc| < 2 keep_px and blur <=
    sharp_px, out = out (1 - w) + src w with w = clip((2 keep_px - |coc|) / keep_px,
    0, 1) times clip((2 agree - d) / agree, 0, 1), d the largest channel difference
    between out and src once sRGB-encoded (``NumpyBackend.blend_kept``, in float32
    as numpy computes it)."""
    h, w_ = coc.shape
    two_k = f32(2.0 * keep_px)
    k = f32(keep_px)
    two_a = f32(2.0 * agree)
    a_ = f32(agree)
    for y in range(h):
        for x in range(w_):
            a = abs(coc[y, x])
            if a < two_k and blur[y, x] <= sharp_px:
                d = f32(0.0)
                for ch in range(3):
                    d = max(d, abs(_srgb(out[y, x, ch]) - _srgb(src[y, x, ch])))
                wt = min(max((two_k - a) / k, f32(0.0)), f32(1.0)) * min(max((two_a - d) / a_, f32(0.0)), f32(1.0))
                rest = f32(1.0) - wt
                for ch in range(3):
                    out[y, x, ch] = out[y, x, ch] * rest + src[y, x, ch] * wt


@jit
def box_down4(x):
    """``NumpyBackend.box_down(x, 4)`` of (C, h, w) with h and w multiples of 4 (any
    strides): two levels of 2 x 2 block means, in one pass."""
    c, h, w = x.shape
    out = np.empty((c, h // 4, w // 4), dtype=np.float32)
    r2 = np.empty((2, w // 2), dtype=np.float32)
    for ch in range(c):
        for i in range(h // 4):
            for half in range(2):
                top, bot = x[ch, 4 * i + 2 * half], x[ch, 4 * i + 2 * half + 1]
                dst = r2[half]
                for j in range(w // 2):
                    dst[j] = ((top[2 * j] + bot[2 * j]) + (top[2 * j + 1] + bot[2 * j + 1])) * f32(0.25)
            a, b, dst = r2[0], r2[1], out[ch, i]
            for j in range(w // 4):
                dst[j] = ((a[2 * j] + b[2 * j]) + (a[2 * j + 1] + b[2 * j + 1])) * f32(0.25)
    return out


@jit
def tile_range(b, m, per, high):
    """Per tile of ``per`` x ``per`` blocks, the max (``high``) or min of the block
    map ``b`` over the blocks within m blocks of the tile, edge-clamped (a max/min
    filter of size 2m + 1 with mode 'nearest', then a block reduction). Columns,
    then rows: (h + h/per) (w/per) (per + 2m) comparisons."""
    h, w = b.shape
    nh, nw = h // per, w // per
    cols = np.empty((h, nw), dtype=b.dtype)
    for y in range(h):
        row, dst = b[y], cols[y]
        for j in range(nw):
            x0, x1 = max(j * per - m, 0), min((j + 1) * per + m, w)
            v = row[x0]
            for x in range(x0 + 1, x1):
                v = max(v, row[x]) if high else min(v, row[x])
            dst[j] = v
    out = np.empty((nh, nw), dtype=b.dtype)
    for i in range(nh):
        y0, y1 = max(i * per - m, 0), min((i + 1) * per + m, h)
        dst = out[i]
        for j in range(nw):
            dst[j] = cols[y0, j]
        for y in range(y0 + 1, y1):
            src = cols[y]
            for j in range(nw):
                dst[j] = max(dst[j], src[j]) if high else min(dst[j], src[j])
    return out
