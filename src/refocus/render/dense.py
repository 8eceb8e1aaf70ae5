"""Layers rendered densely over the frame at their level.

On a GPU every layer; on the CPU the layers blurred at quarter resolution or
coarser (the finest ones are tile-sparse, :mod:`refocus.render.sparse`). A layer's
(premultiplied colour, alpha) stack holds its own pixels (the tent weight W_i, plus
their own nearer shares S_i away from depth jumps: :func:`refocus.render.plan.own_step`)
and, where other, nearer surfaces hide it, a push-pull extrapolation of the content
at or behind it; the stack is then blurred with the layer's aperture kernel
(spatially varying for the cat's eye: :func:`conv_layer`).
"""

from __future__ import annotations

import math

import numpy as np

from refocus import aperture as ap
from refocus.render.backends.base import add_
from refocus.render.config import RenderConfig
from refocus.render.plan import BLOCK, CatsEyeCells, cats_eye_varies, jump_limit_px, pull_clamp_level, render_kernel


def tent_weights(coc, centres: np.ndarray, be):
    """For each pixel, the index k of the layer just behind it and the weight t of layer k+1."""
    if len(centres) == 1:
        return be.zeros(coc.shape), be.zeros(coc.shape)
    k = be.clip(be.searchsorted(centres, coc, right=True) - 1, 0, len(centres) - 2)
    lo = be.take(centres, k)
    hi = be.take(centres, k + 1)
    t = be.clip((coc - lo) / (hi - lo), 0.0, 1.0)
    return k, t


