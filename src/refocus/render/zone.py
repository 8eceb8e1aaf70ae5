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


def occlusion_zone(coc: np.ndarray, lo_blocks: np.ndarray, hi_blocks: np.ndarray) -> np.ndarray:
    """The zone (float32 in [0, 1] per ``BLOCK`` x ``BLOCK`` block) where the over
    operator applies: 1 near depth jumps, 0 where light comes from one surface only.

    ``coc``: the (H, W) signed CoC in px (numpy, sides multiples of ``BLOCK``);
    ``lo_blocks``, ``hi_blocks``: its min and max per block.
    """
    from scipy import ndimage

    jumps = jump_blocks(coc)
    zone = np.zeros(jumps.shape, np.float32)
    if not jumps.any():
        return zone
    abs_max_blocks = np.maximum(np.abs(lo_blocks), np.abs(hi_blocks))
    near = ndimage.maximum_filter(abs_max_blocks, size=3, mode="nearest")
    reach_px = ZONE_SCALE * near + ZONE_MARGIN_PX
    # Jumps grouped by their reach, rounded up to steps of sqrt(2) from 8 px: one
    # distance transform per group, on blocks coarsened by f with the reach (a 64 px
    # reach needs no 4 px precision); distances are shortened by a coarse block to
    # stay conservative.
    top = float(reach_px[jumps].max())
    lo, level = 0.0, 8.0
    while lo < top:
        sel = jumps & (reach_px > lo) & (reach_px <= level)
        if sel.any():
            f = int(max(1, min(16, level // (8 * BLOCK))))
            hb, wb = -(-sel.shape[0] // f) * f, -(-sel.shape[1] // f) * f
            coarse = np.zeros((hb, wb), np.uint8)
            coarse[: sel.shape[0], : sel.shape[1]] = sel
            if f > 1:
                coarse = block_reduce(coarse, f, np.maximum)
            dist_px = ndimage.distance_transform_edt(coarse == 0) * (f * BLOCK) - f * BLOCK
            ramp_px = 0.25 * level + ZONE_MARGIN_PX
            z = np.clip((level + ramp_px - dist_px) / ramp_px, 0.0, 1.0).astype(np.float32)
            if f > 1:
                z = np.repeat(np.repeat(z, f, axis=0), f, axis=1)
            np.maximum(zone, z[: zone.shape[0], : zone.shape[1]], out=zone)
        lo, level = level, level * 2.0**0.5
    return zone
