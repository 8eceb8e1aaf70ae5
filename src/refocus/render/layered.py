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

A surface never hides itself: a pixel whose CoC lies between ``c_i`` and
``c_{i+1}`` has a farther share in layer ``i`` and a nearer share ``S_i`` in layer
``i+1``, and behind its own nearer share layer ``i`` holds the pixel's own colour,
not the extrapolated background. Only pixels at or beyond ``c_{i+1}`` (the step
``O_i``, :func:`own_step`) count as other, nearer surfaces: ``H_i = O_i``, and
layer ``i`` carries ``V_i = W_i + S_i`` of its own. Counting the own share as
cover put up to ``(1 - t) t^2`` of a pixel's colour (15 %) onto the extrapolation,
which on smooth depth (every pixel split between two layers) showed as bands one
layer spacing apart.

Speed. A layer whose |CoC| exceeds ``2 r0`` is rendered at 1/s resolution (s a power
of two, so that its kernel radius lies in [r0, 2 r0) there) and upsampled; cost per
layer then falls like 1/|CoC|^2 and the total is sub-quadratic in the maximum CoC.
The far half of the layers is composited back-to-front, the near half front-to-back
(the *over* operator is associative), then the two are joined once at full size; on
the numpy path the two halves run in two threads, and when one half holds nearly all
the work (focal plane near one end of the depth range) it is itself split in two
parts joined the same way.

Layers at full and half resolution are rendered tile-sparse (:class:`_SparseLevels`):
only tiles where the layer's alpha is non-zero and no nearer layer is opaque after
its blur are processed, each as a window with its kernel halo; the push-pull fill is
split into a dense coarse part and a per-window fine part so that it equals the dense
fill where the kernel reads it. Coarser layers (quarter resolution and below)
take their weights from the tiles their tent band touches, evaluated on the
half-resolution image and CoC, so no layer pays a full-resolution pass of its own.

