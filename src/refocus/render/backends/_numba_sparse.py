"""Compiled kernels of the tile-sparse layers (numba; imported only when numba is).

Window by window in the CPU cache: a layer's planes, its pull pyramid, fill, blur
and composite (:func:`pull`, :func:`blur_composite`), the band splats of the coarse
layers' weights (:func:`band_splat`), the coarse push-pull fill (:func:`coarse_map`,
:func:`pushpull`) and the bilinear x2 upsampling they share (:func:`upsample2`).
Used by :class:`refocus.render.backends.numba.NumbaBackend`; each mirrors the numpy
expression of :mod:`refocus.render.backends.base` it replaces.
"""

from __future__ import annotations

import numba
import numpy as np

# A literal, not imported: numba's cache notices changes to this file only (below).
PULL_FULL = 0.25  # = refocus.render.plan.PULL_FULL

# cache=True: compiled once per machine (in __pycache__), loaded in ~0.1 s after.
# numba's cache notices changes to this file only: the kernels here call nothing
# compiled in another module.
jit = numba.njit(nogil=True, cache=True, boundscheck=False)
# Helpers over one row are inlined into their callers: called per row as functions,
# their loops ran 3-5x slower. Helpers called once per window stay functions
# (inlining them too made the first compilation take 40 s instead of ~10).
inline = numba.njit(nogil=True, cache=True, boundscheck=False, inline="always")
f32 = np.float32

# A window's "planes" (8, h, w) at the layer's level: colour (3; the layer's own,
# W_i x), alpha, hidden coverage (clipped to [0, 1]), content at or behind the
# layer (3). The first four are the stack the aperture kernel convolves.


@inline
def _ramp_row(src, dst, lo, inv):
    """dst = clip((src - lo) * inv, 0, 1) (``ArrayBackend._ramp``)."""
    for b in range(src.shape[0]):
        dst[b] = min(max((src[b] - lo) * inv, f32(0.0)), f32(1.0))


@inline
def _fill_row(dst, v):
    for b in range(dst.shape[0]):
        dst[b] = v


@inline
def _ramp_pair(crow, r_lo, r_hi, has_lo, lo, inv_lo, has_hi, hi, inv_hi):
    """One row of the ramps R_lo (1 without a farther layer) and R_hi (0 without a
    nearer one) of the CoC row ``crow``: a layer's tent weight is R_lo - R_hi."""
    if has_lo:
        _ramp_row(crow, r_lo, lo, inv_lo)
    else:
        _fill_row(r_lo, f32(1.0))
    if has_hi:
        _ramp_row(crow, r_hi, hi, inv_hi)
    else:
        _fill_row(r_hi, f32(0.0))


#: Which planes a kernel asks for: all, hidden + behind (the pull pyramid), or
#: colour + alpha (a window that needs no fill).
ALL, PULL, STACK = 0, 1, 2


@jit
def _frame_planes(coc, x, y0, x0, nh, nw, has_lo, lo, inv_lo, has_hi, hi, inv_hi, what, buf):
    """Planes ``what`` of the nh x nw rectangle at (y0, x0) of the full-resolution
    CoC (1,H,W) and image (3,H,W) into buf[:, :nh, :nw]: alpha = R_lo, colour =
    R_lo x - R_hi x, hidden = R_hi, behind = x - R_hi x, with R the clipped ramps
    of the CoC."""
    for a in range(nh):
        crow = coc[0, y0 + a, x0 : x0 + nw]
        al, hd = buf[3, a, :nw], buf[4, a, :nw]
        _ramp_pair(crow, al, hd, has_lo, lo, inv_lo, has_hi, hi, inv_hi)
        for ch in range(3):
            xr = x[ch, y0 + a, x0 : x0 + nw]
            col, beh = buf[ch, a], buf[5 + ch, a]
            if what != STACK:
                for b in range(nw):
                    beh[b] = xr[b] - hd[b] * xr[b]
            if what != PULL:
                if has_lo:
                    for b in range(nw):
                        col[b] = al[b] * xr[b] - hd[b] * xr[b]
                else:
                    for b in range(nw):
                        col[b] = xr[b] - hd[b] * xr[b]


@inline
def _gather_row(src, y, x0, dst):
    """dst = src[y, x0 : x0 + len(dst)], columns clamped to src's width."""
    w = src.shape[1]
    lo, hi = max(0, -x0), min(dst.shape[0], w - x0)
    for b in range(0, lo):
        dst[b] = src[y, 0]
    row = src[y]
    for b in range(lo, hi):
        dst[b] = row[x0 + b]
    for b in range(max(hi, lo), dst.shape[0]):
        dst[b] = src[y, w - 1]


