"""Tile-sparse rendering of the layers at the finest levels (the CPU's choice).

At full resolution most of the cost of a dense layer is spent where it changes
nothing: where its alpha is zero, or under a nearer layer that is opaque after
blurring. Layer ``i`` is written with the ramps ``R_j`` (coverage by layers
``>= j``, a clipped linear function of the CoC), so everything it needs is local:
alpha ``D(R_i)``, own colour ``D(R_i x) - D(O_i x)``, hidden coverage ``D(O_i)``,
and the content at or behind it ``D(x) - D(O_i x)`` (D: the splat downsampling to
the layer's level; O_i the step of :func:`refocus.render.plan.own_step`). Per tile
(32 to 512 px at that level, whichever size leaves the least work for this layer)
and the CoC range of the 3 x 3 tiles around it:

* ``max CoC <= c_{i-1}``: alpha is 0 there, nothing to do;
* ``min CoC >= c_{i+1}``: layer ``i+1`` or a nearer one covers the tile opaquely
  after its blur, so whatever ``i`` leaves there is overwritten (back-to-front)
  or masked (front-to-back);
* otherwise the tile's window (tile + kernel halo + one fill block) is gathered
  from the full-resolution frame and processed as a batch.

Beside a summed render (:mod:`refocus.render.zone`) the over render blurs and
composites only the tiles near depth jumps, where it is shown (the others are still
pulled for the fill), and the summed render processes only the tiles where the zone
is below 1, never skipping for opacity: nothing hides anything there.

The push-pull fill is split at blocks of ``BLOCK`` px: its coarse levels run
densely on block means (of active windows, or known constants: 0, or the block
mean of ``D(x)``, in skipped tiles), its fine levels inside each window, so the
fill equals the dense one wherever the kernel reads it.

A cat's-eye layer's window is blurred with the kernel of the cell holding its tile's
centre (:class:`refocus.render.plan.CatsEyeCells`; tiles no larger than a cell, else
the frame keeps the dense path: :func:`refocus.render.plan.cats_eye_tiles_fit`):
the kernel of where the output is, which neighbouring cells change by at most half
a pixel at the clipping edge.

Coarser layers (quarter resolution and below, :mod:`refocus.render.dense`) take
their weights from the tiles their tent band touches, evaluated on the
half-resolution image and CoC (:meth:`SparseLevels.band_quarter_res_from_half`), so
no layer pays a full-resolution pass of its own.

This module decides which tiles and windows; the work on them is the backend's
(``band_splat``, ``coarse_fill``, ``layer_windows``, ``tile_reduce``: see
:mod:`refocus.render.backends`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable

import numpy as np

from refocus.render.config import RenderConfig
from refocus.render.plan import (
    BLOCK,
    SPARSE_TILE_SIZES,
    CatsEyeCells,
    cats_eye_varies,
    jump_limit_px,
    own_step,
    pull_clamp_level,
    render_kernel,
    window_margin,
)

#: How far (px of CoC) the half-resolution splat of a 2 x 2 block's CoC may lie from
#: the block's own mean before the block counts as beside a depth edge
#: (:meth:`SparseLevels._half_sources`).
SPLAT_REACH_PX = 0.1


@dataclass
class WindowJob:
    """One tile-sparse layer's windows: what a backend's ``layer_windows`` needs.

    Windows of side ``T + 2 E`` at the layer's level ``s`` around the active tiles
    (``ty``, ``tx``; side T). Ramps are ``(has_lo, lo, inv_lo, has_hi, hi, inv_hi)``
    (:meth:`SparseLevels.ramps`): ``tent`` those of the tent weight W_i, ``own``
    those whose second ramp is the step O_i (the pixels' own nearer shares apply).
    """

    s: int
    T: int
    E: int
    #: Half-width of the layer's kernel (px at its level).
    half: int
    ty: np.ndarray
    tx: np.ndarray
    front: bool
    tent: tuple
    own: tuple
    #: The full-resolution CoC (1, ., .) and image (3, ., .), edge-padded by ``off``.
    coc_big: object
    x_big: object
    off: int
    #: The layer's aperture kernel at its level (at the frame's centre for a cat's-eye).
    kern: np.ndarray
    #: Inputs already at the layer's level (alpha, own colour, hidden, behind), or None.
    dense_in: list | None
    #: (ty, tx) -> bool per tile: whether the own nearer shares apply there.
    own_ok: Callable
    #: Sum the blurred tent share into ``acc`` (the render away from depth jumps,
    #: :mod:`refocus.render.zone`): no own share, no fill, no occlusion.
    additive: bool
    #: (ty, tx) -> [(ramps, ty_k, tx_k)]: the tiles grouped by the ramps they use.
    groups: Callable
    #: () -> the image at level s (D(x)), edge-padded by E.
    level_x: Callable
    #: pulled -> the coarse push-pull fill, edge-padded (see SparseLevels.coarse_fill).
    coarse_fill: Callable
    #: (ty, tx) -> bool per window: whether its tile is blurred and composited (the
    #: over render's tiles far from every depth jump are not shown: only their pull
    #: pyramid feeds the fill), or None for all. A backend may ignore it.
    composite: Callable | None = None
    #: A cat's-eye layer's kernels (n, kh, kw), of ``kern``'s shape, and (ty, tx) ->
    #: the index of each window's one (that of its tile's cell); None: ``kern`` everywhere.
    kerns: np.ndarray | None = None
    kern_of: Callable | None = None

    def kernel_stack(self) -> np.ndarray:
        """The layer's kernels (n, kh, kw): ``kern`` alone unless it is a cat's-eye."""
        return self.kern[None] if self.kerns is None else self.kerns

    def kernel_index(self, ty, tx) -> np.ndarray:
        """Per window (tile ty, tx): the index of its kernel in :meth:`kernel_stack`."""
        if self.kern_of is None:
            return np.zeros(np.shape(ty), np.int64)
        return np.asarray(self.kern_of(ty, tx), np.int64)


class SparseLevels:
    """The frame state of the tile-sparse layers (CoC ranges per block and tile,
    kernels, reaches) and the layer steps that use it (see the module docstring)."""

    def __init__(self, coc_pad, x_big, off: int, centres, all_scales: dict[int, int], ids, cfg: RenderConfig, be, t_max: int, threads,
                 photo_hw: tuple[int, int]):
        """``coc_pad``: the grid-padded CoC (numpy); ``x_big``: the (3, Hp + 2 off,
        Wp + 2 off) image, edge-padded by ``off`` (:func:`refocus.render.plan.sparse_margin`)
        around the grid-padded frame; ``photo_hw``: the photo's size without the padding
        (px), for the cat's-eye."""
        self.be, self.centres, self.threads = be, centres, threads
        self.scales = {i: all_scales[i] for i in ids}
        self.Hp, self.Wp = coc_pad.shape
        aper = cfg.aperture
        self.clamp_level = pull_clamp_level(cfg.full_res_max_radius())
        self.min_step_px = cfg.layer_step()[0]
        half = {}
        self.kern = {}
        # A cat's-eye layer's windows each take the kernel of their tile's cell (the
        # kernel where the output is; neighbouring cells' kernels differ by at most
        # CELL_SHIFT_PX at the clipping edge), as the dense layers' cells do.
        self.cells: dict[int, CatsEyeCells] = {}
        for i, s in all_scales.items():
            c = float(centres[i])
            k = render_kernel(aper, abs(c) / s, front=c > 0)
            half[i] = max(k.shape) // 2
            if i in ids:
                self.kern[i] = k
                if cats_eye_varies(aper, abs(c) / s):
                    self.cells[i] = CatsEyeCells(aper, abs(c) / s, c > 0, self.Hp // s, self.Wp // s, s, photo_hw)
        # How far (full-resolution px) each layer's result reaches from where its alpha
        # is defined: kernel, splat margin, bilinear upsampling of the accumulator.
        self.reach = {i: (half[i] + 3) * all_scales[i] for i in all_scales}
        used = sorted(all_scales)
        self.next_used = {a: b for a, b in zip(used, used[1:])}
        self.E_of = {i: window_margin(half[i]) for i in ids}
        assert off >= (max(self.E_of.values()) + 1) * max(self.scales.values())  # every window is inside
        self.off = off
        self.coc_big = be.asarray(np.pad(coc_pad, off, mode="edge")[None])
        self.coc_np = coc_pad
        self._lock = threading.Lock()
        self._half_src = None
        self._jump4 = None
        self._zone = None
        self.x_big = x_big
        self.bstats, self.tstats, self.xb, self.xs_pad = {}, {}, {}, {}
        self.tile_sizes = [t for t in SPARSE_TILE_SIZES if t <= t_max]
        for s in sorted(set(self.scales.values()) | {1}):
            # CoC range per block of BLOCK px at level s
            self.bstats[s] = be.block_minmax(coc_pad, BLOCK * s)

    def set_zone(self, zone_blocks: np.ndarray) -> None:
        """The over operator's zone per BLOCK x BLOCK px block (full resolution,
        :func:`refocus.render.zone.occlusion_zone`; covering the padded frame): the
        summed render processes only the tiles where it is below 1 somewhere."""
        z = np.ones((self.Hp // BLOCK, self.Wp // BLOCK), np.float32)
        h, w = min(z.shape[0], zone_blocks.shape[0]), min(z.shape[1], zone_blocks.shape[1])
        z[:h, :w] = zone_blocks[:h, :w]
        self._zone = z

    @staticmethod
    def _zone_margin(s: int) -> int:
        """Blocks beyond a tile at level s whose zone counts for it: the accumulator at
        level s is upsampled (bilinear) on the way to full resolution, reading up to
        2 s px beyond its tile, and the zone itself is upsampled from its blocks."""
        return 1 + -(-2 * s // BLOCK)

    def _tile_needs_sum(self, s: int, T: int) -> np.ndarray:
        """Per tile of side T at level s: whether the zone is below 1 anywhere within
        reach of it (the summed render is shown there); everywhere without a zone."""
        if self._zone is None:
            return np.ones((self.Hp // s // T, self.Wp // s // T), bool)
        return self._tile_reduce(("zone",), self._zone, self._zone_margin(s), T * s // BLOCK, False) < 1.0

    def _tile_shows_over(self, s: int, T: int) -> np.ndarray | None:
        """Per tile of side T at level s: whether the zone is above 0 anywhere within
        reach of it (the over render is shown there); None without a zone (everywhere)."""
        if self._zone is None:
            return None
        return self._tile_reduce(("zone-max",), self._zone, self._zone_margin(s), T * s // BLOCK, True) > 0.0

    def ramps(self, i: int, own: bool = False) -> tuple:
        """(has_lo, lo, 1 / (c_i - lo), has_hi, c_i, 1 / (hi - c_i)) in float32: the
        ramps R_i and R_{i+1} of layer i's tent weight W_i = R_i - R_{i+1}. With
        ``own`` the second is the step O_i of :func:`~refocus.render.plan.own_step`
        instead (V_i = R_i - O_i: the tent plus the pixels' own nearer share)."""
        c, f32 = self.centres, np.float32
        has_lo, has_hi = i > 0, i + 1 < len(c)
        lo, inv_lo = (f32(c[i - 1]), f32(1.0 / (c[i] - c[i - 1]))) if has_lo else (f32(0), f32(0))
        if has_hi:
            a, b = own_step(c, i) if own else (c[i], c[i + 1])
            hi, inv_hi = f32(a), f32(1.0 / (b - a))
        else:
            hi, inv_hi = f32(0), f32(0)
        return (has_lo, lo, inv_lo, has_hi, hi, inv_hi)

    def _band_tiles(self, i: int, margin_px: int, tile: int) -> np.ndarray:
        """Full-resolution tiles (bool grid) where layer i's tent weight can be non-zero,
        counting pixels within margin_px of the tile (what its splats read)."""
        c = self.centres
        active = np.ones((self.Hp // tile, self.Wp // tile), bool)
        if i > 0:
            active &= self._tile_range(1, margin_px, True, tile) > c[i - 1]
        if i + 1 < len(c):
            active &= self._tile_range(1, margin_px, False, tile) < c[i + 1]
        return active

    def _tile_range(self, s: int, margin_px: int, high: bool, tile: int) -> np.ndarray:
        """Per tile at level s, the min (or max) CoC within margin_px (full res) of it."""
        m = -(-margin_px // (BLOCK * s))
        return self._tile_reduce(("range", s), self.bstats[s][1 if high else 0], m, tile // BLOCK, high)

    def _tile_reduce(self, name: tuple, blocks: np.ndarray, m: int, per: int, high: bool) -> np.ndarray:
        """Max (or min) of a block map over ``per`` x ``per`` block tiles widened by
        ``m`` blocks, cached under ``name`` (``blocks`` must be the same for a name)."""
        key = (name, m, high, per)
        if key not in self.tstats:
            self.tstats[key] = self.be.tile_reduce(blocks, m, per, high, self.tstats, name)
        return self.tstats[key]

    def own_groups(self, i: int, own: bool, s: int, T: int, ty, tx) -> list:
        """Tiles (ty, tx) of side T at level s, split into [(ramps_k, ty_k, tx_k)]:
        whether layer i uses its pixels' own nearer shares there (:meth:`own_ok`:
        no depth jump within its blur reach), or the plain tent."""
        if not own or i + 1 >= len(self.centres):
            return [(self.ramps(i), ty, tx)]
        ok = self.own_ok(i, s, T, ty, tx)
        return [(self.ramps(i, k), ty[sel], tx[sel]) for k, sel in ((True, ok), (False, ~ok)) if sel.any()]

    def own_ok(self, i: int, s: int, T: int, ty, tx) -> np.ndarray:
        """Per tile (ty, tx) (side T at level s): no depth jump within layer i's
        reach, so the own nearer shares apply there (:func:`~refocus.render.plan.own_step`)."""
        if i == 0:
            return np.ones(np.shape(ty), bool)
        return (self._tile_jump(s, self.reach[i], T) <= jump_limit_px(self.centres, i, self.min_step_px))[ty, tx]

    def _tile_jump(self, s: int, margin_px: int, T: int) -> np.ndarray:
        """Per tile at level s, the largest CoC jump (max - min) of a 4 x 4 px block
        within margin_px (full res) of it."""
        if self._jump4 is None:
            self._jump4 = np.ascontiguousarray(self.bstats[1][1] - self.bstats[1][0])
        return self._tile_reduce(("jump",), self._jump4, -(-margin_px // BLOCK), T * s // BLOCK, True)

    def band_half_res(self, i: int, own: bool = False):
        """Layer i's tent weight W_i = R_i - R_{i+1} and W_i x, splatted to half
        resolution, (1|3, Hp/2, Wp/2). Computed only in the 64 px tiles where W_i is
        non-zero: each pixel lies in the band of two layers only, while a dense layer
        would pay a full-resolution pass for every layer. With ``own``, V_i and V_i x
        instead (:meth:`ramps`)."""
        be, T = self.be, 64
        active = self._band_tiles(i, 2, T)
        w2 = be.zeros((1, self.Hp // 2, self.Wp // 2))
        wx2 = be.zeros((3, self.Hp // 2, self.Wp // 2))
        ty, tx = np.nonzero(active)
        groups = self.own_groups(i, own, 1, T, ty, tx)
        be.band_splat(self.coc_big, self.x_big, self.off - 2, T, groups, w2, wx2, None, self.threads)
        return w2, wx2

    def _half_sources(self, x_at):
        """Half-resolution CoC and image, padded by 8 px, for the coarse layers' bands.

        The image is the centroid-preserving splat D(x). The CoC is its splat too,
        except where a 2 x 2 block straddles a depth edge: there an average would
        invent a depth between the two sides (and a layer that exists in neither),
        so the block takes the side (its min or max) nearer to that average, and its
        colour is the mean of that side's pixels alone. With D(x) there, the other
        side's colour went with it: a sharp bright subject's outline was blurred
        with the background and glowed around it (a 0.9 disc on 0.05 at CoC 16 px:
        the background next to it 0.074 instead of 0.060; 2026-12-07).

        The splat reads 4 x 4 pixels, a pixel beyond the block on each side, so a
        block is near an edge when its neighbours' CoC differs too: a block of
        background beside the subject got a CoC and a colour partly the subject's,
        which fell between two background layers and glowed (2.9/255 at CoC 18 px
        with ``balanced``, 3.3/255 at 12 px with ``fast``; 2026-12-07, later). Such a
        block takes its own 2 x 2 pixels' side, as a block across the edge does.
        """
        with self._lock:  # the two sweeps share them
            if self._half_src is None:
                be, P = self.be, 8
                c = self.coc_np
                avg = be.to_numpy(be.downsample(be.asarray(c[None]), 2))[0]
                lo, hi = be.block_minmax(c, 2)
                side = np.where(avg - lo < hi - avg, lo, hi)
                box = be.to_numpy(be.box_down2(be.asarray(c[None])))[0]
                straddle = (hi - lo > 1.0) | (np.abs(avg - box) > SPLAT_REACH_PX)
                coc2 = np.where(straddle, side, avg).astype(np.float32)
                x2 = x_at(2)
                by, bx = np.nonzero(straddle)
                if by.size:
                    x2 = np.array(be.to_numpy(x2), dtype=np.float32)
                    x1 = be.to_numpy(x_at(1))
                    chosen, other = side[by, bx], np.where(side[by, bx] == lo[by, bx], hi[by, bx], lo[by, bx])
                    total = np.zeros((3, by.size), np.float32)
                    count = np.zeros(by.size, np.float32)
                    for dy in (0, 1):
                        for dx in (0, 1):
                            cy, cx = 2 * by + dy, 2 * bx + dx
                            cc = c[cy, cx]
                            on = (np.abs(cc - chosen) <= np.abs(cc - other)).astype(np.float32)
                            total += x1[:, cy, cx] * on
                            count += on
                    x2[:, by, bx] = total / count  # count >= 1: the chosen side's own pixel
                    x2 = be.asarray(x2)
                self._half_src = (be.asarray(np.pad(coc2, P, mode="edge")[None]), be.pad_edge(be.contiguous(x2), P, P, P, P), P)
            return self._half_src

    def band_quarter_res_from_half(self, i: int, half_acc, x_at, own: bool = False):
        """Layer i's W_i and W_i x at quarter resolution, for the coarse layers' own
        levels, while adding their half-resolution values into ``half_acc`` (the
        cumulative weights of the level-2 layers, if any) tile by tile: no
        full-frame pass at half resolution per layer.

        Computed from the half-resolution image and CoC (:meth:`_half_sources`), not
        from full resolution: a quarter of the work, and for these layers (blurred
        by 4 px or more at quarter resolution) a depth edge placed to half a pixel
        changes the result by less than 1/255 almost everywhere (53 to 71 dB against
        the full-resolution weights on the bundled test photos at K = 40 and 64).
        With ``own``, V_i and V_i x instead (:meth:`ramps`; ``half_acc`` must be None:
        the cumulative weights are the tents')."""
        be, T = self.be, 64
        coc2_big, x2_big, P = self._half_sources(x_at)
        active = self._band_tiles(i, 6, T)
        w4 = be.zeros((1, self.Hp // 4, self.Wp // 4))
        wx4 = be.zeros((3, self.Hp // 4, self.Wp // 4))
        ty, tx = np.nonzero(active)
        groups = self.own_groups(i, own, 1, T, ty, tx)
        be.band_splat(coc2_big, x2_big, P - 2, T // 2, groups, w4, wx4, half_acc, self.threads)
        return w4, wx4

    def coarse_fill(self, s: int, T: int, E: int, active, opaque, x_at, pulled):
        """The push-pull fill's coarse part, dense over the frame at block resolution
        (1/BLOCK of level s), edge-padded by ``E // BLOCK + 1`` blocks.

        ``pulled``: (block level of the windows' (behind, 1 - hidden), ty, tx) per
        batch of active windows; skipped tiles hold known values: the block means
        of D(x) with weight 1 where skipped for zero alpha (all content is at or
        behind layer i there), 0 under an opaque nearer layer."""
        be, q = self.be, BLOCK
        if s not in self.xb:
            self.xb[s] = be.block_means(x_at(s), q)
        behind = ~active & ~opaque
        fc = be.coarse_fill(self.xb[s], behind, T // q, pulled, E // q, self.clamp_level)
        mp = E // q + 1
        return be.pad_edge(fc, mp, mp, mp, mp)

    def _level_x(self, s: int, E: int, x_at):
        """D(x) at level s edge-padded by E: shared by all layers of the level."""
        if (s, E) not in self.xs_pad:
            self.xs_pad[(s, E)] = self.be.pad_edge(x_at(s), E, E, E, E)
        return self.xs_pad[(s, E)]

    def sweep_layer(self, i: int, front: bool, acc, x_at, half, additive: bool = False) -> None:
        """Layer i's step of a sweep: composite it into ``acc`` (4, Hp/s, Wp/s).

        ``half``: the sweep's half-resolution cumulative weights [W, W x] (layers at
        or behind the current one back-to-front, nearer ones front-to-back), or None.
        A level-2 layer then takes its inputs at level 2 from them and its band
        tiles, instead of recomputing them from the full-resolution frame in each
        window.
        """
        be, c = self.be, self.centres
        dense_in = None
        if additive:
            if self.scales[i] == 2:  # the tent share at level 2 from its band tiles
                w2, wx2 = self.band_half_res(i)
                dense_in = [w2, wx2, w2, wx2]  # (hidden and behind are not read)
            self.layer(i, front, acc, x_at, dense_in, additive=True)
            return
        if self.scales[i] == 2 and half is not None:
            w2, wx2 = self.band_half_res(i)
            # V_i = W_i + S_i: the layer's own pixels, their nearer shares included.
            v2, vx2 = self.band_half_res(i, own=True) if i + 1 < len(c) else (w2, wx2)
            # Hidden (by other, nearer surfaces): O_i = R_{i+1} - S_i; behind:
            # (1 - O_i) x. Back-to-front the cumulative sums hold 1 - R_{i+1}
            # once W_i is added; front-to-back R_{i+1} before it is.
            if not front:
                half[0] += w2
                half[1] += wx2
                hidden, behind = (1.0 - half[0]) + (w2 - v2), half[1] + (vx2 - wx2)
            else:
                hidden, behind = half[0] + (w2 - v2), (x_at(2) - half[1]) + (vx2 - wx2)
                half[0] += w2
                half[1] += wx2
            hidden = be.clip(hidden, 0.0, 1.0)
            dense_in = [v2 + hidden, vx2, hidden, behind]
        self.layer(i, front, acc, x_at, dense_in)

    def layer(self, i: int, front: bool, acc, x_at, dense_in=None, additive: bool = False) -> None:
        """Composite layer i into acc (4, Hp/s, Wp/s) in place.

        ``dense_in``: optional inputs already at the layer's level, a list of
        (1|3, Hp/s, Wp/s) arrays: alpha, own colour W_i x, hidden coverage, content
        at or behind i; without it they are computed from the full-resolution frame
        in each window.
        """
        c, s = self.centres, self.scales[i]
        E = self.E_of[i]
        half = max(self.kern[i].shape) // 2
        j = self.next_used.get(i)
        cells = self.cells.get(i)
        sizes = self.tile_sizes
        if cells is not None:  # one kernel per tile: a tile no larger than a cell
            sizes = [t for t in sizes if t <= cells.min_cell_px()] or sizes[:1]
        best = None
        # Small tiles skip more, large ones waste less on window margins: take the
        # size with the least window area to process.
        for T in sizes:
            if additive:  # nothing occludes: only where the summed render is used
                opaque = np.zeros((self.Hp // s // T, self.Wp // s // T), bool)
                active = self._tile_needs_sum(s, T)
            elif j is not None:
                # The next used layer is opaque where all CoC within its reach is
                # >= c_j: it (or a nearer one) overwrites or masks layer i there.
                opaque = self._tile_range(s, self.reach[j], False, T) >= c[j]
            else:
                opaque = np.zeros((self.Hp // s // T, self.Wp // s // T), bool)
            if not additive:
                active = ~opaque
            if i > 0:  # zero alpha: all CoC within the window's reach is <= c_{i-1}
                active &= self._tile_range(s, (half + 2) * s, True, T) > c[i - 1]
            cost = int(active.sum()) * (T + 2 * E + 2) ** 2
            if best is None or cost < best[0]:
                best = (cost, T, opaque, active)
        _, T, opaque, active = best
        shows = None if additive else self._tile_shows_over(s, T)
        ty, tx = np.nonzero(active)
        if ty.size == 0:
            return
        kerns = kern_of = None
        if cells is not None:
            kerns, tile_k = self._cell_kernels(i, cells, T, ty, tx)
            kern_of = lambda ty_, tx_: tile_k[ty_, tx_]  # noqa: E731
        job = WindowJob(
            s=s, T=T, E=E, half=half, ty=ty, tx=tx, front=front, tent=self.ramps(i), own=self.ramps(i, not additive), additive=additive,
            coc_big=self.coc_big, x_big=self.x_big, off=self.off, kern=self.kern[i], dense_in=dense_in,
            own_ok=lambda ty_, tx_: self.own_ok(i, s, T, ty_, tx_),
            groups=lambda ty_, tx_: self.own_groups(i, not additive, s, T, ty_, tx_),
            level_x=lambda: self._level_x(s, E, x_at),
            coarse_fill=lambda pulled: self.coarse_fill(s, T, E, active, opaque, x_at, pulled),
            composite=None if shows is None else (lambda ty_, tx_: shows[ty_, tx_]),
            kerns=kerns, kern_of=kern_of,
        )
        self.be.layer_windows(job, acc, self.threads)

    def _cell_kernels(self, i: int, cells: CatsEyeCells, T: int, ty, tx) -> tuple[np.ndarray, np.ndarray]:
        """The kernels (n, kh, kw) of the cells holding the centres of tiles (ty, tx)
        (side T at layer i's level), and per tile of the grid the index of its one."""
        n_x = cells.shape[1]
        cy, cx = cells.cell_of((ty + 0.5) * T, (tx + 0.5) * T)
        used, inverse = np.unique(cy * n_x + cx, return_inverse=True)
        shape = self.kern[i].shape
        kerns = np.zeros((used.size, *shape), np.float32)
        for n, u in enumerate(used):
            k = cells.kernel(*divmod(int(u), n_x))
            assert k.shape[0] <= shape[0] and k.shape[1] <= shape[1]  # the windows' margins are kern's
            py, px = (shape[0] - k.shape[0]) // 2, (shape[1] - k.shape[1]) // 2
            kerns[n, py : py + k.shape[0], px : px + k.shape[1]] = k
        tile_k = np.zeros((self.Hp // self.scales[i] // T, self.Wp // self.scales[i] // T), np.int64)
        tile_k[ty, tx] = inverse.reshape(-1)
        return kerns, tile_k