class DenseLayers:
    """The frame state of the dense layers, and their step of a sweep (:meth:`layer`)."""

    def __init__(self, be, cfg: RenderConfig, centres, scale: dict[int, int], coc_pad, x, x_at, grid: int, sparse,
                 photo_hw: tuple[int, int]):
        """``coc_pad`` and ``x``: the grid-padded CoC (Hp, Wp) and image (3, Hp, Wp);
        ``x_at(q)``: the image at level q; ``sparse``: the tile-sparse levels (whose
        band tiles then give the coarse layers' weights), or None; ``photo_hw``: the
        photo's size without the padding (px), for the cat's-eye."""
        self.be, self.cfg, self.centres, self.scale, self.photo_hw = be, cfg, centres, scale, photo_hw
        self.x, self.x_at, self.grid, self.sparse = x, x_at, grid, sparse
        self.Hp, self.Wp = coc_pad.shape
        # Full-resolution tent weights, for a frame without tile-sparse layers only.
        self.k, self.t = tent_weights(coc_pad, centres, be) if sparse is None else (None, None)
        # Rows each layer touches (its tent weight is non-zero there), rounded to the grid.
        self.row_lo, self.row_hi = be.row_minmax(coc_pad)
        # CoC jumps per 4 x 4 block, for the own shares of full-resolution dense layers.
        self.jump4 = be.block_jump(coc_pad, BLOCK) if sparse is None else None

    def band_rows(self, i: int) -> tuple[int, int]:
        """The rows (rounded to the grid) where layer i's tent weight is non-zero."""
        c = self.centres
        lo = c[i - 1] if i > 0 else -np.inf
        hi = c[i + 1] if i + 1 < len(c) else np.inf
        rows = np.nonzero((self.row_hi >= lo) & (self.row_lo <= hi))[0]
        if rows.size == 0:
            return 0, 0
        return (rows[0] // self.grid) * self.grid, min(self.Hp, -(-(rows[-1] + 1) // self.grid) * self.grid)

    def _tent_band(self, i: int):
        """Rows (y0, y1) of layer i's band and its tent weight W_i (1, ., Wp) and
        W_i x (3, ., Wp) there, at full resolution (a frame without tile-sparse layers)."""
        be = self.be
        y0, y1 = self.band_rows(i)
        kc, tc = self.k[y0:y1], self.t[y0:y1]
        w = be.where(kc == i, 1.0 - tc, 0.0)
        if i > 0:
            w = w + be.where(kc == i - 1, tc, 0.0)
        w = w[None]
        return y0, y1, w, w * self.x[:, y0:y1]

    def layer(self, i: int, front: bool, levels: list[int], cum_w: dict, cum_wx: dict, half):
        """Layer i's blurred (premultiplied colour, alpha) stack (4, Hp/s, Wp/s).

        ``levels``: the levels of the sweep's dense layers; ``cum_w``, ``cum_wx``:
        the sweep's cumulative weights per level (layers at or behind the current
        one back-to-front, nearer ones front-to-back), updated here; ``half``: the
        sweep's half-resolution cumulative weights of the tile-sparse layers, or None.
        """
        be, c, x, x_at = self.be, self.centres, self.x, self.x_at
        Hp, Wp = self.Hp, self.Wp
        s = self.scale[i]
        finer = [q for q in levels if q <= s]  # later layers are at these scales
        has_hi = i + 1 < len(c)
        if self.sparse is not None and finer[0] >= 4:
            # Weights at half resolution from the tiles the layer's band touches.
            y0, y1 = 0, Hp
            prev_q, prev = 4, self.sparse.band_quarter_res_from_half(i, half, x_at)
            own = self.sparse.band_quarter_res_from_half(i, None, x_at, own=True) if has_hi else None
        else:
            y0, y1, w_i, wx_i = self._tent_band(i)
            kc, tc = self.k[y0:y1], self.t[y0:y1]
            prev_q, prev = 1, (w_i, wx_i)
            own = None
            if has_hi:  # V_i = W_i + S_i; t == 1 only at the top end, on layer i + 1
                s_i = be.where((kc == i) & (tc < 1.0), tc, 0.0)
                if i > 0:  # own shares only away from depth jumps (own_step)
                    half_i = max(render_kernel(self.cfg.aperture, abs(float(c[i])) / s, front=c[i] > 0).shape) // 2
                    reach = -(-(half_i + 3) * s // BLOCK)
                    ok = be.clip((jump_limit_px(c, i, self.cfg.layer_step()[0]) - be.max_filter(self.jump4, reach)) * 1e6, 0.0, 1.0)
                    hb, wb = ok.shape
                    ok = be.upsample(ok[None], BLOCK, hb * BLOCK, wb * BLOCK)[0, y0:y1, :Wp]
                    s_i = s_i * ok
                v_i = w_i + s_i[None]
                own = (v_i, v_i * x[:, y0:y1])
        own_q = prev_q  # own: V_i and V_i x at this level, None where V_i = W_i
        small = {}
        for q in finer:  # ascending: each level averages the previous one
            cur = (be.splat_down(prev[0], q // prev_q), be.splat_down(prev[1], q // prev_q))
            small[q] = cur
            prev_q, prev = q, cur
        if own is not None:
            own = (be.splat_down(own[0], s // own_q), be.splat_down(own[1], s // own_q))
        else:
            own = small[s]
        # The layer's (premultiplied colour, alpha) stack, built in place: these
        # are full-frame arrays at level 0, and each extra pass costs.
        stack = be.zeros((4, Hp // s, Wp // s))
        stack[:3, y0 // s : y1 // s] = own[1]
        stack[3:4, y0 // s : y1 // s] = own[0]
        # Covered: content at or behind layer i, and the own nearer shares S_i
        # of its pixels (a surface never hides itself); the rest is hidden by
        # other, nearer surfaces.
        rows = slice(y0 // s, y1 // s)
        if not front:  # back-to-front: C_i counts layers at or behind i
            for q in finer:
                add_(cum_w[q][:, y0 // q : y1 // q], small[q][0])
                add_(cum_wx[q][:, y0 // q : y1 // q], small[q][1])
            covered, covered_x = cum_w[s], cum_wx[s]
        else:  # front-to-back: the cumulative counts layers nearer than i
            covered, covered_x = 1.0 - cum_w[s], x_at(s) - cum_wx[s]
        if own is not small[s]:
            if not front:
                covered, covered_x = covered + 0.0, covered_x + 0.0
            add_(covered[:, rows], own[0] - small[s][0])
            add_(covered_x[:, rows], own[1] - small[s][1])
        hidden = be.clip(1.0 - covered, 0.0, 1.0)
        add_(stack[3:4], hidden)
        if be.may_exceed(hidden, 1e-4):
            fill = be.pushpull(covered_x, be.clip(covered, 0.0, 1.0), pull_clamp_level(self.cfg.full_res_max_radius()))
            fill *= hidden
            add_(stack[:3], fill)
        if front:
            for q in finer:
                add_(cum_w[q][:, y0 // q : y1 // q], small[q][0])
                add_(cum_wx[q][:, y0 // q : y1 // q], small[q][1])
        return conv_layer(stack, abs(float(c[i])) / s, front, self.cfg, be, s, self.photo_hw)

    def layer_sum(self, i: int, front: bool):
        """Layer i's blurred tent share alone (W_i x, W_i), (4, Hp/s, Wp/s): its step
        of the summed render away from depth jumps (:mod:`refocus.render.zone`), where
        nothing hides anything, so there is neither an own share nor a fill."""
        be, c = self.be, self.centres
        Hp, Wp = self.Hp, self.Wp
        s = self.scale[i]
        if self.sparse is not None and s >= 4:
            y0, y1 = 0, Hp
            q, (w, wx) = 4, self.sparse.band_quarter_res_from_half(i, None, self.x_at)
        else:
            y0, y1, w, wx = self._tent_band(i)
            q = 1
        stack = be.zeros((4, Hp // s, Wp // s))
        stack[:3, y0 // s : y1 // s] = be.splat_down(wx, s // q)
        stack[3:4, y0 // s : y1 // s] = be.splat_down(w, s // q)
        return conv_layer(stack, abs(float(c[i])) / s, front, self.cfg, be, s, self.photo_hw)


def conv_layer(stack, radius: float, front: bool, cfg: RenderConfig, be, scale: int, photo_hw: tuple[int, int]):
    """Blur a (4,h,w) layer stack with the aperture kernel (spatially varying for cat's-eye).

    ``radius``: the layer's |CoC| at its level (px); ``scale``: the level's factor;
    ``photo_hw``: the photo's size (full-resolution px, without the frame's grid
    padding), which the cat's-eye positions refer to."""
    aper = cfg.aperture
    if not cats_eye_varies(aper, radius):
        return be.conv(stack, render_kernel(aper, radius, front=front))
    if be.tile_sparse and stack.shape[1] * stack.shape[2] >= CELLS_FROM_PX:
        return _conv_cells(stack, radius, front, cfg, be, scale, photo_hw)
    return _conv_nodes(stack, radius, front, cfg, be, scale, photo_hw)


#: Layers of at least this many pixels (at their level) take :func:`_conv_cells` on the
#: CPU, where the cost is per pixel; smaller ones (the coarse levels, and small frames)
#: keep :func:`_conv_nodes`, whose overlap costs little there and whose centre node
#: renders a light at the frame's centre as a whole disc with its light (9.18 of 9
#: units at cat's-eye 1 against 9.33 with cells: the blurred alpha of a spatially
#: varying kernel is not 1, and cells' steps add to it).
CELLS_FROM_PX = 256 * 256


def _conv_cells(stack, radius: float, front: bool, cfg: RenderConfig, be, scale: int, photo_hw: tuple[int, int]):
    """Cat's-eye on the CPU (the dense layers: quarter resolution and coarser, or all
    of a frame whose cells are smaller than a tile): the frame cut into cells, each
    blurred with the kernel of its centre (:class:`~refocus.render.plan.CatsEyeCells`),
    only in boxes around what the layer holds there.

    Every pixel belongs to one cell, so a light keeps its energy and its place (its
    kernel is that of where the light is: scatter semantics), and the blur costs about
    one frame per layer. The GPU keeps :func:`_conv_nodes`, whose 25 calls a layer
    cost less there than up to a thousand small ones: on the CPU its overlapping
    tiles blurred the frame 4 times over (``refocus bench speed``'s 1 MP preview with
    cat's-eye 0.5: 1.7 s with nodes, 0.79 s with cells, 0.21 s for a disc; 2 AMD
    EPYC cores)."""
    _, h, w = stack.shape
    cells = CatsEyeCells(cfg.aperture, radius, front, h, w, scale, photo_hw)
    n_y, n_x = cells.shape
    out = be.zeros(stack.shape)
    r_pad = int(math.ceil(radius)) + 1
    held = be.to_numpy((stack != 0).any(0)) > 0
    for cy in range(n_y):
        y0, y1 = int(cells.y_edges[cy]), int(cells.y_edges[cy + 1])
        for cx in range(n_x):
            x0, x1 = int(cells.x_edges[cx]), int(cells.x_edges[cx + 1])
            boxes = _held_boxes(held[y0:y1, x0:x1], 2 * r_pad + _BOX_GAP_PX)
            if not boxes:
                continue
            k = cells.kernel(cy, cx)
            for by0, by1, bx0, bx1 in boxes:
                ya, yb, xa, xb = y0 + by0, y0 + by1, x0 + bx0, x0 + bx1
                cy0, cy1 = max(0, ya - r_pad), min(h, yb + r_pad)
                cx0, cx1 = max(0, xa - r_pad), min(w, xb + r_pad)
                src = be.zeros((stack.shape[0], cy1 - cy0, cx1 - cx0))
                src[:, ya - cy0 : yb - cy0, xa - cx0 : xb - cx0] = stack[:, ya:yb, xa:xb]
                add_(out[:, cy0:cy1, cx0:cx1], be.conv(src, k))
    return out


def _conv_nodes(stack, radius: float, front: bool, cfg: RenderConfig, be, scale: int, photo_hw: tuple[int, int]):
    """Cat's-eye on the GPU, and for small layers on the CPU (``CELLS_FROM_PX``):
    kernels on a grid of up to 5 x 5 frame positions, blended."""
    aper = cfg.aperture
    _, h, w = stack.shape
    H, W = photo_hw
    # Up to 5 nodes a side, never two on one position (a side of 1 px has one node:
    # equal positions made the blending weights 0 / 0).
    ys = np.linspace(0, h - 1, min(5, h))
    xs = np.linspace(0, w - 1, min(5, w))
    out = be.zeros(stack.shape)
    r_pad = int(math.ceil(radius)) + 1
    # A layer holds the pixels of one band of CoC, often a few percent of the frame:
    # each node convolves only the box around what its part of the layer holds
    # (zeros blur to zeros, and the box keeps r_pad px of them on every side it does
    # not share with the frame, so the result is the whole tile's). Convolving every
    # node's whole tile made cat's-eye 15x slower than a disc (1 MP: 6.4 s, 0.4 s).
    # Not on a GPU: reading the layer back to the host waits for its queued work,
    # which costs more there than blurring zeros.
    held = be.to_numpy((stack != 0).any(0)) > 0 if be.tile_sparse else None
    for gy in range(len(ys)):
        ty_lo = int(math.floor(ys[gy - 1])) if gy > 0 else 0
        ty_hi = int(math.ceil(ys[gy + 1])) + 1 if gy < len(ys) - 1 else h
        for gx in range(len(xs)):
            tx_lo = int(math.floor(xs[gx - 1])) if gx > 0 else 0
            tx_hi = int(math.ceil(xs[gx + 1])) + 1 if gx < len(xs) - 1 else w
            boxes = ([(0, ty_hi - ty_lo, 0, tx_hi - tx_lo)] if held is None
                     else _held_boxes(held[ty_lo:ty_hi, tx_lo:tx_hi], 2 * r_pad + _BOX_GAP_PX))
            if not boxes:
                continue
            off = ap.cats_eye_offset(aper.cats_eye, xs[gx] * scale, ys[gy] * scale, W, H)
            k = render_kernel(aper, radius, front=front, cats_eye_offset=off)
            for by0, by1, bx0, bx1 in boxes:
                y_lo, y_hi, x_lo, x_hi = ty_lo + by0, ty_lo + by1, tx_lo + bx0, tx_lo + bx1
                wy = _hat(np.arange(y_lo, y_hi), ys, gy)
                wx = _hat(np.arange(x_lo, x_hi), xs, gx)
                cy0, cy1 = max(0, y_lo - r_pad), min(h, y_hi + r_pad)
                cx0, cx1 = max(0, x_lo - r_pad), min(w, x_hi + r_pad)
                # Scatter: a light's disc has the shape of where the *light* is, so the
                # node's weight multiplies the layer before the blur (the weights sum to 1,
                # each kernel to 1: the blur keeps each light's energy). Weighting the
                # blurred output instead gave every output pixel its own node's kernel: a
                # light at the frame's centre lost 9 % of its light and 5 of its 59 px of
                # width at cat's-eye 1 (480 x 640, CoC 30). The layer's alpha is scattered
                # alike and no longer exactly 1 across a uniform layer, so after the
                # division by it a light can come out a little brighter: 2 % at 200 x 300
                # with CoC 15, 10 % on a frame only four kernels wide (64 x 64).
                wt = np.zeros((cy1 - cy0, cx1 - cx0), np.float32)
                wt[y_lo - cy0 : y_hi - cy0, x_lo - cx0 : x_hi - cx0] = wy[:, None] * wx[None, :]
                add_(out[:, cy0:cy1, cx0:cx1], be.conv(stack[:, cy0:cy1, cx0:cx1] * be.asarray(wt)[None], k))
    return out


#: Empty rows (px) beyond the two kernel margins at which a node's part of a layer is
#: split into separate boxes: each box costs an FFT's overhead.
_BOX_GAP_PX = 16


def _held_boxes(held: np.ndarray, gap_px: int) -> list[tuple[int, int, int, int]]:
    """Boxes (y0, y1, x0, x1) around what ``held`` (a boolean H x W) holds: one per run
    of rows with something in it, runs closer than ``gap_px`` merged, each as wide as
    what its rows hold. Nothing outside the boxes is held."""
    rows = np.flatnonzero(held.any(axis=1))
    if rows.size == 0:
        return []
    cuts = np.flatnonzero(np.diff(rows) > gap_px)
    starts = np.concatenate(([rows[0]], rows[cuts + 1]))
    ends = np.concatenate((rows[cuts], [rows[-1]])) + 1
    boxes = []
    for y0, y1 in zip(starts.tolist(), ends.tolist()):
        cols = np.flatnonzero(held[y0:y1].any(axis=0))
        boxes.append((y0, y1, int(cols[0]), int(cols[-1]) + 1))
    return boxes


def _hat(p: np.ndarray, centres: np.ndarray, i: int) -> np.ndarray:
    """Piecewise-linear interpolation weight of grid node i at positions p (partition of unity)."""
    c = centres[i]
    w = np.zeros(len(p), dtype=np.float64)
    if i > 0:
        left = (p >= centres[i - 1]) & (p <= c)
        w[left] = (p[left] - centres[i - 1]) / (c - centres[i - 1])
    else:
        w[p <= c] = 1.0
    if i < len(centres) - 1:
        right = (p > c) & (p <= centres[i + 1])
        w[right] = (centres[i + 1] - p[right]) / (centres[i + 1] - c)
    else:
        w[p > c] = 1.0
    return w