@jit
def _level_planes(alpha, colour, hidden, behind, y0, x0, nh, nw, what, buf):
    """Planes ``what`` of the nh x nw rectangle at (y0, x0) (may be negative)
    gathered from level-s arrays ((1|3, h, w) each), edge-clamped, into
    buf[:, :nh, :nw]."""
    h = alpha.shape[1]
    for a in range(nh):
        yy = min(max(y0 + a, 0), h - 1)
        if what != STACK:
            hd = buf[4, a, :nw]
            _gather_row(hidden[0], yy, x0, hd)
            for b in range(nw):
                hd[b] = min(max(hd[b], f32(0.0)), f32(1.0))
            for ch in range(3):
                _gather_row(behind[ch], yy, x0, buf[5 + ch, a, :nw])
        if what != PULL:
            _gather_row(alpha[0], yy, x0, buf[3, a, :nw])
            for ch in range(3):
                _gather_row(colour[ch], yy, x0, buf[ch, a, :nw])


@jit
def _planes(w, mode, coc, x, o, levels, ty, tx, T, E, r0, c0, nh, nw, ramps, what, buf):
    """Planes of window w's rows [r0, r0 + nh) and columns [c0, c0 + nw) into
    buf[:, :nh, :nw]: from the frame (mode 0; the window at o + (ty, tx) * T) or
    from level arrays (mode 1; the window at (ty, tx) * T - E)."""
    if mode == 0:
        has_lo, lo, inv_lo, has_hi, hi, inv_hi = ramps
        _frame_planes(coc, x, o + ty[w] * T + r0, o + tx[w] * T + c0, nh, nw, has_lo, lo, inv_lo, has_hi, hi, inv_hi, what, buf)
    else:
        _level_planes(levels[0], levels[1], levels[2], levels[3], ty[w] * T - E + r0, tx[w] * T - E + c0, nh, nw, what, buf)


@inline
def _box2(top, bot, dst):
    for b in range(dst.shape[0]):
        dst[b] = ((top[2 * b] + bot[2 * b]) + (top[2 * b + 1] + bot[2 * b + 1])) * f32(0.25)


@jit
def _pull_norm(lev):
    """``ArrayBackend.pull_down2`` in place on 2 x 2 block means (4, h, w) of
    (premultiplied colour, weight): a block whose mean weight reaches ``PULL_FULL``
    is fully known one level up."""
    h, w = lev.shape[1], lev.shape[2]
    for a in range(h):
        wt = lev[3, a]
        for b in range(w):
            inv = f32(1.0) / max(wt[b], f32(PULL_FULL))
            lev[0, a, b] *= inv
            lev[1, a, b] *= inv
            lev[2, a, b] *= inv
            wt[b] *= inv


