"""Occlusion-aware layered bokeh rendering.

The signed CoC range is cut into layers (finer near the focal plane). Each pixel is
shared between the two layers whose CoC brackets its own (linear "tent" weights
``W_i``), so blur varies continuously. Layers are composited with the *over*
operator in depth order, each blurred by the aperture kernel of its own radius:

* a blurred foreground layer spreads its colour *and* its alpha, so its edge becomes
  semi-transparent over whatever lies behind (partial occlusion);
* a sharp foreground layer keeps alpha 1 and hides the blurred background
  completely: the background never bleeds over it, and cannot eat it.

Hidden background. Where nearer content covers a layer, the scene behind it is
unknown, yet a blurred foreground reveals part of it. Layer ``i`` is therefore
extended under everything nearer than itself: its alpha is ``W_i + H_i`` with
``H_i`` the coverage by nearer layers, and its colour there is a push-pull
extrapolation of the content at or behind layer ``i``. The revealed band behind a
blurred edge thus shows the background continued, never the foreground's colour.
The extrapolation's coarse pull levels clamp (``ArrayBackend.pull_down2``): with
plain means a large hole took part of the whole frame's mean colour, which the
small alpha gaps between neighbouring blurred layers showed on smooth depth ramps
as bands one layer apart.

A surface never hides itself: a pixel whose CoC lies between ``c_i`` and
``c_{i+1}`` has a farther share in layer ``i`` and a nearer share ``S_i`` in layer
``i+1``, and behind its own nearer share layer ``i`` holds the pixel's own colour,
not the extrapolated background. Only pixels at or beyond ``c_{i+1}`` (the step
``O_i``, :func:`own_step`) count as other, nearer surfaces: ``H_i = O_i``, and
layer ``i`` carries ``V_i = W_i + S_i`` of its own. Counting the own share as
cover put up to ``(1 - t) t^2`` of a pixel's colour (15 %) onto the extrapolation,
which on smooth depth (every pixel split between two layers) showed as bands one
layer spacing apart.

Away from depth jumps the layers are summed instead (:mod:`refocus.render.zone`):
there one smooth surface is seen, nothing hides anything, and the over operator's
nearer layers of the same surface dimmed a farther layer's light where their blurred
edges overlapped it (a point light on a floor became a half-moon). The frame is then
rendered twice, with *over* (as above) and summed (each layer's blurred tent share
added, un-premultiplied by the summed alpha), and the two are blended with the zone;
the summed render processes only the tiles where the zone is below 1, the over render
only crops around the depth jumps when they hold under 60 % of the frame (each with a
margin for the light and the fill that reach in), and either render is skipped where
the zone is all 0 or all 1. On a photo with depth jumps all over, this costs 1.5-1.8x
the over render alone (``RenderConfig.smooth_sum`` turns it off: the UI's preview).

Speed. A layer whose |CoC| exceeds ``2 r0`` is rendered at 1/s resolution (s a power
of two, so that its kernel radius lies in [r0, 2 r0) there) and upsampled; cost per
layer then falls like 1/|CoC|^2 and the total is sub-quadratic in the maximum CoC.
The far half of the layers is composited back-to-front, the near half front-to-back
(the *over* operator is associative), then the two are joined once at full size; on
the CPU the two halves run in two threads (:class:`refocus.render.threads.RenderThreads`),
and when one half holds nearly all the work (focal plane near one end of the depth
range) it is itself split in two parts joined the same way.

Layers at full and half resolution are rendered tile-sparse on the CPU
(:mod:`refocus.render.sparse`), the others densely (:mod:`refocus.render.dense`):
only tiles where the layer's alpha is non-zero and no nearer layer is opaque after
its blur are processed, each as a window with its kernel halo; the push-pull fill is
split into a dense coarse part and a per-window fine part so that it equals the dense
fill where the kernel reads it. Coarser layers (quarter resolution and below)
take their weights from the tiles their tent band touches, evaluated on the
half-resolution image and CoC, so no layer pays a full-resolution pass of its own (a
2 x 2 block across a depth edge, or beside one within the splat's reach, takes one side's
CoC and that side's colour alone: with the splat's mean colour a sharp bright subject
glowed over the blurred background).
A cat's-eye, whose kernel varies over the photo, is cut into cells
(:class:`refocus.render.plan.CatsEyeCells`): a tile-sparse window takes the kernel
of its tile's cell, a dense layer blurs each cell with its own (:mod:`refocus.render.dense`).

Which layers, at which scale, on which tiles is decided in :mod:`refocus.render.plan`.
All of it runs on the operations of a backend (:mod:`refocus.render.backends`), so
the numpy, numba and torch paths are the same algorithm: on the CPU the tile-sparse
layers and the full-frame passes around them run as compiled kernels that repeat
the numpy expressions operation by operation, window by window in the cache;
without numba the numpy expressions themselves run.
"""

