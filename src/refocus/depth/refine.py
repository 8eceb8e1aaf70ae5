"""Edge-aware upsampling: snapping a soft, low-resolution depth map to the photo's edges.

Phone and network depth maps are low resolution and soft at object outlines; a soft
outline is rendered as a halo (background blurred into the sharp subject, or the
subject's edge left sharp in the blurred background). :func:`upsample_to_guide`
resizes the map to the photo and re-aligns its transitions with the photo's colour
edges with a colour-weighted median whose weights come from a guided filter (He,
Sun and Tang, TPAMI 2013; Ma et al., CVPR 2013), used as a clamp on the bilinear
map so that smooth or slanted surfaces keep their values and no photo texture is
copied into the depth (a plain guided filter does both, and measured worse than
bilinear on the HCI light field; see docs/depth.md). What stays soft is then settled
to one side or the other by colour (:func:`snap_transitions`): a pixel with a depth
between a bright subject and its background otherwise glows over the blur.
"""

from __future__ import annotations

import os

import numpy as np
from scipy.ndimage import distance_transform_edt, uniform_filter

from refocus.errors import RefocusError

#: Working resolution of the weighted median (pixels); about 0.5 megapixels.
DEFAULT_WORK_PIXELS = 500_000

#: Half-width (px at the photo's size, at least) of the window in which a depth step
#: counts as steep, and the most rings of pixels it is grown by from each side.
#: Chosen on bokehme-13 (1 MP): its subject's edge rises over 6 px.
SNAP_RADIUS_PX = 4
#: A step is steep when the map spans more than this share of its range within the
#: window: the soft outline of a subject against its background, not a slanted
#: surface (a ground plane spans its range over hundreds of pixels).
SNAP_JUMP = 0.15
#: Colour differences (L1 over the sRGB channels) the growth crosses, in this order:
#: noise first, then ever stronger edges (set by doubling, not tuned).
SNAP_COLOUR_STEPS = (0.03, 0.06, 0.12, 0.25, 0.5, float("inf"))
#: A pixel belongs to the transition when it lies this far inside the window's span
#: from both of its ends; the rest are the plateaus the transition is grown from.
SNAP_PLATEAU = 0.15