All of this runs on the small set of array operations in
:mod:`refocus.render.backend`, so the numpy and torch paths are the same algorithm.
On the CPU the tile-sparse layers and the full-frame passes around them run as
compiled kernels (:mod:`refocus.render._jit`) that repeat the numpy expressions
operation by operation, window by window in the cache; without numba the numpy
expressions themselves run.
"""

from __future__ import annotations

import functools
import math
import threading

import numpy as np

from refocus import aperture as ap
from refocus.render.backend import add_, mul_
from refocus.render.config import RenderConfig

_EPS = 1e-6


def layer_centres(coc_min: float, coc_max: float, min_step: float, rel_step: float) -> np.ndarray:
    """Signed CoC values of the layers, ascending (far to near), always including 0
    when the range straddles it, and both ends exactly (so a constant map is one layer)."""
    if coc_max - coc_min < 1e-6:
        return np.array([coc_min], dtype=np.float64)

    def side(limit: float) -> list[float]:
        vals, c = [], 0.0
        while True:
            c = c + max(min_step, rel_step * c)
            if c >= limit - 1e-9:
                break
            vals.append(c)
        return vals

    centres: list[float] = []
    if coc_min < 0:
        neg = [-v for v in side(-coc_min) if -v > coc_min]
        centres += [coc_min] + sorted(neg)
    if coc_min <= 0 <= coc_max:
        centres.append(0.0)
    if coc_max > 0:
        pos = [v for v in side(coc_max) if v < coc_max]
        centres += pos + [coc_max]
    c = np.array(sorted(set(centres)), dtype=np.float64)
    c = c[(c >= coc_min - 1e-9) & (c <= coc_max + 1e-9)]
    # Merge layers closer than a tenth of the minimum step (e.g. 0 next to an end).
    keep = [0]
    for i in range(1, len(c)):
        if c[i] - c[keep[-1]] > 0.1 * min_step or i == len(c) - 1:
            keep.append(i)
    return c[keep]


#: A 4 x 4 px block whose CoC spans more than this many layer spacings holds a
#: depth jump (see own_step). Chosen on hci-antinous (bokeh, 6 cases) and the
#: smooth random disparity of tests/test_render.py: 1 and 2 flip the decision on
#: steep smooth surfaces (tile-sparse and dense paths then disagree by 6e-3 on
#: average); 3 gives 45.32 dB on antinous, 4 gives 44.79 dB (before: 45.00).
_JUMP_SPACINGS = 3.0


#: Below this radius (px at the layer's level) a layer's kernel is a Gaussian of the
#: disc's second moment; up to twice it, a blend of the two (see render_kernel).
_SMOOTH_BELOW_PX = 1.5


def render_kernel(aper, radius_px: float, front: bool = False, cats_eye_offset: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """The kernel a layer is blurred with: the aperture's (:func:`refocus.aperture.kernel`),
    except at the pixel scale.

    The aperture kernel is rasterised by area (the disc's coverage of each pixel),
    i.e. the disc convolved with a pixel's box. A photo already carries its pixels'
    box, so that kernel adds the disc's mean squared radius r^2 / 2 *plus* the box's
    1/6 px^2: at r = 0.8 px 0.52 px^2 instead of 0.32, a blur 60 % too wide, which
    is what sub-pixel CoCs on real captures get. Below ``_SMOOTH_BELOW_PX`` the
    kernel is a sampled Gaussian whose sampled variance is the disc's (r^2 / 4 per
    axis), fading into the aperture's shape by twice that radius, where the shape
    starts to show and the box's share no longer matters. Measured (R = 4, the
    real Lytro captures and hci-antinous): refocus 59.81 -> 59.97 dB (lytro1g-0001)
    and 52.56 -> 53.34 dB (-0002), ahead of the Gaussian re-blur (59.85, 52.77)
    where it was behind; bokeh on lytro1g-0002 42.72 -> 42.83 dB; hci-antinous
    bokeh 45.32 -> 45.26, refocus unchanged (34.26).
    """
    r = abs(float(radius_px))
    k = ap.kernel(aper, r, front=front, cats_eye_offset=cats_eye_offset)
    if r >= 2 * _SMOOTH_BELOW_PX or r < 0.05:
        return k
    half = max(int(np.ceil(1.5 * r)), k.shape[0] // 2)
    g = _sampled_gaussian(r * r / 4.0, half)
    w = float(np.clip((2 * _SMOOTH_BELOW_PX - r) / _SMOOTH_BELOW_PX, 0.0, 1.0))
    pad = half - k.shape[0] // 2
    out = w * g + (1.0 - w) * np.pad(k.astype(np.float64), pad)
    return (out / out.sum()).astype(np.float32)


@functools.lru_cache(maxsize=256)
def _sampled_gaussian(var_px2: float, half: int) -> np.ndarray:
    """A (2 half + 1)^2 separable kernel of samples of a Gaussian whose *sampled*
    variance per axis is ``var_px2`` (sampling a narrow Gaussian shrinks it).
    Cached: every layer asks for its kernel several times per render (margins,
    windows, the dense path's reach), and re-renders ask for the same ones."""
    x = np.arange(-half, half + 1, dtype=np.float64)
    lo, hi = 1e-3, 4.0 * np.sqrt(var_px2) + 1.0
    for _ in range(50):
        s = 0.5 * (lo + hi)
        g = np.exp(-0.5 * (x / s) ** 2)
        g /= g.sum()
        if (g * x * x).sum() < var_px2:
            lo = s
        else:
            hi = s
    out = np.outer(g, g)
    out.setflags(write=False)
    return out


def own_step(centres: np.ndarray, i: int) -> tuple[float, float]:
    """The ramp ``(lo, hi)`` that stands for the step O_i = [CoC >= c_{i+1}]:
    coverage of layer ``i`` by other, nearer surfaces (see the module docstring).

    A ramp over the last thousandth of the band, so that the compiled kernels'
    ramps express it, and a CoC exactly at ``c_{i+1}`` (a flat surface on that
    layer, e.g. an in-focus subject at CoC 0) counts as another surface.

    The own share is used only where no depth jump lies within layer ``i``'s blur
    reach (no 4 x 4 px block whose CoC spans more than ``_JUMP_SPACINGS`` times the
    layer spacing ``c_i - c_{i-1}``): the over operator spreads a layer's alpha a little beyond
    the tent mix of the two blurs, which over a farther background must show the
    background (the extrapolated fill), not the foreground's colour. Measured on
    hci-antinous (half resolution, R = 4, far and middle focus): own shares
    everywhere lost 3.4 and 3.0 dB against the tent alone; gated, the 6 cases
    gain 0.15 dB on average, while the smooth ramp of ``tests/test_render.py``
    keeps its gain (30.5 -> 43.3 dB against an exact scatter). The tile-sparse
    layers decide per tile, the dense ones per block.
    """
    a, b = float(centres[i]), float(centres[i + 1])
    return b - 1e-3 * (b - a), b


def _moment_matched(coc, centres: np.ndarray, be):
    """The CoC map warped inside the two bands around the focal plane so that the tent
    mix of the sharp layer and the first blurred one has the second moment of the
    pixel's own disc.

    A disc of radius r spreads light with mean squared radius r^2 / 2, so mixing a
    point (weight 1 - t) with a disc of radius c_1 (weight t) matches a disc of
    radius r for t = (r / c_1)^2, not the linear tent's r / c_1, which blurs a CoC
    of 0.3 px against a first layer at 0.72 px with 2.4 times the second moment.
    Small CoCs are what real captures with a small aperture have: on the Lytro
    captures (lytro1g) the linear tent lost 1.2 dB to the input unchanged where
    0.25 <= |CoC| < 0.5. Beyond the first layers the two differ little (0.477
    instead of 0.5 half way between 6 and 7.2 px) and nothing changes. The warp
    maps [0, c_1] onto itself, so the layers and the depth order are unchanged.
    """
    pos, neg = centres[centres > 0], centres[centres < 0]
    if not ((centres == 0).any() and (pos.size or neg.size)):
        return coc
    c_pos = float(pos[0]) if pos.size else 1.0
    c_neg = float(-neg[-1]) if neg.size else 1.0
    inv = be.where(coc > 0, 1.0 / c_pos, 1.0 / c_neg)
    warped = coc * be.clip(be.where(coc > 0, coc, -coc) * inv, 0.0, 1.0)
    inside = (coc < c_pos) & (coc > -c_neg)
    return be.contiguous(be.where(inside, warped, coc))


def layer_scale(radius_px: float, r0: float) -> int:
    """Downsampling factor (power of two) for a layer of this |CoC|."""
    if radius_px < 2 * r0:
        return 1
    return 2 ** int(math.floor(math.log2(radius_px / r0)))


def _tent_weights(coc, centres: np.ndarray, be):
    """For each pixel, the index k of the layer just behind it and the weight t of layer k+1."""
    if len(centres) == 1:
        return be.zeros(coc.shape), be.zeros(coc.shape)
    k = be.clip(be.searchsorted(centres, coc, right=True) - 1, 0, len(centres) - 2)
    lo = be.take(centres, k)
    hi = be.take(centres, k + 1)
    t = be.clip((coc - lo) / (hi - lo), 0.0, 1.0)
    return k, t


def _block_reduce(a: np.ndarray, b: int, op) -> np.ndarray:
    """Reduce a 2-D array over b x b blocks with a binary ufunc (np.minimum, np.maximum).

    Strided pairwise passes: a reshape + reduction over two axes is an order of
    magnitude slower in numpy.
    """
    h, w = a.shape
    rows = a.reshape(h // b, b, w)
    r = rows[:, 0].copy()
    for k in range(1, b):
        op(r, rows[:, k], out=r)
    cols = r.reshape(h // b, w // b, b)
    out = cols[..., 0].copy()
    for k in range(1, b):
        op(out, cols[..., k], out=out)
    return out


def _used_layers(coc, centres: np.ndarray, be) -> tuple[np.ndarray, np.ndarray]:
    """Which layers have a non-zero tent weight somewhere (bool per layer), and how
    many pixels lie in each layer's band.

    A pixel in (c[j-1], c[j]] weighs on layers j-1 and j; one exactly at c[j] marks
    j-1 too, which only costs an empty layer. One binary search per pixel and a
    bincount: no sort of the frame, no per-pixel weights.
    """
    n = len(centres)
    if n == 1:
        return np.ones(1, dtype=bool), np.array([coc.size])
    jit = getattr(be, "jit", None)
    if jit is not None:
        c32 = centres.astype(np.float32)
        counts = sum(_in_row_halves(jit.band_counts, coc.shape[0], coc, c32))
    else:
        j = be.searchsorted(centres.astype(np.float32), coc, right=False)
        counts = be.bincount(j, minlength=n + 1)[: n + 1]
    band = counts[:n].copy()
    band[:-1] += counts[1:n]
    hit = counts > 0
    used = hit[:n].copy()
    used[:-1] |= hit[1:n]
    return used, band


class _Booster:
    """Invertible highlight expansion on luminance (see RenderConfig)."""

    def __init__(self, threshold_srgb: float, gain: float):
        from refocus.io.color import srgb_to_linear

        self.enabled = gain > 0 and threshold_srgb < 1.0
        self.gain = gain
        self.t = float(srgb_to_linear(np.float32(threshold_srgb)))
        y = np.linspace(0.0, 1.0, 8193)
        self.y_lin = y
        self.y_exp = y * self._mult(y)

    def _mult(self, y):
        s = np.clip((y - self.t) / max(1.0 - self.t, 1e-6), 0.0, 1.0)
        s = s * s * (3 - 2 * s)
        return 1.0 + self.gain * s

    def table(self, expand: bool) -> tuple:
        """(enabled, threshold, xp, fp, eps) for the compiled kernels (``_jit``):
        the lookup :meth:`expand` (or :meth:`compress`) interpolates."""
        xp, fp = (self.y_lin, self.y_exp) if expand else (self.y_exp, self.y_lin)
        return self.enabled, np.float32(self.t), xp, fp, np.float32(_EPS)

    @staticmethod
    def _lum(x):
        return x[0] * 0.2126 + x[1] * 0.7152 + x[2] * 0.0722

    def expand(self, x, be):
        """Boost highlights; may work in place on x."""
        if not self.enabled:
            return x
        return be.scale_highlights(x, self._lum(x), self.t, self.y_lin, self.y_exp, _EPS)

    def compress(self, x, be):
        """Invert :meth:`expand`; may work in place on x."""
        if not self.enabled:
            return x
        return be.scale_highlights(x, self._lum(x), self.t, self.y_exp, self.y_lin, _EPS)


def pushpull(values, weights, be):
    """Fill low-weight pixels of premultiplied ``values`` (C,H,W) from their surroundings.

    ``weights`` (1,H,W) in [0, 1]. Returns colours defined everywhere: at fully
    covered pixels the input colour, elsewhere a smooth extrapolation.
    """
    # Box averaging is enough here: the fill is a smooth extrapolation, and it is
    # the hot loop of the renderer.
    c = values.shape[0]
    pyr = [be.concat([values, weights])]
    while pyr[-1].shape[1] > 1 or pyr[-1].shape[2] > 1:
        pyr.append(be.box_down2(pyr[-1]))
    top = pyr[-1]
    fill = top[:c] / be.clip(top[c:], _EPS, None)
    for level in reversed(pyr[:-1]):
        fill = be.upsample(fill, 2, level.shape[1], level.shape[2])
        fill *= 1.0 - level[c:]  # in place: this loop runs at full size per layer
        fill += level[:c]
    return fill


def _conv_layer(stack, radius: float, front: bool, cfg: RenderConfig, be, scale: int, full_hw: tuple[int, int]):
    """Blur a (4,h,w) layer stack with the aperture kernel (spatially varying for cat's-eye)."""
    aper = cfg.aperture
    if aper.cats_eye <= 0 or radius < 0.5:
        return be.conv(stack, render_kernel(aper, radius, front=front))
    # Cat's-eye: blend kernels computed on a coarse grid of frame positions.
    _, h, w = stack.shape
    H, W = full_hw
    grid = 5
    ys = np.linspace(0, h - 1, grid)
    xs = np.linspace(0, w - 1, grid)
    out = None
    r_pad = int(math.ceil(radius)) + 1
    for gy in range(grid):
        y_lo = int(math.floor(ys[gy - 1])) if gy > 0 else 0
        y_hi = int(math.ceil(ys[gy + 1])) + 1 if gy < grid - 1 else h
        wy = _hat(np.arange(y_lo, y_hi), ys, gy)
        for gx in range(grid):
            x_lo = int(math.floor(xs[gx - 1])) if gx > 0 else 0
            x_hi = int(math.ceil(xs[gx + 1])) + 1 if gx < grid - 1 else w
            wx = _hat(np.arange(x_lo, x_hi), xs, gx)
            off = ap.cats_eye_offset(aper.cats_eye, xs[gx] * scale, ys[gy] * scale, W, H)
            k = render_kernel(aper, radius, front=front, cats_eye_offset=off)
            cy0, cy1 = max(0, y_lo - r_pad), min(h, y_hi + r_pad)
            cx0, cx1 = max(0, x_lo - r_pad), min(w, x_hi + r_pad)
            blurred = be.conv(stack[:, cy0:cy1, cx0:cx1], k)[:, y_lo - cy0 : y_hi - cy0, x_lo - cx0 : x_hi - cx0]
            wt = be.asarray((wy[:, None] * wx[None, :]).astype(np.float32))[None]
            if out is None:
                out = be.zeros(stack.shape)
            add_(out[:, y_lo:y_hi, x_lo:x_hi], blurred * wt)
    return out


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


def render_layers(image_linear, coc_px, cfg: RenderConfig, backend=None):
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
        An object from :mod:`refocus.render.backend`; by default chosen from
        ``cfg.device``. Its ``tile_sparse`` picks the CPU's tile-sparse layers or
        dense ones (the GPU's choice).

    Returns
    -------
    H x W x 3 float32 linear image of the backend's kind (numpy array or tensor on its
    device); may exceed 1 slightly when highlights are boosted (the caller clips when
    encoding).
    """
    from refocus.render.backend import get_backend

    be = backend or get_backend(cfg.device)
    H, W = coc_px.shape
    coc = be.asarray(coc_px)

    min_step, rel_step = cfg.layer_step()
    r0 = cfg.full_res_max_radius() / 2
    centres = layer_centres(*be.minmax(coc), min_step, rel_step)
    coc = _moment_matched(coc, centres, be)
    used, band_px = _used_layers(coc, centres, be)
    order = np.nonzero(used)[0]
    scale = {int(i): layer_scale(abs(float(centres[i])), r0) for i in order}
    # Layers at the finest levels are rendered tile-sparse (see _SparseLevels); the
    # spatially varying cat's-eye kernel keeps the dense path.
    sparse_ids = set()
    if cfg.aperture.cats_eye <= 0 and be.tile_sparse:
        sparse_ids = {i for i in scale if scale[i] <= _SPARSE_MAX_SCALE}
    # Pad the frame so that every level's grid tiles it exactly.
    grid = max(max(scale.values()), 1)
    if sparse_ids:
        s_max = max(scale[i] for i in sparse_ids)
        grid = max(grid, _sparse_tile_max(H, W, s_max) * s_max)
    Hp, Wp = -(-H // grid) * grid, -(-W // grid) * grid
    coc_pad = be.pad_edge(coc[None], 0, Hp - H, 0, Wp - W)[0]
    # One padded copy of the image serves all paths: the tile-sparse layers read
    # windows reaching `off` px beyond the frame, the rest reads the view x.
    off = _SparseLevels.margin(centres, scale, sparse_ids, cfg) if sparse_ids else 0
    booster = _Booster(cfg.highlight_threshold, cfg.highlight_gain)
    jit = getattr(be, "jit", None)
    if jit is not None:
        x_big = np.empty((3, Hp + 2 * off, Wp + 2 * off), np.float32)
        img = np.ascontiguousarray(image_linear, dtype=np.float32)
        _in_row_halves(jit.image_in, x_big.shape[1], img, x_big, off, off, *booster.table(expand=True))
    else:
        x_big = be.image_chw_padded(image_linear, off, off + Hp - H, off, off + Wp - W)
        x_big = booster.expand(x_big, be)
    x = x_big[:, off : off + Hp, off : off + Wp]
    if not sparse_ids:  # full-resolution tent weights, for the dense path only
        k, t = _tent_weights(coc_pad, centres, be)
    # Rows each layer touches (its tent weight is non-zero there), rounded to the grid.
    row_lo, row_hi = be.row_minmax(coc_pad)

    def band_rows(i: int) -> tuple[int, int]:
        lo = centres[i - 1] if i > 0 else -np.inf
        hi = centres[i + 1] if i + 1 < len(centres) else np.inf
        rows = np.nonzero((row_hi >= lo) & (row_lo <= hi))[0]
        if rows.size == 0:
            return 0, 0
        return (rows[0] // grid) * grid, min(Hp, -(-(rows[-1] + 1) // grid) * grid)

    sparse = None
    if sparse_ids:
        sparse = _SparseLevels(be.to_numpy(coc_pad), x_big, off, centres, scale, sparse_ids, cfg, be, _sparse_tile_max(H, W, s_max))
    # CoC jumps per 4 x 4 block, for the own shares of full-resolution dense layers.
    jump4 = be.block_jump(coc_pad, _BLOCK) if sparse is None else None
    x_small = {}
    x_lock = threading.RLock()  # the two sweeps share these downsampled images

    def x_at(q: int):
        """The image at level q, each level splatted from the one above."""
        if q == 1:
            return x
        with x_lock:
            if q not in x_small:
                x_small[q] = _box_down(x_at(q // 2), 2, be)
            return x_small[q]

    def sweep(layers: list[int], front: bool):
        """Composite layers in the given order; returns premultiplied (4, Hp, Wp)."""
        dense = [i for i in layers if i not in sparse_ids]
        levels = sorted({scale[i] for i in dense})
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
                dense_in = None
                if s == 2 and half is not None:
                    w2, wx2 = sparse.band_half_res(i)
                    # V_i = W_i + S_i: the layer's own pixels, their nearer shares included.
                    v2, vx2 = sparse.band_half_res(i, own=True) if i + 1 < len(centres) else (w2, wx2)
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
                sparse.layer(i, front, acc, x_at, dense_in)
                continue
            finer = [q for q in levels if q <= s]  # later layers are at these scales
            has_hi = i + 1 < len(centres)
            if sparse is not None and finer[0] >= 4:
                # Weights at half resolution from the tiles the layer's band touches.
                y0, y1 = 0, Hp
                prev_q, prev = 4, sparse.band_quarter_res_from_half(i, half, x_at)
                own = sparse.band_quarter_res_from_half(i, None, x_at, own=True) if has_hi else None
            else:
                y0, y1 = band_rows(i)
                kc, tc = k[y0:y1], t[y0:y1]
                w_i = be.where(kc == i, 1.0 - tc, 0.0)
                if i > 0:
                    w_i = w_i + be.where(kc == i - 1, tc, 0.0)
                w_i = w_i[None]
                wx_i = w_i * x[:, y0:y1]
                prev_q, prev = 1, (w_i, wx_i)
                own = None
                if has_hi:  # V_i = W_i + S_i; t == 1 only at the top end, on layer i + 1
                    s_i = be.where((kc == i) & (tc < 1.0), tc, 0.0)
                    if i > 0:  # own shares only away from depth jumps (own_step)
                        half_i = max(render_kernel(cfg.aperture, abs(float(centres[i])) / s, front=centres[i] > 0).shape) // 2
                        reach = -(-(half_i + 3) * s // _BLOCK)
                        ok = be.clip((_JUMP_SPACINGS * float(centres[i] - centres[i - 1]) - be.max_filter(jump4, reach)) * 1e6, 0.0, 1.0)
                        hb, wb = ok.shape
                        ok = be.upsample(ok[None], _BLOCK, hb * _BLOCK, wb * _BLOCK)[0, y0:y1, :Wp]
                        s_i = s_i * ok
                    v_i = w_i + s_i[None]
                    own = (v_i, v_i * x[:, y0:y1])
            own_q = prev_q  # own: V_i and V_i x at this level, None where V_i = W_i
            small = {}
            for q in finer:  # ascending: each level averages the previous one
                cur = (_box_down(prev[0], q // prev_q, be), _box_down(prev[1], q // prev_q, be))
                small[q] = cur
                prev_q, prev = q, cur
            if own is not None:
                own = (_box_down(own[0], s // own_q, be), _box_down(own[1], s // own_q, be))
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
                fill = pushpull(covered_x, be.clip(covered, 0.0, 1.0), be)
                fill *= hidden
                add_(stack[:3], fill)
            if front:
                for q in finer:
                    add_(cum_w[q][:, y0 // q : y1 // q], small[q][0])
                    add_(cum_wx[q][:, y0 // q : y1 // q], small[q][1])
            blurred = _conv_layer(stack, abs(float(centres[i])) / s, front, cfg, be, s, (Hp, Wp))
            del stack
            a = be.clip(blurred[3:4], 0.0, 1.0)
            if acc is None:
                acc = be.zeros((4, Hp // s, Wp // s))
            elif acc_s != s:
                acc = be.upsample(acc, acc_s // s, Hp // s, Wp // s)
            acc_s = s
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
    if be.name == "numpy" and _THREADS and (back_layers or front_layers):
        # Independent parts, run on two threads (numpy/scipy release the GIL in their
        # array loops): the two sweeps, and within each sweep its full-resolution
        # tile-sparse tail, which reads nothing the coarser layers accumulate (its
        # inputs are ramps of the CoC). Each part composites from zero; the parts are
        # joined with the over operator, which is associative. Splitting keeps both
        # cores busy when the focal plane lies near one end of the depth range and
        # nearly all layers fall in one sweep.
        def split(layers: list[int]) -> tuple[list[int], list[int]]:
            k = len(layers)
            while k > 0 and layers[k - 1] in sparse_ids and scale[layers[k - 1]] == 1:
                k -= 1
            return layers[:k], layers[k:]

        def cost(layers: list[int]) -> float:
            """Rough work of a sweep: dense layers a frame at their level, tile-sparse
            ones their band (their windows cover about 6x its area) at theirs, both
            growing with the kernel (its halo and its FFT)."""
            n_px = Hp * Wp
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
        jobs = {name: _pool().submit(_counted(sweep), layers, name[0] == "f") for name, layers in parts}
        part = {name: job.result() for name, job in jobs.items()}
        back = _over(part.get("bf"), part.get("bc"))  # the nearer part over the farther
        fr = _over(part.get("fc"), part.get("ff"))
    else:
        back = sweep(back_layers, front=False)
        fr = sweep(front_layers, front=True)
    if jit is not None:
        out = np.empty((H, W, 3), np.float32)
        dummy = np.zeros((4, 1, 1), np.float32)
        _in_row_halves(jit.image_out, H, dummy if back is None else back, dummy if fr is None else fr,
                       back is not None, fr is not None, out, *booster.table(expand=False))
        return out
    # In place on the accumulators: this join is serial, full-frame work.
    if back is not None:
        out = back[:3]
        out /= be.clip(back[3:4], _EPS, None)
        if fr is not None:
            out *= 1.0 - fr[3:4]
            out += fr[:3]
    else:
        out = fr[:3]
        out /= be.clip(fr[3:4], _EPS, None)
    out = booster.compress(be.contiguous(be.clip(out[:, :H, :W], 0.0, None)), be)
    return be.output_hwc(out)


def _in_row_halves(kernel, n_rows: int, *args) -> list:
    """``[kernel(0, m, *args), kernel(m, n_rows, *args)]`` with m = n_rows // 2, the
    two halves in two threads (the compiled kernels release the GIL): full-frame
    passes outside the sweeps would otherwise leave one core idle."""
    m = n_rows // 2
    ranges = [(0, m), (m, n_rows)] if _THREADS and m > 0 else [(0, n_rows)]
    return _run_ranges(lambda a, b: kernel(a, b, *args), ranges)


def _window_ranges(n: int) -> list[tuple[int, int]]:
    """How to cut n windows of a compiled kernel call: in two halves when this is the
    only sweep running (the other core would idle: the focal plane near one end of
    the depth range, or the end of the longer sweep), else whole."""
    if n < 8 or not _THREADS or _ACTIVE[0] != 1:
        return [(0, n)]
    return [(0, n // 2), (n // 2, n)]


def _run_ranges(fn, ranges: list[tuple[int, int]]) -> list:
    """``[fn(a, b) for (a, b) in ranges]``, the second range on the helper thread.
    The compiled kernels release the GIL and the ranges write disjoint tiles."""
    if len(ranges) == 1:
        return [fn(*ranges[0])]
    job = _pool("helper").submit(fn, *ranges[1])
    first = fn(*ranges[0])
    return [first, job.result()]


def _counted(sweep):
    """``sweep`` that counts itself in ``_ACTIVE`` while it runs."""

    def run(layers, front):
        with _POOL_LOCK:
            _ACTIVE[0] += 1
        try:
            return sweep(layers, front)
        finally:
            with _POOL_LOCK:
                _ACTIVE[0] -= 1

    return run


#: Threaded sweeps running now (all renders of the process).
_ACTIVE = [0]
_POOLS: dict = {}
_POOL_LOCK = threading.Lock()


def _pool(kind: str = "sweeps"):
    """The renderer's threads, started once per process (a pool per render cost ~1 ms
    per thread start, several times per frame: noticeable at preview size): two
    for the sweeps, one helper that takes the second half of a split kernel call
    (:func:`_run_ranges`). Their tasks never wait on their own pool's tasks, so
    concurrent renders only queue."""
    with _POOL_LOCK:
        if kind not in _POOLS:
            from concurrent.futures import ThreadPoolExecutor

            _POOLS[kind] = ThreadPoolExecutor(max_workers=2 if kind == "sweeps" else 1, thread_name_prefix=f"refocus-{kind}")
        return _POOLS[kind]


def _over(near, far):
    """Premultiplied ``near`` over ``far`` (either may be None), in place on both
    (``far`` is scaled by the transmittance of ``near``, then added into it)."""
    if near is None or far is None:
        return far if near is None else near
    far *= 1.0 - near[3:4]
    near += far
    return near


def _sparse_tile_max(h: int, w: int, s_max: int) -> int:
    """Largest tile side used by the tile-sparse layers: the frame is padded to a
    multiple of it (times the coarsest sparse level), so keep that padding small."""
    t = 64
    while t < 512 and 2 * t * s_max <= max(h, w) / 2:
        t *= 2
    return t


#: Block side (pixels at the layer's level) of the global coarse push-pull fill;
#: windows carry one block of extra margin so the local push steps are exact.
_BLOCK = 4
#: Layers at this downsampling or finer are rendered tile-sparse.
_SPARSE_MAX_SCALE = 2
#: Pixels per batch of windows: bounds their memory, and keeps a batch's arrays in
#: the CPU cache (several times faster than streaming from memory).
_CHUNK_PX = 300_000


def _window_margin(half_px: int) -> int:
    """Margin of a tile's window at the layer's level: the kernel halo rounded up to
    a fill block, plus one block (so the window's push-pull levels are exact)."""
    return -(-half_px // _BLOCK) * _BLOCK + _BLOCK


class _SparseLevels:
    """Tile-sparse rendering of the layers at the finest levels.

    At full resolution most of the cost of a dense layer is spent where it changes
    nothing: where its alpha is zero, or under a nearer layer that is opaque after
    blurring. Layer ``i`` is written with the ramps ``R_j`` (coverage by layers
    ``>= j``, a clipped linear function of the CoC), so everything it needs is local:
    alpha ``D(R_i)``, own colour ``D(R_i x) - D(O_i x)``, hidden coverage
    ``D(O_i)``, and the content at or behind it ``D(x) - D(O_i x)`` (D: the
    splat downsampling to the layer's level; O_i the step of :func:`own_step`). Per tile (32 to 512 px at that
    level, whichever size leaves the least work for this layer) and the CoC range of the 3 x 3 tiles around it:

    * ``max CoC <= c_{i-1}``: alpha is 0 there, nothing to do;
    * ``min CoC >= c_{i+1}``: layer ``i+1`` or a nearer one covers the tile opaquely
      after its blur, so whatever ``i`` leaves there is overwritten (back-to-front)
      or masked (front-to-back);
    * otherwise the tile's window (tile + kernel halo + one fill block) is gathered
      from the full-resolution frame and processed as a batch.

    The push-pull fill is split at blocks of ``_BLOCK`` px: its coarse levels run
    densely on block means (of active windows, or known constants: 0, or the block
    mean of ``D(x)``, in skipped tiles), its fine levels inside each window, so the
    fill equals the dense one wherever the kernel reads it.
    """

    @staticmethod
    def margin(centres, all_scales: dict[int, int], ids, cfg: RenderConfig) -> int:
        """Full-resolution padding the windows of layers ``ids`` need around the frame."""
        S = max(all_scales[i] for i in ids)
        half = max(max(render_kernel(cfg.aperture, abs(float(centres[i])) / all_scales[i], front=centres[i] > 0).shape) // 2 for i in ids)
        return (_window_margin(half) + 1) * S

    def __init__(self, coc_pad, x_big, off: int, centres, all_scales: dict[int, int], ids, cfg: RenderConfig, be, t_max: int):
        """``x_big``: the (3, Hp + 2 off, Wp + 2 off) image, edge-padded by ``off``
        (:meth:`margin`) around the grid-padded frame."""
        from scipy import ndimage

        self.ndimage = ndimage
        self.be, self.centres = be, centres
        self.scales = {i: all_scales[i] for i in ids}
        self.Hp, self.Wp = coc_pad.shape
        aper = cfg.aperture
        half = {}
        self.kern = {}
        for i, s in all_scales.items():
            c = float(centres[i])
            k = render_kernel(aper, abs(c) / s, front=c > 0)
            half[i] = max(k.shape) // 2
            if i in ids:
                self.kern[i] = k
        # How far (full-resolution px) each layer's result reaches from where its alpha
        # is defined: kernel, splat margin, bilinear upsampling of the accumulator.
        self.reach = {i: (half[i] + 3) * all_scales[i] for i in all_scales}
        used = sorted(all_scales)
        self.next_used = {a: b for a, b in zip(used, used[1:])}
        self.E_of = {i: _window_margin(half[i]) for i in ids}
        assert off >= (max(self.E_of.values()) + 1) * max(self.scales.values())  # every window is inside
        self.off = off
        self.coc_big = be.asarray(np.pad(coc_pad, off, mode="edge")[None])
        self.coc_np = coc_pad
        self._no_level = np.zeros((1, 1, 1), np.float32)  # placeholder for unused kernel inputs
        self._lock = threading.Lock()
        self._half_src = None
        self._jump4 = None
        self.x_big = x_big
        self.bstats, self.tstats, self.xb, self.xs_pad = {}, {}, {}, {}
        self.tile_sizes = [t for t in (32, 64, 128, 256, 512) if t <= t_max]
        #: The backend's compiled kernels (see refocus.render._jit), or None.
        self.jit = getattr(be, "jit", None)
        for s in sorted(set(self.scales.values()) | {1}):
            b = _BLOCK * s  # CoC range per block of _BLOCK px at level s
            if self.jit is not None:
                self.bstats[s] = self.jit.block_minmax(coc_pad, b)
            else:
                self.bstats[s] = (_block_reduce(coc_pad, b, np.minimum), _block_reduce(coc_pad, b, np.maximum))

    def _tent(self, cw, i: int, own: bool = False):
        """Layer i's tent weight W_i = R_i - R_{i+1} of the CoC values ``cw``; with
        ``own``, V_i = R_i - O_i (the tent plus the pixels' own nearer share,
        see :func:`own_step`)."""
        c = self.centres
        w = self._ramp(cw, c[i - 1], c[i]) if i > 0 else self.be.zeros(cw.shape) + 1.0
        if i + 1 < len(c):
            w -= self._ramp(cw, *own_step(c, i)) if own else self._ramp(cw, c[i], c[i + 1])
        return w

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
        m = -(-margin_px // (_BLOCK * s))
        return self._tile_reduce(("range", s), self.bstats[s][1 if high else 0], m, tile // _BLOCK, high)

    def _tile_reduce(self, name: tuple, blocks: np.ndarray, m: int, per: int, high: bool) -> np.ndarray:
        """Max (or min) of a block map over ``per`` x ``per`` block tiles widened by
        ``m`` blocks, cached under ``name`` (``blocks`` must be the same for a name)."""
        key = (name, m, high, per)
        if key not in self.tstats and self.jit is not None:
            self.tstats[key] = self.jit.tile_range(blocks, m, per, high)
        elif key not in self.tstats:
            # The dilated block map does not depend on the tile size: shared by all.
            dkey = (name, m, high)
            if dkey not in self.tstats:
                f = self.ndimage.maximum_filter if high else self.ndimage.minimum_filter
                self.tstats[dkey] = f(blocks, size=2 * m + 1, mode="nearest") if m > 0 else blocks
            self.tstats[key] = _block_reduce(self.tstats[dkey], per, np.maximum if high else np.minimum)
        return self.tstats[key]

    def _own_groups(self, i: int, own: bool, s: int, T: int, ty, tx) -> list:
        """Tiles (ty, tx) of side T at level s, split into [(own_k, ty_k, tx_k)]:
        whether layer i uses its pixels' own nearer shares there (:func:`own_step`:
        no depth jump within its blur reach, :meth:`_own_ok`), or the plain tent."""
        if not own or i + 1 >= len(self.centres):
            return [(False, ty, tx)]
        ok = self._own_ok(i, s, T, ty, tx)
        return [(k, ty[sel], tx[sel]) for k, sel in ((True, ok), (False, ~ok)) if sel.any()]

    def _own_ok(self, i: int, s: int, T: int, ty, tx) -> np.ndarray:
        """Per tile (ty, tx) (side T at level s): no depth jump within layer i's
        reach, so the own nearer shares apply there (:func:`own_step`)."""
        if i == 0:
            return np.ones(np.shape(ty), bool)
        return (self._tile_jump(s, self.reach[i], T) <= _JUMP_SPACINGS * (self.centres[i] - self.centres[i - 1]))[ty, tx]

    def _tile_jump(self, s: int, margin_px: int, T: int) -> np.ndarray:
        """Per tile at level s, the largest CoC jump (max - min) of a 4 x 4 px block
        within margin_px (full res) of it."""
        if self._jump4 is None:
            self._jump4 = np.ascontiguousarray(self.bstats[1][1] - self.bstats[1][0])
        return self._tile_reduce(("jump",), self._jump4, -(-margin_px // _BLOCK), T * s // _BLOCK, True)

    def _ramp(self, cw, lo: float, hi: float):
        be = self.be
        return be.clip((cw - np.float32(lo)) * np.float32(1.0 / (hi - lo)), 0.0, 1.0)

    def band_half_res(self, i: int, own: bool = False):
        """Layer i's tent weight W_i = R_i - R_{i+1} and W_i x, splatted to half
        resolution, (1|3, Hp/2, Wp/2). Computed only in the 64 px tiles where W_i is
        non-zero: each pixel lies in the band of two layers only, while a dense layer
        would pay a full-resolution pass for every layer. With ``own``, V_i and V_i x
        instead (:meth:`_tent`)."""
        be, T = self.be, 64
        active = self._band_tiles(i, 2, T)
        w2 = be.zeros((1, self.Hp // 2, self.Wp // 2))
        wx2 = be.zeros((3, self.Hp // 2, self.Wp // 2))
        ty_all, tx_all = np.nonzero(active)
        jit = self.jit
        groups = self._own_groups(i, own, 1, T, ty_all, tx_all)
        if jit is not None:
            for own_k, ty, tx in groups:
                ty, tx, ramps = ty.astype(np.int64), tx.astype(np.int64), self._ramps(i, own_k)
                _run_ranges(lambda a, b: jit.band_splat(self.coc_big, self.x_big, self.off - 2, ty[a:b], tx[a:b], T, ramps, w2, wx2,
                                                        False, self._no_level, self._no_level), _window_ranges(ty.size))
            return w2, wx2
        F = T + 4  # two full-resolution px of splat margin on each side
        o = self.off - 2
        coc_src, x_src = self.coc_big[:, o:, o:], self.x_big[:, o:, o:]
        chunk = max(1, _CHUNK_PX // (F * F))
        for own_k, ty_g, tx_g in groups:
            for j0 in range(0, ty_g.size, chunk):
                ty, tx = ty_g[j0 : j0 + chunk], tx_g[j0 : j0 + chunk]
                w = self._tent(be.windows(coc_src, F, T, ty, tx), i, own_k)
                wx = w * be.windows(x_src, F, T, ty, tx)
                be.put_tiles(w2, be.contiguous(be.down_win(w, 2)), ty, tx)
                be.put_tiles(wx2, be.contiguous(be.down_win(wx, 2)), ty, tx)
        return w2, wx2

    def _half_sources(self, x_at):
        """Half-resolution CoC and image, padded by 8 px, for the coarse layers' bands.

        The image is the centroid-preserving splat D(x). The CoC is its splat too,
        except where a 2 x 2 block straddles a depth edge: there an average would
        invent a depth between the two sides (and a layer that exists in neither),
        so the block takes the side (its min or max) nearer to that average.
        """
        with self._lock:  # the two sweeps share them
            if self._half_src is None:
                be, P = self.be, 8
                c = self.coc_np
                avg = be.to_numpy(be.downsample(be.asarray(c[None]), 2))[0]
                lo, hi = _block_reduce(c, 2, np.minimum), _block_reduce(c, 2, np.maximum)
                side = np.where(avg - lo < hi - avg, lo, hi)
                coc2 = np.where(hi - lo > 1.0, side, avg).astype(np.float32)
                self._half_src = (be.asarray(np.pad(coc2, P, mode="edge")[None]), be.pad_edge(be.contiguous(x_at(2)), P, P, P, P), P)
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
        With ``own``, V_i and V_i x instead (:meth:`_tent`; ``half_acc`` must be None:
        the cumulative weights are the tents')."""
        be, T = self.be, 64
        coc2_big, x2_big, P = self._half_sources(x_at)
        active = self._band_tiles(i, 6, T)
        w4 = be.zeros((1, self.Hp // 4, self.Wp // 4))
        wx4 = be.zeros((3, self.Hp // 4, self.Wp // 4))
        ty_all, tx_all = np.nonzero(active)
        T2 = T // 2
        jit = self.jit
        groups = self._own_groups(i, own, 1, T, ty_all, tx_all)
        if jit is not None:
            has_acc = half_acc is not None
            acc_w, acc_wx = (half_acc[0], half_acc[1]) if has_acc else (self._no_level, self._no_level)
            x2c = np.ascontiguousarray(x2_big)
            for own_k, ty, tx in groups:
                ty, tx, ramps = ty.astype(np.int64), tx.astype(np.int64), self._ramps(i, own_k)
                _run_ranges(lambda a, b: jit.band_splat(coc2_big, x2c, P - 2, ty[a:b], tx[a:b], T2, ramps, w4, wx4, has_acc, acc_w, acc_wx),
                            _window_ranges(ty.size))
            return w4, wx4
        F = T2 + 4  # two half-resolution px of margin each side, for the splat to quarter
        o = P - 2
        coc_src, x_src = coc2_big[:, o:, o:], x2_big[:, o:, o:]
        chunk = max(1, _CHUNK_PX // (F * F))
        batches = [(own_k, ty_g[j0 : j0 + chunk], tx_g[j0 : j0 + chunk])
                   for own_k, ty_g, tx_g in groups for j0 in range(0, ty_g.size, chunk)]
        for own_k, ty, tx in batches:
            w = self._tent(be.windows(coc_src, F, T2, ty, tx), i, own_k)
            both = be.concat([w, w * be.windows(x_src, F, T2, ty, tx)], axis=1)
            if half_acc is not None:
                inner = both[:, :, 2:-2, 2:-2]
                for acc_ch, sl in ((half_acc[0], slice(0, 1)), (half_acc[1], slice(1, 4))):
                    tiles = be.get_tiles(acc_ch, T2, ty, tx)
                    tiles += inner[:, sl]
                    be.put_tiles(acc_ch, tiles, ty, tx)
            q = be.down_win(both, 2)
            be.put_tiles(w4, be.contiguous(q[:, 0:1]), ty, tx)
            be.put_tiles(wx4, be.contiguous(q[:, 1:4]), ty, tx)
        return w4, wx4

    def _coarse_fill(self, s: int, T: int, E: int, active, opaque, x_at, pulled):
        """The push-pull fill's coarse part, dense over the frame at block resolution
        (1/_BLOCK of level s), edge-padded by ``E // _BLOCK + 1`` blocks.

        ``pulled``: (block level of the windows' (behind, 1 - hidden), ty, tx) per
        batch of active windows; skipped tiles hold known values (below)."""
        be, jit = self.be, self.jit
        q = _BLOCK
        if s not in self.xb:
            self.xb[s] = jit.box_down4(x_at(s)) if jit is not None and q == 4 else be.box_down(be.contiguous(x_at(s)), q)
        behind = ~active & ~opaque  # skipped for zero alpha: all content is at or behind i
        if jit is not None:
            tops = np.concatenate([top for top, _, _ in pulled]) if len(pulled) > 1 else pulled[0][0]
            ty = np.concatenate([t for _, t, _ in pulled]).astype(np.int64)
            tx = np.concatenate([t for _, _, t in pulled]).astype(np.int64)
            pc = jit.coarse_map(np.ascontiguousarray(self.xb[s]), behind, T // q, np.ascontiguousarray(tops), ty, tx, E // q)
            fc = jit.pushpull(pc, np.float32(_EPS))
        else:
            one = np.repeat(np.repeat(behind, T // q, axis=0), T // q, axis=1).astype(np.float32)[None]
            one_b = be.asarray(one)
            pc = be.contiguous(be.concat([self.xb[s] * one_b, one_b]))
            m0, m1 = E // q, E // q + T // q
            for top, ty, tx in pulled:
                be.put_tiles(pc, be.contiguous(top[:, :, m0:m1, m0:m1]), ty, tx)
            fc = pushpull(pc[:3], pc[3:4], be)
        mp = E // q + 1
        return be.pad_edge(fc, mp, mp, mp, mp)

    def _ramps(self, i: int, own: bool = False) -> tuple:
        """(has_lo, lo, 1 / (c_i - lo), has_hi, c_i, 1 / (hi - c_i)) in float32: the
        ramps R_i and R_{i+1} of layer i's tent weight, for the compiled kernels.
        With ``own`` the second is the step O_i of :func:`own_step` instead."""
        c, f32 = self.centres, np.float32
        has_lo, has_hi = i > 0, i + 1 < len(c)
        lo, inv_lo = (f32(c[i - 1]), f32(1.0 / (c[i] - c[i - 1]))) if has_lo else (f32(0), f32(0))
        if has_hi:
            a, b = own_step(c, i) if own else (c[i], c[i + 1])
            hi, inv_hi = f32(a), f32(1.0 / (b - a))
        else:
            hi, inv_hi = f32(0), f32(0)
        return (has_lo, lo, inv_lo, has_hi, hi, inv_hi)

    def _layer_jit(self, i, front, acc, x_at, dense_in, T, E, half, active, opaque, ty, tx) -> None:
        """:meth:`layer` by the compiled kernels of :mod:`refocus.render._jit`: the
        same steps, window by window in the CPU cache."""
        jit, c, s = self.jit, self.centres, self.scales[i]
        f32 = np.float32
        Wn = T + 2 * E
        has_hi = i + 1 < len(c)
        ty, tx = ty.astype(np.int64), tx.astype(np.int64)
        if dense_in is not None:
            mode, levels = 1, tuple(np.ascontiguousarray(d) for d in dense_in)
        else:
            mode, levels = 0, (self._no_level,) * 4
        # Windows grouped by whether they use the pixels' own nearer shares (the
        # step of own_step) or the plain tent; level-array windows (mode 1) carry
        # them in their inputs already.
        groups = [(True, ty, tx)] if mode == 1 else self._own_groups(i, True, s, T, ty, tx)

        # Frame mode: window n (its one-pixel splat margin dropped) starts at
        # off - E + (ty, tx) * T of the padded frame.
        def src(g, a, b):
            own_k, tyg, txg = g
            return (mode, self.coc_big, self.x_big, self.off - E, levels, tyg[a:b], txg[a:b], T, E, Wn, self._ramps(i, own_k))

        calls = []  # (group, ranges, pulled per range)
        for g in groups:
            ranges = _window_ranges(g[1].size)
            calls.append((g, ranges, _run_ranges(lambda a, b: jit.pull(*src(g, a, b), E - half, E + T + half), ranges)))
        use_fill = has_hi and any(bool(need.any()) for _, _, pulled in calls for _, _, need in pulled)
        if use_fill:
            tops = [(p2, g[1][a:b], g[2][a:b]) for g, ranges, pulled in calls for (a, b), (_, p2, _) in zip(ranges, pulled)]
            fc = np.ascontiguousarray(self._coarse_fill(s, T, E, active, opaque, x_at, tops))
        else:
            fc = np.zeros((3, 1, 1), f32)
        kern = np.ascontiguousarray(self.kern[i], dtype=f32)
        for g, ranges, pulled in calls:
            parts = {r: p for r, p in zip(ranges, pulled)}
            _run_ranges(lambda a, b: jit.blur_composite(*src(g, a, b), parts[(a, b)][0], fc, parts[(a, b)][2], use_fill, kern, acc, front),
                        ranges)

    def layer(self, i: int, front: bool, acc, x_at, dense_in=None) -> None:
        """Composite layer i into acc (4, Hp/s, Wp/s) in place.

        ``dense_in``: optional inputs already at the layer's level, a list of
        (1|3, Hp/s, Wp/s) arrays: alpha, own colour W_i x, hidden coverage, content
        at or behind i; without
        it they are computed from the full-resolution frame in each window.
        """
        be, c, s = self.be, self.centres, self.scales[i]
        n = len(c)
        E = self.E_of[i]
        half = max(self.kern[i].shape) // 2
        j = self.next_used.get(i)
        best = None
        # Small tiles skip more, large ones waste less on window margins: take the
        # size with the least window area to process.
        for T in self.tile_sizes:
            if j is not None:
                # The next used layer is opaque where all CoC within its reach is
                # >= c_j: it (or a nearer one) overwrites or masks layer i there.
                opaque = self._tile_range(s, self.reach[j], False, T) >= c[j]
            else:
                opaque = np.zeros((self.Hp // s // T, self.Wp // s // T), bool)
            active = ~opaque
            if i > 0:  # zero alpha: all CoC within the window's reach is <= c_{i-1}
                active &= self._tile_range(s, (half + 2) * s, True, T) > c[i - 1]
            cost = int(active.sum()) * (T + 2 * E + 2) ** 2
            if best is None or cost < best[0]:
                best = (cost, T, opaque, active)
        _, T, opaque, active = best
        Wn = T + 2 * E
        ty_all, tx_all = np.nonzero(active)
        if ty_all.size == 0:
            return
        if self.jit is not None and (dense_in is not None or s == 1):
            self._layer_jit(i, front, acc, x_at, dense_in, T, E, half, active, opaque, ty_all, tx_all)
            return
        F = (Wn + 2) * s
        o = self.off - (E + 1) * s
        coc_src = self.coc_big[:, o:, o:]
        x_src = self.x_big[:, o:, o:]
        chunk = max(1, _CHUNK_PX // (F * F))

        def D(a):
            return be.down_win(a, s)

        if dense_in is not None:
            dense_pad = be.concat_pad_edge(dense_in, E)
            chunk = max(1, _CHUNK_PX // (Wn * Wn))

        read = slice(E - half, E + T + half)  # what the kernel reads of a window
        # Pass 1: the layer's inputs in every active window, and its pull pyramid.
        parts, hidden_max = [], 0.0
        for j0 in range(0, ty_all.size, chunk):
            ty, tx = ty_all[j0 : j0 + chunk], tx_all[j0 : j0 + chunk]
            if dense_in is not None:
                wv = be.windows(dense_pad, Wn, T, ty, tx)
                part = {"ty": ty, "tx": tx, "alpha": wv[:, 0:1], "colour": wv[:, 1:4]}
                if i + 1 < n:
                    hid = be.clip(wv[:, 4:5], 0.0, 1.0)
                    part["need"] = np.nonzero(be.window_max(hid[:, :, read, read]) > 1e-4)[0]
                    hidden_max = max(hidden_max, 1.0 if part["need"].size else 0.0)
                    part["hidden"] = hid
                    pyr = [be.concat([wv[:, 5:8], 1.0 - hid], axis=1)]
                    for _ in range(_BLOCK.bit_length() - 1):
                        pyr.append(be.box_down2_win(pyr[-1]))
                    part["pyr"] = pyr
                parts.append(part)
                continue
            cw = be.windows(coc_src, F, T * s, ty, tx)
            xw = be.windows(x_src, F, T * s, ty, tx)
            if s == 1:
                X = D(xw)
            else:  # D(x) is shared by all layers of the level: gather it
                if (s, E) not in self.xs_pad:
                    self.xs_pad[(s, E)] = be.pad_edge(x_at(s), E, E, E, E)
                X = be.windows(self.xs_pad[(s, E)], Wn, T, ty, tx)
            if i > 0:
                r_lo = self._ramp(cw, c[i - 1], c[i])
                alpha, colour = D(r_lo), D(r_lo * xw)
            else:
                alpha, colour = be.zeros(X[:, :1].shape) + 1.0, X + 0.0
            part = {"ty": ty, "tx": tx, "alpha": alpha}
            if i + 1 < n:
                # O_i (nearer, other surfaces) where the own shares apply, else R_{i+1}.
                ok = self._own_ok(i, s, T, ty, tx)
                r_hi = self._ramp(cw, *own_step(c, i)) if ok.all() else self._ramp(cw, c[i], c[i + 1])
                if ok.any() and not ok.all():
                    r_hi[ok] = self._ramp(cw[ok], *own_step(c, i))
                hid = be.clip(D(r_hi), 0.0, 1.0)
                hx = D(r_hi * xw)
                colour -= hx
                X -= hx  # content at or behind layer i
                part["need"] = np.nonzero(be.window_max(hid[:, :, read, read]) > 1e-4)[0]
                hidden_max = max(hidden_max, 1.0 if part["need"].size else 0.0)
                part["hidden"] = hid
                pyr = [be.concat([X, 1.0 - hid], axis=1)]
                for _ in range(_BLOCK.bit_length() - 1):
                    pyr.append(be.box_down2_win(pyr[-1]))
                part["pyr"] = pyr
            part["colour"] = colour
            parts.append(part)
            del cw, xw, X

        if hidden_max > 1e-4:
            fc = self._coarse_fill(s, T, E, active, opaque, x_at, [(p["pyr"][-1], p["ty"], p["tx"]) for p in parts])

        # Pass 2: fine push-pull levels, blur and composite, per chunk.
        k = self.kern[i]
        hy, hx_ = k.shape[0] // 2, k.shape[1] // 2
        for part in parts:
            ty, tx = part["ty"], part["tx"]
            colour = part["colour"]
            need = part.get("need")
            if need is not None and need.size and hidden_max > 1e-4:
                # The fill is pushed down only in the windows where it shows.
                sel = None if need.size == ty.size else need
                pyr = part["pyr"] if sel is None else [p[sel] for p in part["pyr"]]
                tys, txs = (ty, tx) if sel is None else (ty[sel], tx[sel])
                f = be.upsample2_win(be.windows(fc, Wn // _BLOCK + 2, T // _BLOCK, tys, txs))[:, :, 2:-2, 2:-2]
                for lev in range(len(pyr) - 2, -1, -1):
                    if lev < len(pyr) - 2:
                        f = be.upsample2_win(f)
                    p = pyr[lev]
                    f *= 1.0 - p[:, 3:]
                    f += p[:, :3]
                if sel is None:
                    f *= part["hidden"]
                    colour += f
                else:
                    f *= part["hidden"][sel]
                    colour[sel] += f
            stack = be.concat([colour, part["alpha"]], axis=1)[:, :, E - hy : E + T + hy, E - hx_ : E + T + hx_]
            blurred = be.conv_valid_win(stack, k)
            a = be.clip(blurred[:, 3:4], 0.0, 1.0)
            tiles = be.get_tiles(acc, T, ty, tx)
            if front:
                t_rest = 1.0 - tiles[:, 3:4]
                add_(tiles[:, :3], t_rest * blurred[:, :3])
                add_(tiles[:, 3:4], t_rest * a)
            else:
                tiles *= 1.0 - a
                add_(tiles[:, :3], blurred[:, :3])
                add_(tiles[:, 3:4], a)
            be.put_tiles(acc, tiles, ty, tx)


def _box_down(x, q: int, be):
    """Downsample by q (a power of two) in factor-2 steps of centroid-preserving splats.

    A plain block average would move small bright spots to their block centre
    (by up to (q - 1) / 2 pixels); the splat keeps them where they are.
    """
    while q > 1:
        x = be.downsample(x, 2)
        q //= 2
    return x


#: Run the sweeps (or their parts) in two threads on the numpy path (see render_layers).
_THREADS = True