from __future__ import annotations

import threading

import numpy as np

from refocus.render.backends.base import add_, mul_
from refocus.render.config import RenderConfig
from refocus.render.dense import DenseLayers
from refocus.render.highlights import Booster
from refocus.render.plan import (
    BLOCK,
    SPARSE_MAX_SCALE,
    cats_eye_tiles_fit,
    layer_centres,
    layer_scale,
    moment_matched,
    sparse_margin,
    sparse_tile_max,
    used_layers,
)
from refocus.render.sparse import SparseLevels
from refocus.render.threads import RenderThreads, shared_threads
from refocus.render.zone import occlusion_zone


def render_layers(image_linear, coc_px, cfg: RenderConfig, backend=None, threads: RenderThreads | None = None,
                  zone: str = "auto", centres: np.ndarray | None = None, used: np.ndarray | None = None):
    """Render the lens photo from a linear all-in-focus image and a signed CoC map.

    Parameters
    ----------
    image_linear:
        H x W x 3 float32, linear light: a numpy array, or for the torch backend a
        numpy array or tensor (moved to its device).
    coc_px:
        H x W signed CoC radius in pixels (positive = nearer than the focal plane).
    cfg:
        Renderer settings.
    backend:
        An object from :mod:`refocus.render.backends`; by default chosen from
        ``cfg.device``. Its ``tile_sparse`` picks the CPU's tile-sparse layers or
        dense ones (the GPU's choice).
    threads:
        The :class:`~refocus.render.threads.RenderThreads` the CPU backends run on;
        by default the process's shared ones.
    zone:
        ``"auto"``: composite with *over* near depth jumps and sum the layers
        elsewhere (:mod:`refocus.render.zone`; with ``cfg.smooth_sum``; one of them for ``cfg.single_render()``); ``"over"`` or
        ``"sum"``: one of them everywhere (the renders of crops, below).
    centres, used:
        The layers' CoC centres and which of them the frame uses, when a crop is
        rendered with its frame's layers (by default from this CoC map,
        :func:`refocus.render.plan.layer_centres` and ``used_layers``): a layer the
        crop has no pixel of still extends its hidden-area fill over it.

    Returns
    -------
    H x W x 3 float32 linear image of the backend's kind (numpy array or tensor on its
    device); may exceed 1 slightly when highlights are boosted (the caller clips when
    encoding).
    """
    from refocus.render.backends import get_backend

    be = backend or get_backend(cfg.device)
    threads = threads or shared_threads()
    H, W = coc_px.shape
    coc = be.asarray(coc_px)

    min_step, rel_step = cfg.layer_step()
    r0 = cfg.full_res_max_radius() / 2
    if centres is None:
        centres = layer_centres(*be.minmax(coc), min_step, rel_step)
    coc = moment_matched(coc, centres, be)
    used_here, band_px = used_layers(coc, centres, be, threads)
    used = used_here if used is None else (used | used_here)
    order = np.nonzero(used)[0]
    scale = {int(i): layer_scale(abs(float(centres[i])), r0) for i in order}
    # Layers at the finest levels are rendered tile-sparse (see refocus.render.sparse),
    # a cat's-eye with one kernel per tile, if its cells are no smaller than a tile in
    # every such layer (the dense layers take their weights from the sparse ones' tiles
    # from quarter resolution on, so the finest levels are all sparse or all dense).
    sparse_ids = {i for i in scale if scale[i] <= SPARSE_MAX_SCALE} if be.tile_sparse else set()
    if not all(cats_eye_tiles_fit(cfg.aperture, abs(float(centres[i])) / scale[i], H // scale[i], W // scale[i], (H, W))
               for i in sparse_ids):
        sparse_ids = set()
    # Pad the frame so that every level's grid tiles it exactly.
    grid = max(max(scale.values()), 1)
    if sparse_ids:
        s_max = max(scale[i] for i in sparse_ids)
        grid = max(grid, sparse_tile_max(H, W, s_max) * s_max)
    Hp, Wp = -(-H // grid) * grid, -(-W // grid) * grid
    coc_pad = be.pad_edge(coc[None], 0, Hp - H, 0, Wp - W)[0]
    # One padded copy of the image serves all paths: the tile-sparse layers read
    # windows reaching `off` px beyond the frame, the rest reads the view x.
    off = sparse_margin(centres, scale, sparse_ids, cfg.aperture) if sparse_ids else 0
    booster = Booster(cfg.highlight_threshold, cfg.highlight_gain, max(H, W))
    x_big = be.image_in(image_linear, off, Hp, Wp, booster, threads)
    x = x_big[:, off : off + Hp, off : off + Wp]
    x_small = {}
    x_lock = threading.RLock()  # the two sweeps share these downsampled images

    def x_at(q: int):
        """The image at level q, each level splatted from the one above."""
        if q == 1:
            return x
        with x_lock:
            if q not in x_small:
                x_small[q] = be.splat_down(x_at(q // 2), 2)
            return x_small[q]

    sparse = None
    if sparse_ids:
        sparse = SparseLevels(be.to_numpy(coc_pad), x_big, off, centres, scale, sparse_ids, cfg, be,
                              sparse_tile_max(H, W, s_max), threads, (H, W))
    dense = DenseLayers(be, cfg, centres, scale, coc_pad, x, x_at, grid, sparse, (H, W))
    # Over near depth jumps, summed elsewhere (see refocus.render.zone).
    if zone == "auto" and cfg.smooth_sum:
        zone_blocks = _zone(be.to_numpy(coc_pad) if sparse is None else sparse.coc_np, be)
        if cfg.single_render() and zone_blocks.max() > 0.0:
            zone_blocks = np.ones((1, 1), np.float32)  # "fast": one render, over wherever a jump is
    else:
        zone_blocks = np.full((1, 1), 0.0 if zone == "sum" else 1.0, np.float32)
    use_over, use_sum = bool(zone_blocks.max() > 0.0), bool(zone_blocks.min() < 1.0)
    if sparse is not None and use_sum and use_over:
        sparse.set_zone(zone_blocks)

    def sweep(layers: list[int], front: bool, additive: bool = False):
        """Composite layers in the given order; returns premultiplied (4, Hp, Wp).
        ``additive``: sum the layers' blurred tent shares (no fill, no occlusion)."""
        levels = sorted({scale[i] for i in layers if i not in sparse_ids})
        cum_w = {q: be.zeros((1, Hp // q, Wp // q)) for q in levels}
        cum_wx = {q: be.zeros((3, Hp // q, Wp // q)) for q in levels}
        acc, acc_s = None, None
        # Half-resolution cumulative weights (layers at or behind / nearer than the
        # current one) for the tile-sparse layers at level 2, fed by every layer's
        # band tiles: their inputs are then read at level 2, not recomputed from the
        # full-resolution frame in each window.
        half = None
        if sparse is not None and any(scale[i] == 2 and i in sparse_ids for i in layers):
            half = [be.zeros((1, Hp // 2, Wp // 2)), be.zeros((3, Hp // 2, Wp // 2))]
        for i in layers:
            s = scale[i]
            if i in sparse_ids:
                if acc is None:
                    acc = be.zeros((4, Hp // s, Wp // s))
                elif acc_s != s:
                    acc = be.contiguous(be.upsample(acc, acc_s // s, Hp // s, Wp // s))
                acc_s = s
                sparse.sweep_layer(i, front, acc, x_at, None if additive else half, additive)
                continue
            blurred = dense.layer_sum(i, front) if additive else dense.layer(i, front, levels, cum_w, cum_wx, half)
            if acc is None:
                acc = be.zeros((4, Hp // s, Wp // s))
            elif acc_s != s:
                acc = be.upsample(acc, acc_s // s, Hp // s, Wp // s)
            acc_s = s
            if additive:
                add_(acc, blurred)
                continue
            a = be.clip(blurred[3:4], 0.0, 1.0)
            if front:  # acc += (1 - acc_alpha) * layer
                t_rest = 1.0 - acc[3:4]
                mul_(blurred[:3], t_rest)
                add_(acc[:3], blurred[:3])
                a *= t_rest
                add_(acc[3:4], a)
            else:  # acc = layer + (1 - a) * acc
                acc *= 1.0 - a
                add_(acc[:3], blurred[:3])
                add_(acc[3:4], a)
        if acc is None:
            return None
        if acc_s != 1:
            acc = be.upsample(acc, acc_s, Hp, Wp)
        return acc

    back_layers = [int(i) for i in order if centres[i] <= 0]
    front_layers = [int(i) for i in reversed(order) if centres[i] > 0]

    def both_sweeps(additive: bool):
        def run(layers, front):
            return sweep(layers, front, additive)

        if be.parallel_sweeps and threads.parallel and (back_layers or front_layers):
            return _threaded_sweeps(run, back_layers, front_layers, centres, scale, sparse_ids, band_px, Hp * Wp, threads,
                                    _sum if additive else _over)
        return run(back_layers, False), run(front_layers, True)

    if not use_sum:
        return be.image_out(*both_sweeps(False), H, W, booster, threads)
    if not use_over:  # the sum alone: one accumulator, un-premultiplied like a far sweep
        return be.image_out(_sum(*both_sweeps(True)), None, H, W, booster, threads)
    # Each render where it is shown: on crops around those blocks (with a margin for
    # the light and the fill that reach in) when they are a small part of the frame.
    max_coc = max(abs(float(centres[0])), abs(float(centres[-1])))
    plain = cfg.model_copy(update={"highlight_gain": 0.0})  # x is boosted already

    def rendered(additive: bool, shown: np.ndarray, base=None):
        # The dense path's push-pull fill sees a crop's edges (0.004 off on torch), and a
        # crop's cat's-eye cells and tiles fall elsewhere than the whole frame's (a
        # clipping edge 0.5 px off, 0.017 beside a light of 40): no crops for either.
        crops = None if cfg.aperture.cats_eye > 0 or not be.tile_sparse else _crops(shown, H, W, max_coc)
        if crops is None:
            if additive:
                return be.image_out(_sum(*both_sweeps(True)), None, H, W, _NO_BOOST, threads)
            return be.image_out(*both_sweeps(False), H, W, _NO_BOOST, threads)
        out = be.output_hwc(be.zeros((3, H, W))) if base is None else base + 0.0
        for y0, y1, x0, x1 in crops:
            out[y0:y1, x0:x1] = render_layers(be.output_hwc(x[:, y0:y1, x0:x1]), coc_px[y0:y1, x0:x1], plain, be, threads,
                                              zone="sum" if additive else "over", centres=centres, used=used)
        return out

    out_sum = rendered(True, zone_blocks < 1.0)
    out = rendered(False, zone_blocks > 0.0, out_sum)
    # out = sum + zone * (over - sum), channels last, at full resolution.
    hb, wb = zone_blocks.shape
    z = be.upsample(be.asarray(zone_blocks[None]), BLOCK, hb * BLOCK, wb * BLOCK)[0, :H, :W, None]
    out -= out_sum
    out *= z
    out += out_sum
    return booster.compress(out, be, channel_axis=-1)


#: A booster that is off (its compress is the identity): the two renders are blended
#: before the frame's booster compresses the result.
_NO_BOOST = Booster(1.0, 0.0)


#: Crops start and end on multiples of this (px): see _crops.
_CROP_GRID = 64


def _crops(shown: np.ndarray, H: int, W: int, max_coc_px: float) -> list[tuple[int, int, int, int]] | None:
    """Rectangles (y0, y1, x0, x1) of the frame that hold every block of ``shown``
    (per BLOCK x BLOCK block), each with a margin for the light and the hidden-area
    fill that reach in from beyond it (a render of a crop matches the full frame's
    inside the margin); None when together they cover most of the frame (render it
    whole)."""
    from scipy import ndimage

    margin_px = int(np.ceil(1.25 * max_coc_px)) + 4 * BLOCK
    # Shown regions closer than twice the margin share a crop.
    joined = ndimage.binary_dilation(shown, iterations=max(1, -(-margin_px // BLOCK)))
    labels, _ = ndimage.label(joined)
    crops = []
    for sl in ndimage.find_objects(labels):
        inner = shown[sl]
        ys, xs = np.nonzero(inner.any(axis=1))[0], np.nonzero(inner.any(axis=0))[0]
        if ys.size == 0:
            continue
        # On the frame's 64 px grid: the tile-sparse layers decide their own shares
        # per tile (plan.own_step), so a crop off the frame's tile grid changes those
        # decisions (0.037 at one pixel beside a subject's corner, 0.009 at 64 px
        # alignment instead of 128, measured on tests/test_render_smooth_sum.py's scene).
        y0 = max(0, ((sl[0].start + int(ys[0])) * BLOCK - margin_px) // _CROP_GRID * _CROP_GRID)
        y1 = min(H, -(-((sl[0].start + int(ys[-1]) + 1) * BLOCK + margin_px) // _CROP_GRID) * _CROP_GRID)
        x0 = max(0, ((sl[1].start + int(xs[0])) * BLOCK - margin_px) // _CROP_GRID * _CROP_GRID)
        x1 = min(W, -(-((sl[1].start + int(xs[-1]) + 1) * BLOCK + margin_px) // _CROP_GRID) * _CROP_GRID)
        if y1 > y0 and x1 > x0:
            crops.append((y0, y1, x0, x1))
    # Overlapping crops become one (each pastes its whole rectangle).
    merged = True
    while merged:
        merged = False
        for i in range(len(crops)):
            for j in range(i + 1, len(crops)):
                a, b = crops[i], crops[j]
                if a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]:
                    crops[i] = (min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3]))
                    del crops[j]
                    merged = True
                    break
            if merged:
                break
    if sum((y1 - y0) * (x1 - x0) for y0, y1, x0, x1 in crops) > 0.6 * H * W:
        return None
    return crops


def _zone(coc_np: np.ndarray, be) -> np.ndarray:
    """The over operator's zone per BLOCK x BLOCK block of the padded frame
    (:func:`refocus.render.zone.occlusion_zone`), the frame edge-padded to whole blocks."""
    h, w = coc_np.shape
    hb, wb = -(-h // BLOCK) * BLOCK, -(-w // BLOCK) * BLOCK
    c = np.pad(coc_np, ((0, hb - h), (0, wb - w)), mode="edge") if (hb, wb) != (h, w) else coc_np
    lo, hi = be.block_minmax(np.ascontiguousarray(c, dtype=np.float32), BLOCK)
    return occlusion_zone(c, lo, hi)


def _threaded_sweeps(sweep, back_layers, front_layers, centres, scale, sparse_ids, band_px, n_px: int, threads: RenderThreads,
                     join=None):
    """The far and near sweeps' results, computed in independent parts on two threads
    (numpy, scipy and the compiled kernels release the GIL): the two sweeps, and
    within each sweep its full-resolution tile-sparse tail, which reads nothing the
    coarser layers accumulate (its inputs are ramps of the CoC). Each part
    composites from zero; the parts are joined with the over operator, which is
    associative. Splitting keeps both cores busy when the focal plane lies near one
    end of the depth range and nearly all layers fall in one sweep."""

    def split(layers: list[int]) -> tuple[list[int], list[int]]:
        k = len(layers)
        while k > 0 and layers[k - 1] in sparse_ids and scale[layers[k - 1]] == 1:
            k -= 1
        return layers[:k], layers[k:]

    def cost(layers: list[int]) -> float:
        """Rough work of a sweep: dense layers a frame at their level, tile-sparse
        ones their band (their windows cover about 6x its area) at theirs, both
        growing with the kernel (its halo and its FFT)."""
        return sum(
            (min(n_px, 6 * int(band_px[i])) if i in sparse_ids else n_px)
            * (1.0 + abs(float(centres[i])) / scale[i] / 3.0)
            / scale[i] ** 2
            for i in layers
        )

    # Split a sweep only when the other is far lighter (the focal plane near one
    # end of the depth range): three parts on two threads gain nothing, and each
    # extra part costs a serial full-frame join.
    cb, cf = cost(back_layers), cost(front_layers)
    bc, bf = split(back_layers) if cf < 0.3 * cb else (back_layers, [])
    fc, ff = split(front_layers) if cb < 0.3 * cf else (front_layers, [])
    # Heaviest part first (longest-processing-time order): the two threads then
    # end close together.
    parts = sorted(((name, layers) for name, layers in (("bf", bf), ("ff", ff), ("bc", bc), ("fc", fc)) if layers),
                   key=lambda p: -cost(p[1]))
    part = threads.run_sweeps(sweep, [(name, layers, name[0] == "f") for name, layers in parts])
    join = join or _over
    back = join(part.get("bf"), part.get("bc"))  # the nearer part over the farther
    fr = join(part.get("fc"), part.get("ff"))
    return back, fr


def _sum(a, b):
    """``a + b`` (either may be None), in place on ``a``."""
    if a is None or b is None:
        return b if a is None else a
    a += b
    return a


def _over(near, far):
    """Premultiplied ``near`` over ``far`` (either may be None), in place on both
    (``far`` is scaled by the transmittance of ``near``, then added into it)."""
    if near is None or far is None:
        return far if near is None else near
    far *= 1.0 - near[3:4]
    near += far
    return near