def _resize(arr: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a float32 2-D array to (H, W), pixel centres aligned."""
    if arr.shape == tuple(shape):
        return arr.astype(np.float32, copy=False)
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))[None, None]
    # Shrinking by large factors with plain bilinear aliases; area averaging does not.
    mode = "area" if shape[0] < arr.shape[0] and shape[1] < arr.shape[1] else "bilinear"
    kwargs = {} if mode == "area" else {"align_corners": False}
    out = F.interpolate(t, size=tuple(int(s) for s in shape), mode=mode, **kwargs)
    return out[0, 0].numpy()


def _resize_channels(img: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    return np.stack([_resize(img[..., c], shape) for c in range(img.shape[2])], axis=2)


def _fill_invalid(d: np.ndarray) -> np.ndarray:
    finite = np.isfinite(d)
    if finite.all():
        return d
    if not finite.any():
        raise RefocusError("depth map has no valid (finite) values")
    idx = distance_transform_edt(~finite, return_distances=False, return_indices=True)
    return d[tuple(idx)]


def _box(x: np.ndarray, r: int) -> np.ndarray:
    return uniform_filter(x, size=2 * r + 1, mode="reflect")


def _solve_sym3(m: dict, rhs: np.ndarray) -> np.ndarray:
    """Per-pixel solve of a symmetric 3x3 system by cofactors (much faster than
    ``np.linalg.solve`` on millions of tiny systems). The eps on the diagonal keeps
    the matrices positive definite."""
    a, b, c = m[0, 0], m[0, 1], m[0, 2]
    d, e, f = m[1, 1], m[1, 2], m[2, 2]
    c00 = d * f - e * e
    c01 = c * e - b * f
    c02 = b * e - c * d
    c11 = a * f - c * c
    c12 = b * c - a * e
    c22 = a * d - b * b
    det = a * c00 + b * c01 + c * c02
    x, y, z = rhs[..., 0], rhs[..., 1], rhs[..., 2]
    inv_det = 1.0 / det
    return np.stack(
        [(c00 * x + c01 * y + c02 * z) * inv_det, (c01 * x + c11 * y + c12 * z) * inv_det, (c02 * x + c12 * y + c22 * z) * inv_det],
        axis=2,
    ).astype(np.float32)


def guided_filter(guide: np.ndarray, src: np.ndarray, radius_px: int, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """Colour guided filter coefficients.

    Parameters
    ----------
    guide : (H, W, C) float32
        Guide image (C = 1 or 3), values about [0, 1].
    src : (H, W) float32
        Signal to filter.
    radius_px : int
        Window radius in pixels.
    eps : float
        Regularisation (in guide-value² units): edges with a local colour variance
        well above ``eps`` are preserved, weaker ones smoothed.

    Returns
    -------
    a : (H, W, C) and b : (H, W)
        Window-averaged coefficients; the output is ``sum(a * guide, -1) + b``.
    """
    g = guide.astype(np.float32)
    p = src.astype(np.float32)
    r = int(radius_px)
    c = g.shape[2]
    mean_i = np.stack([_box(g[..., k], r) for k in range(c)], axis=2)
    mean_p = _box(p, r)
    cov_ip = np.stack([_box(g[..., k] * p, r) for k in range(c)], axis=2) - mean_i * mean_p[..., None]
    var = {}
    for i in range(c):
        for j in range(i, c):
            var[i, j] = _box(g[..., i] * g[..., j], r) - mean_i[..., i] * mean_i[..., j] + (eps if i == j else 0.0)
    if c == 1:
        a = cov_ip / var[0, 0][..., None]
    elif c == 3:
        a = _solve_sym3(var, cov_ip)
    else:
        raise RefocusError(f"guide must have 1 or 3 channels, got {c}")
    b = mean_p - np.sum(a * mean_i, axis=2)
    mean_a = np.stack([_box(a[..., k], r) for k in range(c)], axis=2)
    mean_b = _box(b, r)
    return mean_a, mean_b


def _guide_stats(g: np.ndarray, r: int, eps: float):
    """Window means of the guide and the inverse of its regularised covariance
    (6 unique entries of a symmetric 3x3), shared by every filtered signal."""
    mean_i = np.stack([_box(g[..., k], r) for k in range(3)], axis=2)
    m = {}
    for i in range(3):
        for j in range(i, 3):
            m[i, j] = _box(g[..., i] * g[..., j], r) - mean_i[..., i] * mean_i[..., j] + (eps if i == j else 0.0)
    a, b, c, d, e, f = m[0, 0], m[0, 1], m[0, 2], m[1, 1], m[1, 2], m[2, 2]
    c00, c01, c02 = d * f - e * e, c * e - b * f, b * e - c * d
    c11, c12, c22 = a * f - c * c, b * c - a * e, a * d - b * b
    inv_det = 1.0 / (a * c00 + b * c01 + c * c02)
    inv = [x * inv_det for x in (c00, c01, c02, c11, c12, c22)]
    return mean_i, inv


def _guided_coefficients(g: np.ndarray, p: np.ndarray, r: int, mean_i: np.ndarray, inv: list) -> tuple:
    """Window-averaged guided-filter coefficients of ``p`` (precomputed guide statistics):
    the filtered signal is ``ax * g0 + ay * g1 + az * g2 + b``."""
    mp = _box(p, r)
    cx, cy, cz = (_box(g[..., k] * p, r) - mean_i[..., k] * mp for k in range(3))
    i00, i01, i02, i11, i12, i22 = inv
    ax = i00 * cx + i01 * cy + i02 * cz
    ay = i01 * cx + i11 * cy + i12 * cz
    az = i02 * cx + i12 * cy + i22 * cz
    b = mp - ax * mean_i[..., 0] - ay * mean_i[..., 1] - az * mean_i[..., 2]
    return _box(ax, r), _box(ay, r), _box(az, r), _box(b, r)


def _resize_stack(maps: tuple, shape: tuple[int, int]) -> tuple:
    """Bilinear resize of several same-sized 2-D float32 maps in one call."""
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(np.stack(maps), dtype=np.float32))[None]
    out = F.interpolate(t, size=tuple(int(v) for v in shape), mode="bilinear", align_corners=False)[0].numpy()
    return tuple(out)


def upsample_to_guide(
    depth: np.ndarray,
    guide_rgb: np.ndarray,
    *,
    radius_px: int | None = None,
    eps: float = 1e-3,
    levels: int = 32,
    work_pixels: int = DEFAULT_WORK_PIXELS,
    snap: bool = True,
) -> np.ndarray:
    """Resize a depth/disparity map to the guide photo's size, aligned to its edges.

    The map is first resized bilinearly. Then, at a working resolution of at most
    ``work_pixels``, a colour-weighted median of the map is computed around every
    pixel, the weights being those of a guided filter on the photo (Ma, Li, Yang,
    "Constant time weighted median filtering for stereo matching", CVPR 2013): the
    map is quantised into ``levels`` bins, the cumulative indicator of each bin is
    guided-filtered (its coefficients on a 2x coarser grid, applied to the photo at
    the working resolution), and the median is the bin where it crosses 1/2. Finally the
    bilinear map is *clamped* to that bin. Where the depth is smooth the bilinear
    value already lies in its median bin and is kept exactly (no texture is copied
    from the photo); across a depth edge, the blended values of the soft band are
    pushed to the side whose colours they share. Values never leave the input range.
    With ``snap`` the steps that stay soft (one bin of the clamp is 1/``levels`` of the
    range, and the bound is bilinear at full size) are then settled to one side or the
    other by colour (:func:`snap_transitions`).

    Parameters
    ----------
    depth : (h, w) array
        Depth or disparity, any size and units (NaN/inf are filled from neighbours).
        Its aspect ratio should match the guide's; it is stretched otherwise.
    guide_rgb : (H, W, 3) or (H, W) float array
        The photo, sRGB in [0, 1].
    radius_px : int, optional
        Window radius in *working-resolution* pixels. By default
        ``max(4, 2.5 * upsampling factor, diagonal / 120)``: the window must be wider
        than the soft band around each depth edge.
    eps : float
        Guided-filter regularisation in (sRGB value)²; 1e-3 lets colour differences
        above about 0.03 separate the two sides of an edge.
    levels : int
        Quantisation bins of the median (precision of the clamp: 1/levels of the
        map's range).
    work_pixels : int
        Largest working resolution, in pixels, of the median step.
    snap : bool
        Settle the remaining soft steps by colour (:func:`snap_transitions`).

    Returns
    -------
    (H, W) float32
        The map at the guide's size, within the input's value range.
    """
    from refocus.io.depthfile import as_depth_map

    d = as_depth_map(depth)
    g = np.asarray(guide_rgb)
    if g.ndim == 2:
        g = np.repeat(g[..., None], 3, axis=2)
    if g.ndim != 3 or g.size == 0 or g.shape[2] < 3:
        raise RefocusError(f"guide image must be H x W x 3, got shape {g.shape}")
    g = np.asarray(g[..., :3], dtype=np.float32)
    # Full-size passes only when needed: the guide is used at working resolution.
    # min and max propagate NaN and show inf, so two passes check all three.
    g_lo, g_hi = float(g.min()), float(g.max())
    if not (np.isfinite(g_lo) and np.isfinite(g_hi)):
        g = np.nan_to_num(g, nan=0.0)
        g_lo, g_hi = float(g.min()), float(g.max())
    if g_lo < 0.0 or g_hi > 1.0:
        g = np.clip(g, 0.0, 1.0)
    if levels < 2:
        raise RefocusError("levels must be >= 2")
    d = _fill_invalid(d)
    H, W = g.shape[:2]
    lo, hi = float(d.min()), float(d.max())
    if hi - lo < 1e-12:
        return _resize(d, (H, W)).astype(np.float32)
    scale = min(1.0, float(np.sqrt(work_pixels / (H * W))))
    wh, ww = max(1, round(H * scale)), max(1, round(W * scale))
    gw = _resize_channels(g, (wh, ww)) if (wh, ww) != (H, W) else g
    pn = (_resize(d, (wh, ww)) - lo) / (hi - lo)
    if radius_px is None:
        factor = max(wh / d.shape[0], ww / d.shape[1], 1.0)
        radius_px = int(round(max(4.0, 2.5 * factor, np.hypot(wh, ww) / 120.0)))
    r = max(1, min(int(radius_px), max(wh, ww) // 2))
    upper = _median_upper_bound(gw, pn, r, eps, levels)
    # Clamped in the map's own units, in place, with one resized bound: at 12 MP each
    # full-size temporary costs 20-50 ms, a tenth of the whole median step.
    bound = upper * np.float32(hi - lo) + np.float32(lo)
    if (wh, ww) != (H, W):
        # Bilinear bounds: nearest-neighbour would put stair-steps on edges. The lower
        # bound is the upper one less one bin (the resize is linear), so one resize does.
        bound = _resize(bound, (H, W))
    out = _resize(d, (H, W))
    if not out.flags.writeable or np.shares_memory(out, d):
        out = out.copy()
    np.minimum(out, bound, out=out)
    bound -= np.float32((hi - lo) / levels)
    np.maximum(out, bound, out=out)
    if snap:
        # The clamp's bound is bilinear from the working resolution: a step one working
        # pixel wide is `factor` pixels wide at full size.
        factor = float(np.sqrt((H * W) / (wh * ww)))
        radius = max(SNAP_RADIUS_PX, int(round(2 * factor)))
        out = snap_transitions(out, g, radius_px=radius, value_range=(lo, hi))
    return out


def _cell_reduce(a: np.ndarray, cell: int, op) -> np.ndarray:
    """``op`` (np.maximum or np.minimum) over cell x cell blocks of a 2-D array, the
    last row and column of cells partial; one axis at a time (a 4-D reduce over a
    padded copy took 0.3 s at 12 MP)."""

    def along(x: np.ndarray, axis: int) -> np.ndarray:
        n = x.shape[axis]
        full = n // cell * cell
        x = np.moveaxis(x, axis, 0)
        parts = [op.reduce(x[:full].reshape((full // cell, cell) + x.shape[1:]), axis=1)] if full else []
        if full < n:
            parts.append(op.reduce(x[full:], axis=0)[None])
        return np.moveaxis(np.concatenate(parts, axis=0), 0, axis)

    return along(along(a, 0), 1)


def _step_pixels(d: np.ndarray, radius_px: int, jump: float, lo_v: float, hi_v: float) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the pixels of soft steps (:func:`snap_transitions`'s rule)."""
    from scipy.ndimage import maximum_filter, minimum_filter

    h, w = d.shape
    none = (np.zeros(0, np.intp), np.zeros(0, np.intp))
    # The window's extremes on a grid of cells of `cell` px: a full-size max filter and
    # the tests on every pixel cost 1 s at 12 MP, the cells 0.1 s. A cell's window
    # reaches at least radius_px beyond each of its pixels.
    cell = max(1, radius_px // 2)
    reach = 2 * (-(-radius_px // cell)) + 1
    top = maximum_filter(_cell_reduce(d, cell, np.maximum), reach, mode="nearest")
    bottom = minimum_filter(_cell_reduce(d, cell, np.minimum), reach, mode="nearest")
    steep = (top - bottom) > np.float32(jump * (hi_v - lo_v))
    if not steep.any():
        return none
    cand = np.repeat(np.repeat(steep, cell, axis=0), cell, axis=1)[:h, :w]
    ys, xs = np.nonzero(cand)
    t, b = top[ys // cell, xs // cell], bottom[ys // cell, xs // cell]
    v = d[ys, xs]
    margin = np.float32(SNAP_PLATEAU) * (t - b)
    keep = (v > b + margin) & (v < t - margin)
    ys, xs, v = ys[keep], xs[keep], v[keep]
    # ...and not flat itself: a narrow plane between two others (a pole, one step of
    # a staircase) lies inside its window's span too, and is not a transition.
    slope = np.float32(jump * (hi_v - lo_v) / (2 * radius_px + 1))
    steepest = np.zeros(ys.size, np.float32)
    for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
        np.maximum(steepest, np.abs(d[np.clip(ys + dy, 0, h - 1), np.clip(xs + dx, 0, w - 1)] - v), out=steepest)
    keep = steepest > slope
    return ys[keep], xs[keep]


def snap_transitions(
    depth: np.ndarray,
    guide_rgb: np.ndarray,
    *,
    radius_px: int = SNAP_RADIUS_PX,
    jump: float = SNAP_JUMP,
    value_range: tuple[float, float] | None = None,
) -> np.ndarray:
    """Give the pixels of each steep depth step the value of one side or the other, by colour.

    A soft step (a subject's outline blended with its background over a few pixels,
    as monocular networks and resampling leave it) gives the pixels in between a
    depth that is neither's: a bright subject's outline then gets a middle CoC and
    spreads a glow over the blurred background (bokehme-13: a 15 px glow around a
    sunlit shoulder, 2026-12-07). Here the pixels of every step steeper than ``jump``
    of the map's range within a ``(2 radius_px + 1)`` window, inside its span
    (:data:`SNAP_PLATEAU` from either end) and not flat themselves (a neighbour differs
    by more than ``jump`` of the range over the window's width), are settled from both
    plateaus inwards: each takes the value of its settled 8-neighbour of closest colour
    (L1 in sRGB), small colour differences crossed before large ones
    (:data:`SNAP_COLOUR_STEPS`, as a watershed floods), so the step ends at the photo's
    colour edge. Smooth and slanted surfaces are not steep and keep their values;
    values never leave the map's range. Only the step's pixels are visited (about 1 %
    of a photo).

    Parameters
    ----------
    depth : (H, W) float array, any units.
    guide_rgb : (H, W, 3) float array, the photo in sRGB [0, 1].
    radius_px : int
        Half-width of the steepness window, px; also the most rings grown from each side.
    jump : float
        Share of the map's range a steep step spans within the window.
    value_range : (lo, hi), optional
        The map's range (computed when not given).

    Returns
    -------
    (H, W) float32, a new array.
    """
    d = np.asarray(depth, dtype=np.float32)
    h, w = d.shape
    if np.shape(guide_rgb)[:2] != (h, w):
        raise RefocusError(f"the guide photo is {np.shape(guide_rgb)[:2]}, the map {(h, w)}: they must be the same size")
    lo_v, hi_v = value_range if value_range is not None else (float(d.min()), float(d.max()))
    out = d.copy()
    radius_px = int(radius_px)
    if not hi_v > lo_v or radius_px < 1:
        return out
    ys, xs = _step_pixels(d, radius_px, jump, lo_v, hi_v)
    if ys.size == 0:
        return out
    g = np.asarray(guide_rgb, dtype=np.float32).reshape(h * w, -1)
    flat = out.reshape(-1)
    idx = np.int64 if h * w >= 2**31 else np.int32
    here = ys.astype(idx) * w + xs
    # Each step pixel's 8 neighbours (edge-clamped) and their colour distances, once.
    nbr = np.empty((here.size, 8), idx)
    k = 0
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:
                nbr[:, k] = np.clip(ys + dy, 0, h - 1).astype(idx) * w + np.clip(xs + dx, 0, w - 1)
                k += 1
    dist = np.abs(g[nbr] - g[here][:, None, :]).sum(-1)
    settled = np.ones(h * w, bool)
    settled[here] = False
    # Grown like a watershed on the colour differences: first across the most similar
    # neighbours, so that each side reaches the colour edge before the other side
    # crosses it (growing ring by ring, a step pixel next to the subject's plateau took
    # the subject's value whatever its colour, before the background got there).
    todo = np.arange(here.size)
    for limit in SNAP_COLOUR_STEPS:
        for _ in range(2 * radius_px):
            if todo.size == 0:
                return out
            cost = np.where(settled[nbr[todo]], dist[todo], np.float32(np.inf))
            pick = np.argmin(cost, axis=1)
            ok = cost[np.arange(todo.size), pick] <= limit
            if not ok.any():
                break
            # Read all, then write: a ring takes its values from the rings settled before it.
            vals = flat[nbr[todo[ok], pick[ok]]]
            flat[here[todo[ok]]] = vals
            settled[here[todo[ok]]] = True
            todo = todo[~ok]
    return out


def _median_upper_bound(gw: np.ndarray, pn: np.ndarray, r: int, eps: float, levels: int, subsample: int = 2) -> np.ndarray:
    """Upper edge (in [1/levels, 1]) of each pixel's weighted-median bin of ``pn``.

    Each level's guided filter computes its coefficients on a ``subsample`` times
    smaller grid ("fast guided filter", He and Sun 2015) and applies them to the guide
    at full working resolution, so the bins still follow the photo's edges at that
    resolution; the coefficients are window averages, smooth by construction.
    The levels are independent; two run at a time (numpy and scipy's box filter
    release the GIL).
    """
    from concurrent.futures import ThreadPoolExecutor

    wh, ww = pn.shape
    s = subsample if min(wh, ww) >= 32 * subsample else 1
    hs, ws = (wh + s - 1) // s, (ww + s - 1) // s
    gs = _resize_channels(gw, (hs, ws)) if s > 1 else gw
    rs = max(1, int(round(r / s)))
    mean_i, inv = _guide_stats(gs, rs, eps)
    ts = []
    for k in range(1, levels):
        t = k / levels
        below = pn <= t
        if not below.any():
            continue
        ts.append((t, below))
        if below.all():
            break

    def crossed(item):
        t, below = item
        if below.all():
            return np.ones((wh, ww), bool)
        p = below.astype(np.float32)
        if s > 1:
            p = _resize(p, (hs, ws))
        ax, ay, az, b = _guided_coefficients(gs, p, rs, mean_i, inv)
        if s > 1:
            ax, ay, az, b = _resize_stack((ax, ay, az, b), (wh, ww))
        return ax * gw[..., 0] + ay * gw[..., 1] + az * gw[..., 2] + b >= 0.5

    upper = np.ones((wh, ww), np.float32)
    done = np.zeros((wh, ww), bool)
    workers = min(2, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:
        for (t, _), hit in zip(ts, pool.map(crossed, ts)):
            hit &= ~done
            upper[hit] = t
            done |= hit
    return upper


def align_orientation(depth: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8) to a map stored in the sensor's orientation."""
    from refocus.io.image import apply_orientation

    return np.ascontiguousarray(apply_orientation(depth, orientation))
