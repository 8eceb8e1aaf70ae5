"""Where the layers must occlude each other: the zone around depth jumps.

The layered renderer composites with the *over* operator, which is right where a
nearer surface stands in front of a farther one, and wrong on a single smooth surface
(a floor, a table, a wall seen at an angle, any estimated depth map): there nothing
hides anything, every point spreads all of its light over its own disc, and the exact
result is the *sum* of the layers' blurred tent shares. Composited with *over*, the
nearer layers of the same surface dim the farther ones' light where their blurred
edges overlap, and their hidden-area fill shows along the lines of equal depth: a
point light on a ramp kept 0.77 of its light, an in-focus one leaked along the ramp,
and bands remained at large blur (``tests/test_bokeh_look_trial.py``).

A surface seen from the lens's centre can hide part of itself from some point of the
aperture only where its CoC changes by more than 1 px per px (a point at x moves to
x + c(x) u for an aperture point u in the unit disc, a map that folds only where
|c'(x)| > 1). So a pixel is a *jump* where its CoC differs from a 4-neighbour's by
more than :data:`SELF_OCCLUSION_SLOPE`, and light arriving at a pixel farther from
every jump than the blur radii around that jump came from one surface only: there the
layers are summed, elsewhere composited with *over* as before
(:func:`refocus.render.layered.render_layers` blends the two renders with this zone).

The zone around a jump block reaches :data:`ZONE_SCALE` times the largest |CoC| of
its 3 x 3 block neighbourhood (both sides of the jump) plus :data:`ZONE_MARGIN_PX`,
then falls to 0 over a quarter of that radius plus the margin.
"""

from __future__ import annotations

import numpy as np

from refocus.render.backends.base import block_reduce
from refocus.render.plan import BLOCK

#: CoC change (px per px) between neighbouring pixels beyond which a surface can hide
#: part of itself from the aperture: the fold condition |c'(x)| > 1 above.
SELF_OCCLUSION_SLOPE = 1.0
#: The zone's reach as a multiple of the largest |CoC| next to the jump, and its extra
#: margin (px): a light on either side spreads over at most that |CoC|; the quarter
#: more covers the bilinear resampling of the layers rendered at reduced resolution.
ZONE_SCALE = 1.25
ZONE_MARGIN_PX = 4.0


def jump_blocks(coc: np.ndarray) -> np.ndarray:
    """Per ``BLOCK`` x ``BLOCK`` block of the (H, W) CoC map (sides multiples of
    ``BLOCK``), whether a pixel there differs from a 4-neighbour by more than
    :data:`SELF_OCCLUSION_SLOPE` px."""
    step = np.zeros(coc.shape, np.uint8)
    dx = np.abs(np.diff(coc, axis=1)) > SELF_OCCLUSION_SLOPE
    dy = np.abs(np.diff(coc, axis=0)) > SELF_OCCLUSION_SLOPE
    step[:, 1:] |= dx
    step[:, :-1] |= dx
    step[1:] |= dy
    step[:-1] |= dy
    return block_reduce(step, BLOCK, np.maximum).astype(bool)


def _by_reach(reach_px: np.ndarray, sel_all: np.ndarray, fn) -> None:
    """Call ``fn(sel, level_px, f)`` for the blocks of ``sel_all`` grouped by their reach,
    rounded up to steps of sqrt(2) from 8 px (``sel``: the group's blocks), with a
    coarsening factor ``f`` for the group's block grid (a 64 px reach needs no 4 px
    precision)."""
    if not sel_all.any():
        return
    top = float(reach_px[sel_all].max())
    lo, level = 0.0, 8.0
    while lo < top:
        sel = sel_all & (reach_px > lo) & (reach_px <= level)
        if sel.any():
            fn(sel, level, int(max(1, min(16, level // (8 * BLOCK)))))
        lo, level = level, level * 2.0**0.5


def _coarse(a: np.ndarray, f: int, op, fill) -> np.ndarray:
    """``a`` reduced over f x f blocks with ``op`` (np.maximum, np.minimum), padded with
    ``fill`` to whole blocks."""
    if f == 1:
        return a
    hb, wb = -(-a.shape[0] // f) * f, -(-a.shape[1] // f) * f
    padded = np.full((hb, wb), fill, a.dtype)
    padded[: a.shape[0], : a.shape[1]] = a
    return block_reduce(padded, f, op)


def _fine(a: np.ndarray, f: int, shape) -> np.ndarray:
    return np.repeat(np.repeat(a, f, axis=0), f, axis=1)[: shape[0], : shape[1]] if f > 1 else a


def occlusion_zone(coc: np.ndarray, lo_blocks: np.ndarray, hi_blocks: np.ndarray) -> np.ndarray:
    """The zone (float32 in [0, 1] per ``BLOCK`` x ``BLOCK`` block) where the over
    operator applies: 1 near depth jumps, 0 where light comes from one surface only.

    ``coc``: the (H, W) signed CoC in px (numpy, sides multiples of ``BLOCK``);
    ``lo_blocks``, ``hi_blocks``: its min and max per block.
    """
    from scipy import ndimage

    abs_max_blocks = np.maximum(np.abs(lo_blocks), np.abs(hi_blocks))
    jumps = jump_blocks(coc)
    zone = np.zeros(jumps.shape, np.float32)
    if not jumps.any():
        return zone
    near = ndimage.maximum_filter(abs_max_blocks, size=3, mode="nearest")
    reach_px = ZONE_SCALE * near + ZONE_MARGIN_PX

    # One distance transform per group of jumps of similar reach, on blocks coarsened
    # with it; distances are shortened by a coarse block to stay conservative.
    def around(sel, level, f):
        coarse = _coarse(sel.astype(np.uint8), f, np.maximum, 0)
        dist_px = ndimage.distance_transform_edt(coarse == 0) * (f * BLOCK) - f * BLOCK
        ramp_px = 0.25 * level + ZONE_MARGIN_PX
        z = np.clip((level + ramp_px - dist_px) / ramp_px, 0.0, 1.0).astype(np.float32)
        np.maximum(zone, _fine(z, f, zone.shape), out=zone)

    _by_reach(reach_px, jumps, around)
    return zone