@jit
def _pull1(buf, p1, tmp0, tmp1):
    """First 2x2 box level of (behind, 1 - hidden) (the window's pull pyramid)."""
    Wn = buf.shape[1]
    for ch in range(4):
        for a in range(Wn // 2):
            if ch < 3:
                _box2(buf[5 + ch, 2 * a], buf[5 + ch, 2 * a + 1], p1[ch, a])
            else:
                t, u = buf[4, 2 * a], buf[4, 2 * a + 1]
                for b in range(Wn):
                    tmp0[b] = f32(1.0) - t[b]
                    tmp1[b] = f32(1.0) - u[b]
                _box2(tmp0, tmp1, p1[3, a])


@jit
def pull(mode, coc, x, o, levels, ty, tx, T, E, Wn, ramps, r0, r1):
    """Per window: the two pull levels (N, 4, Wn/2, Wn/2) and (N, 4, Wn/4, Wn/4)
    of (behind, 1 - hidden), and whether the hidden coverage exceeds 1e-4
    anywhere in rows/columns [r0, r1) (what the kernel reads)."""
    n = ty.shape[0]
    p1_all = np.empty((n, 4, Wn // 2, Wn // 2), dtype=np.float32)
    p2 = np.empty((n, 4, Wn // 4, Wn // 4), dtype=np.float32)
    need = np.zeros(n, dtype=np.bool_)
    buf = np.empty((8, Wn, Wn), dtype=np.float32)
    tmp0 = np.empty(Wn, dtype=np.float32)
    tmp1 = np.empty(Wn, dtype=np.float32)
    for w in range(n):
        p1 = p1_all[w]
        _planes(w, mode, coc, x, o, levels, ty, tx, T, E, 0, 0, Wn, Wn, ramps, PULL, buf)
        m = f32(0.0)
        for a in range(r0, r1):
            row = buf[4, a]
            for b in range(r0, r1):
                m = max(m, row[b])
        need[w] = m > f32(1e-4)
        _pull1(buf, p1, tmp0, tmp1)
        for ch in range(4):
            for a in range(Wn // 4):
                _box2(p1[ch, 2 * a], p1[ch, 2 * a + 1], p2[w, ch, a])
    return p1_all, p2, need


@numba.njit(nogil=True, cache=True, boundscheck=False, fastmath={"contract"})
def _conv_taps(stk, out, taps_dy, taps_dx, taps_w, nt, T):
    """out[:, :, :T] (C, T, T) = sum over taps of w * stk (C, T + kh - 1, SW) shifted
    by (dy, dx); out has stk's row length SW, so each tap is one long contiguous
    loop over the whole plane (columns T.. of out hold junk). Four taps per pass:
    fewer loads and stores per multiply-add. ~11 GFMA/s per core here, 2-3x
    row-by-row loops."""
    C, SH, SW = stk.shape
    L = (T - 1) * SW + T
    for ch in range(C):
        s = stk[ch].reshape(-1)
        o = out[ch].reshape(-1)[:L]
        for j in range(L):
            o[j] = f32(0.0)
        t = 0
        while t + 4 <= nt:
            o0 = taps_dy[t] * SW + taps_dx[t]
            o1 = taps_dy[t + 1] * SW + taps_dx[t + 1]
            o2 = taps_dy[t + 2] * SW + taps_dx[t + 2]
            o3 = taps_dy[t + 3] * SW + taps_dx[t + 3]
            s0, s1, s2, s3 = s[o0 : o0 + L], s[o1 : o1 + L], s[o2 : o2 + L], s[o3 : o3 + L]
            w0, w1, w2, w3 = taps_w[t], taps_w[t + 1], taps_w[t + 2], taps_w[t + 3]
            for j in range(L):
                o[j] += w0 * s0[j] + w1 * s1[j] + w2 * s2[j] + w3 * s3[j]
            t += 4
        while t < nt:
            o0 = taps_dy[t] * SW + taps_dx[t]
            s0 = s[o0 : o0 + L]
            w0 = taps_w[t]
            for j in range(L):
                o[j] += w0 * s0[j]
            t += 1


@jit
def blur_composite(mode, coc, x, o, levels, ty, tx, T, E, Wn, ramps, p1_all, fc, need, use_fill, kerns, k_idx, acc, front, additive):
    """Fill, blur and composite every window into ``acc`` (4, h, w) in place,
    each window's planes recomputed here (see :func:`pull`), only where the kernel
    reads them, so that no window-sized planes go through memory.

    Fill (where ``use_fill`` and ``need[n]``): the coarse fill ``fc`` (3, ., .),
    whose window n starts at (ty*T/4, tx*T/4), pushed down through the window's
    two pull levels and added to the colour where the layer is hidden. Then the
    (colour, alpha) stack is convolved with its kernel ``kerns[k_idx[n]]`` (scatter
    semantics, 'valid' over the tile plus the kernel's halo; one kernel but for a
    cat's-eye) and composited over (``front``: under) the tile of ``acc``. ``additive``: the stack is the tent share alone (alpha
    R_lo - R_hi from the frame, or as given by the level arrays) and is added to
    ``acc`` (the summed render away from depth jumps)."""
    n = ty.shape[0]
    nk, kh, kw = kerns.shape
    hy, hx = kh // 2, kw // 2
    sh, sw = T + kh - 1, T + kw - 1
    m = Wn // 4
    h1 = Wn // 2
    buf = np.empty((8, sh, sw), dtype=np.float32)
    cv = np.empty((3, 2 * m + 4, 2 * m + 4), dtype=np.float32)
    f1 = np.empty((3, h1, h1), dtype=np.float32)
    f0 = np.empty((3, Wn, Wn), dtype=np.float32)
    stk = buf[:4]  # (colour, alpha): what the kernel convolves
    out = np.empty((4, T, sw), dtype=np.float32)
    # Taps of each flipped kernel (scatter semantics), zeros skipped.
    taps_dy = np.empty((nk, kh * kw), dtype=np.int64)
    taps_dx = np.empty((nk, kh * kw), dtype=np.int64)
    taps_w = np.empty((nk, kh * kw), dtype=np.float32)
    nt = np.zeros(nk, dtype=np.int64)
    for q in range(nk):
        for dy in range(kh):
            for dx in range(kw):
                wv = kerns[q, kh - 1 - dy, kw - 1 - dx]
                if wv != 0.0:
                    t = nt[q]
                    taps_dy[q, t] = dy
                    taps_dx[q, t] = dx
                    taps_w[q, t] = wv
                    nt[q] = t + 1
    cy0, cx0 = E - hy, E - hx
    for w in range(n):
        fill = use_fill and need[w]
        _planes(w, mode, coc, x, o, levels, ty, tx, T, E, cy0, cx0, sh, sw, ramps, ALL if fill else STACK, buf)
        if additive and mode == 0:
            for a in range(sh):
                al, hd = buf[3, a], buf[4, a]
                for b in range(sw):
                    al[b] -= hd[b]
        if fill:
            p1 = p1_all[w]
            fy, fx = ty[w] * (T // 4), tx[w] * (T // 4)
            _upsample_into(fc[:, fy : fy + m + 2, fx : fx + m + 2], cv)
            for ch in range(3):
                for a in range(h1):
                    src, tr, add, dst = cv[ch, a + 2, 2 : h1 + 2], p1[3, a], p1[ch, a], f1[ch, a]
                    for b in range(h1):
                        dst[b] = src[b] * (f32(1.0) - tr[b]) + add[b]
            _upsample_into(f1, f0)
            for ch in range(3):
                for a in range(sh):
                    col, hid, beh = buf[ch, a], buf[4, a], buf[5 + ch, a]
                    fr = f0[ch, cy0 + a, cx0 : cx0 + sw]
                    for b in range(sw):
                        f = fr[b] * (f32(1.0) - (f32(1.0) - hid[b])) + beh[b]
                        col[b] = col[b] + f * hid[b]
        q = k_idx[w]
        _conv_taps(stk, out, taps_dy[q], taps_dx[q], taps_w[q], nt[q], T)
        y0, x0 = ty[w] * T, tx[w] * T
        if additive:
            for ch in range(4):
                for a in range(T):
                    dst, src = acc[ch, y0 + a, x0 : x0 + T], out[ch, a]
                    for b in range(T):
                        dst[b] += src[b]
            continue
        for a in range(T):
            ar = acc[3, y0 + a, x0 : x0 + T]
            oa = out[3, a]
            if front:
                for ch in range(3):
                    dst, src = acc[ch, y0 + a, x0 : x0 + T], out[ch, a]
                    for b in range(T):
                        dst[b] += (f32(1.0) - ar[b]) * src[b]
                for b in range(T):
                    ar[b] += (f32(1.0) - ar[b]) * min(max(oa[b], f32(0.0)), f32(1.0))
            else:
                for ch in range(3):
                    dst, src = acc[ch, y0 + a, x0 : x0 + T], out[ch, a]
                    for b in range(T):
                        dst[b] = dst[b] * (f32(1.0) - min(max(oa[b], f32(0.0)), f32(1.0))) + src[b]
                for b in range(T):
                    al = min(max(oa[b], f32(0.0)), f32(1.0))
                    ar[b] = ar[b] * (f32(1.0) - al) + al


@inline
def _splat2_row(src, dst):
    """The factor-2 splat of ``_arrays.splat2_interior`` along one row: len(src)
    = 2 len(dst) + 4, dst[k] = 3/8 (s[2k+2] + s[2k+3]) + 1/8 (s[2k+1] + s[2k+4])."""
    for k in range(dst.shape[0]):
        dst[k] = (src[2 * k + 2] + src[2 * k + 3]) * f32(0.375) + (src[2 * k + 1] + src[2 * k + 4]) * f32(0.125)


@jit
def band_splat(coc, x, o, ty, tx, T, ramps, w_out, wx_out, has_acc, acc_w, acc_wx):
    """Tent weights W = R_lo - R_hi of tiles (T x T at the source level, read with
    2 px of margin from (o + ty*T, o + tx*T) of the padded CoC (1,.,.) and image
    (3,.,.)), and W x, splatted to half the source's resolution into the tiles
    (ty, tx) of ``w_out`` (1,.,.) and ``wx_out`` (3,.,.) (as
    ``ArrayBackend.band_splat``). With ``has_acc`` the tiles' W and W x at the
    source level are also added into ``acc_w`` / ``acc_wx`` (tile (ty, tx) of side T)."""
    has_lo, lo, inv_lo, has_hi, hi, inv_hi = ramps
    F = T + 4
    h = T // 2
    win = np.empty((4, F, F), dtype=np.float32)
    rows = np.empty((4, h, F), dtype=np.float32)
    col = np.empty(F, dtype=np.float32)
    res = np.empty(h, dtype=np.float32)
    for n in range(ty.shape[0]):
        y0, x0 = o + ty[n] * T, o + tx[n] * T
        for a in range(F):
            crow = coc[0, y0 + a, x0 : x0 + F]
            wr = win[0, a]
            _ramp_pair(crow, wr, col, has_lo, lo, inv_lo, has_hi, hi, inv_hi)
            if has_hi:
                for b in range(F):
                    wr[b] = wr[b] - col[b]
            for ch in range(3):
                xr, dst = x[ch, y0 + a, x0 : x0 + F], win[1 + ch, a]
                for b in range(F):
                    dst[b] = wr[b] * xr[b]
        if has_acc:
            ay, ax = ty[n] * T, tx[n] * T
            for a in range(T):
                src, dst = win[0, a + 2, 2 : T + 2], acc_w[0, ay + a, ax : ax + T]
                for b in range(T):
                    dst[b] += src[b]
                for ch in range(3):
                    src, dst = win[1 + ch, a + 2, 2 : T + 2], acc_wx[ch, ay + a, ax : ax + T]
                    for b in range(T):
                        dst[b] += src[b]
        # Rows first (as down_win: axis 2, then axis 3), then columns.
        for ch in range(4):
            for k in range(h):
                r0, r1, r2, r3, dst = win[ch, 2 * k + 1], win[ch, 2 * k + 2], win[ch, 2 * k + 3], win[ch, 2 * k + 4], rows[ch, k]
                for b in range(F):
                    dst[b] = (r1[b] + r2[b]) * f32(0.375) + (r0[b] + r3[b]) * f32(0.125)
        oy, ox = ty[n] * h, tx[n] * h
        for k in range(h):
            _splat2_row(rows[0, k], res)
            dst = w_out[0, oy + k, ox : ox + h]
            for b in range(h):
                dst[b] = res[b]
            for ch in range(3):
                _splat2_row(rows[1 + ch, k], res)
                dst = wx_out[ch, oy + k, ox : ox + h]
                for b in range(h):
                    dst[b] = res[b]


@inline
def _up_row(src, dst):
    """Bilinear x2 of one row into len(dst) in {2n, 2n - 1} samples, as numpy's
    ``_arrays.upsample_axis`` does: at exactly 2n the edges are copied
    (``_upsample2_axis``), at 2n - 1 the first sample blends with itself."""
    n = src.shape[0]
    exact = dst.shape[0] == 2 * n
    dst[0] = src[0] if exact else src[0] * f32(0.75) + src[0] * f32(0.25)
    for k in range(1, n):
        dst[2 * k] = src[k] * f32(0.75) + src[k - 1] * f32(0.25)
    for k in range(n - 1):
        dst[2 * k + 1] = src[k] * f32(0.75) + src[k + 1] * f32(0.25)
    if exact:
        dst[2 * n - 1] = src[n - 1]


@jit
def _upsample_into(x, out):
    """out (C, H, W) = half-pixel bilinear x2 of x (C, h, w), with H in {2h, 2h - 1}
    and W in {2w, 2w - 1}, as ``NumpyBackend.upsample(x, 2, H, W)``: columns first
    (:func:`_up_row`), then rows by the same rule, three column-upsampled rows kept
    in a ring."""
    c, h, w = x.shape
    H, W = out.shape[1], out.shape[2]
    exact = H == 2 * h
    ring = np.empty((3, W), dtype=np.float32)
    for ch in range(c):
        _up_row(x[ch, 0], ring[0])
        if h > 1:
            _up_row(x[ch, 1], ring[1])
        for k in range(h):
            cur = ring[k % 3]
            if k >= 1 and k + 1 < h:
                _up_row(x[ch, k + 1], ring[(k + 1) % 3])
            even = out[ch, 2 * k]
            prv = ring[(k - 1) % 3] if k > 0 else cur
            if k == 0 and exact:
                for b in range(W):
                    even[b] = cur[b]
            else:
                for b in range(W):
                    even[b] = cur[b] * f32(0.75) + prv[b] * f32(0.25)
            if 2 * k + 1 < H:
                odd = out[ch, 2 * k + 1]
                if k < h - 1:
                    nxt = ring[(k + 1) % 3]
                    for b in range(W):
                        odd[b] = cur[b] * f32(0.75) + nxt[b] * f32(0.25)
                else:
                    for b in range(W):
                        odd[b] = cur[b]


@jit
def upsample2(x):
    """``NumpyBackend.upsample(x, 2, 2h, 2w)`` of (C, h, w) in one compiled pass."""
    c, h, w = x.shape
    out = np.empty((c, 2 * h, 2 * w), dtype=np.float32)
    _upsample_into(x, out)
    return out


@jit
def _box_down2_edge(src):
    """``NumpyBackend.box_down2``: 2 x 2 block means, an odd last row or column
    repeated."""
    c, h, w = src.shape
    nh, nw = (h + 1) // 2, (w + 1) // 2
    out = np.empty((c, nh, nw), dtype=np.float32)
    row = np.empty(2 * nw, dtype=np.float32)
    for ch in range(c):
        for i in range(nh):
            top, bot = src[ch, 2 * i], src[ch, min(2 * i + 1, h - 1)]
            for x in range(w):
                row[x] = top[x] + bot[x]
            if w % 2:
                row[w] = row[w - 1]
            dst = out[ch, i]
            for j in range(nw):
                dst[j] = (row[2 * j] + row[2 * j + 1]) * f32(0.25)
    return out


@jit
def pushpull(pc, eps, level0, clamp_level):
    """``ArrayBackend.pushpull(pc[:3], pc[3:4], clamp_level, level0)``: fill the
    low-weight pixels of the premultiplied colour from their surroundings through a
    2 x 2 box pyramid, its pulls clamped (:func:`_pull_norm`) from ``clamp_level`` on."""
    pyr = [pc]
    while pyr[-1].shape[1] > 1 or pyr[-1].shape[2] > 1:
        lev = _box_down2_edge(pyr[-1])
        if level0 + len(pyr) >= clamp_level:
            _pull_norm(lev)
        pyr.append(lev)
    top = pyr[-1]
    fill = np.empty((3, 1, 1), dtype=np.float32)
    for ch in range(3):
        fill[ch, 0, 0] = top[ch, 0, 0] / max(top[3, 0, 0], eps)
    for li in range(len(pyr) - 2, -1, -1):
        level = pyr[li]
        h, w = level.shape[1], level.shape[2]
        finer = np.empty((3, h, w), dtype=np.float32)
        _upsample_into(fill, finer)
        fill = finer
        for ch in range(3):
            for a in range(h):
                f, wt, v = fill[ch, a], level[3, a], level[ch, a]
                for b in range(w):
                    f[b] = f[b] * (f32(1.0) - wt[b]) + v[b]
    return fill


@jit
def coarse_map(xb, behind, per, tops, ty, tx, m0):
    """The coarse fill's input (4, h, w) at block resolution (``ArrayBackend.
    coarse_fill``): per tile of ``behind`` (bool, tiles of ``per`` blocks) the
    image's block means and weight 1 where the tile is skipped with all content at
    or behind the layer, else 0; then each window's pull level (``tops``, (N, 4,
    ., .), its tile at offset m0) over its tile (ty, tx)."""
    c, h, w = xb.shape
    pc = np.zeros((4, h, w), dtype=np.float32)
    for i in range(behind.shape[0]):
        for j in range(behind.shape[1]):
            if behind[i, j]:
                for a in range(i * per, i * per + per):
                    for ch in range(3):
                        src, dst = xb[ch, a], pc[ch, a]
                        for b in range(j * per, j * per + per):
                            dst[b] = src[b]
                    dst = pc[3, a]
                    for b in range(j * per, j * per + per):
                        dst[b] = f32(1.0)
    for n in range(ty.shape[0]):
        y0, x0 = ty[n] * per, tx[n] * per
        for ch in range(4):
            for a in range(per):
                src, dst = tops[n, ch, m0 + a], pc[ch, y0 + a]
                for b in range(per):
                    dst[x0 + b] = src[m0 + b]
    return pc
