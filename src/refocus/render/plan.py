"""The renderer's plan: which layers, at which scale, on which tiles.

Everything the algorithm decides before it touches the image, and its constants,
in one place: the layers' CoC centres (:func:`layer_centres`) and the pixels'
warped CoC inside the two bands around the focal plane (:func:`moment_matched`),
which layers are used (:func:`used_layers`), each layer's downsampling
(:func:`layer_scale`) and blur kernel (:func:`render_kernel`), the step that stands
for other, nearer surfaces (:func:`own_step`), and the tile geometry of the
tile-sparse layers (:func:`sparse_tile_max`, :func:`window_margin`,
:func:`sparse_margin`). The functions that take a backend ``be`` call its
operations only.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from refocus import aperture as ap

#: Smallest alpha or weight divided by (premultiplied colours, the fill's weights).
EPS = 1e-6

#: A 4 x 4 px block whose CoC spans more than this many layer spacings holds a
#: depth jump (see own_step). Chosen on hci-antinous (bokeh, 6 cases) and the
#: smooth random disparity of tests/test_render.py: 1 and 2 flip the decision on
#: steep smooth surfaces (tile-sparse and dense paths then disagree by 6e-3 on
#: average); 3 gives 45.32 dB on antinous, 4 gives 44.79 dB (before: 45.00).
JUMP_SPACINGS = 3.0

#: Below this radius (px at the layer's level) a layer's kernel is a Gaussian of the
#: disc's second moment; up to twice it, a blend of the two (see render_kernel).
SMOOTH_BELOW_PX = 1.5

#: Block side (pixels at the layer's level) of the global coarse push-pull fill;
#: windows carry one block of extra margin so the local push steps are exact.
BLOCK = 4
#: The push-pull fill's clamped pulls (``ArrayBackend.pull_down2``): a 2 x 2 block
#: whose mean weight reaches ``PULL_FULL`` counts as fully known one level up, at
#: the pyramid levels from :func:`pull_clamp_level` on. Chosen on the bokeh bench
#: (hci-antinous at half size, 6 cases; the 6 synthetic scenes) and the
#: white-over-black ramp of tests/test_render_bands.py (leak in 8-bit levels
#: beyond the white rows' blur): unclamped 27.4 levels; clamped at every level
#: 2.8 levels, synthetic scenes 00/01 +3.8 dB but antinous middle/far -0.4 to
#: -0.8 dB; from level 3 (blocks of 8 px at the layer's level), 3.5 levels and
#: every case within 0.02 dB or better but synthetic scene03 (-0.26 dB); from
#: level 4, 8.7 levels. 0.5 instead of 0.25 leaks more (4.8 levels from level 3).
PULL_FULL = 0.25


def pull_clamp_level(full_res_max_radius_px: float) -> int:
    """The first pyramid level whose pulls clamp: blocks of 8 px at the layer's
    level, twice that when the layers' kernels are twice as wide there (quality
    "high": radii of 6-12 px at a layer's level instead of 3-6). Measured on the
    bokeh bench at quality "high": from level 3, antinous R4 middle/far lost 0.5
    and 0.4 dB; from level 4 they are unchanged (+0.00, +0.02 dB) and R4-near
    keeps +1.1 dB. Never below the block level + 1: the tile-sparse windows pull
    their own levels up to ``BLOCK`` unclamped."""
    return 3 + max(0, int(math.floor(math.log2(full_res_max_radius_px / 6.0))))


#: Layers at this downsampling or finer are rendered tile-sparse.
SPARSE_MAX_SCALE = 2
#: Pixels per batch of windows: bounds their memory, and keeps a batch's arrays in
#: the CPU cache (several times faster than streaming from memory).
CHUNK_PX = 300_000


def smoothstep(u):
    """3u^2 - 2u^3 of u clipped to [0, 1], on numpy arrays or tensors alike."""
    u = u.clip(0.0, 1.0)
    return u * u * (3.0 - 2.0 * u)


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
    # Merge layers closer than a tenth of the minimum step, but keep both ends and
    # the focal plane: without a layer at 0, moment_matched is off and the near-sharp
    # pixels get the linear tent, 2-5 x the blur; a focal plane a hair behind the
    # farthest surface then rendered softer than one at or beyond it, and a focus
    # pull stepped (tests/test_render_pull.py).
    keep = [0]
    for i in range(1, len(c)):
        if c[i] - c[keep[-1]] > 0.1 * min_step or i == len(c) - 1 or c[i] == 0.0:
            keep.append(i)
    return c[keep]


def layer_scale(radius_px: float, r0: float) -> int:
    """Downsampling factor (power of two) for a layer of this |CoC|."""
    if radius_px < 2 * r0:
        return 1
    return 2 ** int(math.floor(math.log2(radius_px / r0)))


def render_kernel(aper, radius_px: float, front: bool = False, cats_eye_offset: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """The kernel a layer is blurred with: the aperture's (:func:`refocus.aperture.kernel`),
    except at the pixel scale.

    The aperture kernel is rasterised by area (the disc's coverage of each pixel),
    i.e. the disc convolved with a pixel's box. A photo already carries its pixels'
    box, so that kernel adds the disc's mean squared radius r^2 / 2 *plus* the box's
    1/6 px^2: at r = 0.8 px 0.52 px^2 instead of 0.32, a blur 60 % too wide, which
    is what sub-pixel CoCs on real captures get. Below ``SMOOTH_BELOW_PX`` the
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
    if r >= 2 * SMOOTH_BELOW_PX or r < 0.05:
        return k
    half = max(int(np.ceil(1.5 * r)), k.shape[0] // 2)
    g = _sampled_gaussian(r * r / 4.0, half)
    w = float(np.clip((2 * SMOOTH_BELOW_PX - r) / SMOOTH_BELOW_PX, 0.0, 1.0))
    pad = half - k.shape[0] // 2
    out = w * g + (1.0 - w) * np.pad(k.astype(np.float64), pad)
    return (out / out.sum()).astype(np.float32)


def cats_eye_varies(aper, radius_px: float) -> bool:
    """Whether a layer of |CoC| ``radius_px`` (px at its level) takes a kernel that
    varies over the photo: a cat's-eye, on a kernel of half a pixel or more (below,
    the clipped pupil changes a pixel-sized kernel by nothing the eye can tell)."""
    return aper.cats_eye > 0 and radius_px >= 0.5


#: Largest change of the cat's-eye kernel between neighbouring cells
#: (:class:`CatsEyeCells`), px at the layer's level: the shift of the clipping disc's edge.
CELL_SHIFT_PX = 0.5
#: At most this many cells along a side.
MAX_CELLS = 33
#: Cells not smaller than this (px at the layer's level) where there are 3 or more.
MIN_CELL_PX = 4


def cell_counts(cats_eye: float, radius: float, h: int, w: int, full_hw: tuple[int, int]) -> tuple[int, int]:
    """Cells (rows, columns) of :class:`CatsEyeCells` for a layer of |CoC| ``radius``
    (px at its level, ``h`` x ``w``) in a photo of ``full_hw`` px: enough that the
    clipping disc's edge moves by at most ``CELL_SHIFT_PX`` between neighbours (at most
    ``MAX_CELLS``), an odd number, so that a cell is centred on the frame: a light
    there keeps its whole disc."""
    H, W = full_hw
    half_diag = max(math.hypot((W - 1) / 2, (H - 1) / 2), 1e-9)

    def count(span_px: float, side: int) -> int:
        n = max(1, math.ceil(span_px / CELL_SHIFT_PX))
        n_max = min(MAX_CELLS, max(3, side // MIN_CELL_PX))
        return int(min(n + 1 - n % 2, n_max - 1 + n_max % 2))

    # The clipping disc moves by cats_eye pupil radii per half diagonal
    # (aperture.cats_eye_offset); its edge by that times the kernel's radius.
    span_y, span_x = (cats_eye * (n - 1) / half_diag * radius for n in (H, W))
    return count(span_y, h), count(span_x, w)


class CatsEyeCells:
    """A cat's-eye layer's kernels on a grid of cells of its level (:func:`cell_counts`):
    each cell takes the kernel of its centre, computed when first asked for.

    ``photo_hw``: the photo's size (px), which the positions refer to: the frame's grid
    padding must not move the cat's-eye's centre.
    """

    def __init__(self, aper, radius_px: float, front: bool, h: int, w: int, scale: int, photo_hw: tuple[int, int]):
        self.aper, self.radius_px, self.front, self.scale, self.photo_hw = aper, float(radius_px), front, scale, photo_hw
        n_y, n_x = cell_counts(aper.cats_eye, radius_px, h, w, photo_hw)
        self.y_edges = np.linspace(0, h, n_y + 1).round().astype(int)
        self.x_edges = np.linspace(0, w, n_x + 1).round().astype(int)
        self._kern: dict[tuple[int, int], np.ndarray] = {}

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.y_edges) - 1, len(self.x_edges) - 1

    def min_cell_px(self) -> int:
        """The smallest cell side, px at the layer's level."""
        return int(min(np.diff(self.y_edges).min(), np.diff(self.x_edges).min()))

    def cell_of(self, y, x) -> tuple[np.ndarray, np.ndarray]:
        """The cells (row, column) holding level positions ``y``, ``x`` (px)."""
        cy = np.clip(np.searchsorted(self.y_edges, y, side="right") - 1, 0, len(self.y_edges) - 2)
        cx = np.clip(np.searchsorted(self.x_edges, x, side="right") - 1, 0, len(self.x_edges) - 2)
        return cy, cx

    def kernel(self, cy: int, cx: int) -> np.ndarray:
        """The kernel of cell (cy, cx): that of its centre in the photo."""
        key = (int(cy), int(cx))
        if key not in self._kern:
            H, W = self.photo_hw
            # A level pixel i covers frame pixels i*scale .. (i+1)*scale - 1.
            px = (self.x_edges[cx] + self.x_edges[cx + 1]) / 2 * self.scale - 0.5
            py = (self.y_edges[cy] + self.y_edges[cy + 1]) / 2 * self.scale - 0.5
            off = ap.cats_eye_offset(self.aper.cats_eye, px, py, W, H)
            self._kern[key] = render_kernel(self.aper, self.radius_px, front=self.front, cats_eye_offset=off)
        return self._kern[key]


#: The tile-sparse layers' tile sides (px at the layer's level): the smallest is the
#: smallest cell a cat's-eye layer may be rendered tile-sparse with.
SPARSE_TILE_SIZES = (32, 64, 128, 256, 512)


def cats_eye_tiles_fit(aper, radius_px: float, h: int, w: int, photo_hw: tuple[int, int]) -> bool:
    """Whether a layer of |CoC| ``radius_px`` (px at its level, ``h`` x ``w``) can be
    rendered tile-sparse: one kernel per tile, that of the cat's-eye cell holding the
    tile's centre, needs tiles no larger than the cells (:class:`CatsEyeCells`);
    else a light far from a tile's centre takes the wrong kernel (in a 121 px frame
    a light at the centre and one in a corner shared a 32 px tile and its kernel)."""
    if not cats_eye_varies(aper, radius_px):
        return True
    n_y, n_x = cell_counts(aper.cats_eye, radius_px, h, w, photo_hw)
    return min(h // n_y, w // n_x) >= SPARSE_TILE_SIZES[0]


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


def jump_limit_px(centres: np.ndarray, i: int, min_step_px: float) -> float:
    """The largest CoC span of a 4 x 4 px block that is not a depth jump for layer
    ``i``'s own shares (:func:`own_step`): ``JUMP_SPACINGS`` layer spacings, the
    spacing never taken below the plan's minimum step. A layer a hair from its
    neighbour (the focal plane beside the far end, which layer_centres keeps) would
    otherwise read every smooth slope as an edge and drop its own shares there."""
    return JUMP_SPACINGS * max(float(centres[i] - centres[i - 1]), float(min_step_px))


def own_step(centres: np.ndarray, i: int) -> tuple[float, float]:
    """The ramp ``(lo, hi)`` that stands for the step O_i = [CoC >= c_{i+1}]:
    coverage of layer ``i`` by other, nearer surfaces (see the module docstring).

    A ramp over the last thousandth of the band, so that the compiled kernels'
    ramps express it, and a CoC exactly at ``c_{i+1}`` (a flat surface on that
    layer, e.g. an in-focus subject at CoC 0) counts as another surface.

    The own share is used only where no depth jump lies within layer ``i``'s blur
    reach (no 4 x 4 px block whose CoC spans more than ``JUMP_SPACINGS`` times the
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


def moment_matched(coc, centres: np.ndarray, be):
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


def used_layers(coc, centres: np.ndarray, be, threads) -> tuple[np.ndarray, np.ndarray]:
    """Which layers have a non-zero tent weight somewhere (bool per layer), and how
    many pixels lie in each layer's band.

    A pixel in (c[j-1], c[j]] weighs on layers j-1 and j; one exactly at c[j] marks
    j-1 too, which only costs an empty layer. One binary search per pixel and a
    bincount (the backend's band counts): no sort of the frame, no per-pixel weights.
    """
    n = len(centres)
    if n == 1:
        return np.ones(1, dtype=bool), np.array([coc.size])
    counts = be.band_counts(coc, centres.astype(np.float32), threads)
    band = counts[:n].copy()
    band[:-1] += counts[1:n]
    hit = counts > 0
    used = hit[:n].copy()
    used[:-1] |= hit[1:n]
    return used, band


def sparse_tile_max(h: int, w: int, s_max: int) -> int:
    """Largest tile side used by the tile-sparse layers: the frame is padded to a
    multiple of it (times the coarsest sparse level), so keep that padding small."""
    t = 64
    while t < 512 and 2 * t * s_max <= max(h, w) / 2:
        t *= 2
    # The size above follows the long side; a panorama or a strip padded to it
    # rendered mostly padding (150 x 6000 px padded to 1024 x 6144: 7 x the pixels,
    # 7.2 s and 0.92 GB; 12000 x 1500 to 2048 x 12288, 1.4 x). Smaller tiles until
    # the padding adds at most 1/8 of the frame (64 px tiles keep the 64 px band tiles).
    while t > 64 and _padded_px(h, w, t * s_max) > PAD_MAX_RATIO * h * w:
        t //= 2
    return t


#: Largest padded frame the tile-sparse grid may make, relative to the image.
PAD_MAX_RATIO = 1.125


def _padded_px(h: int, w: int, grid: int) -> int:
    return -(-h // grid) * grid * (-(-w // grid) * grid)


def window_margin(half_px: int) -> int:
    """Margin of a tile's window at the layer's level: the kernel halo rounded up to
    a fill block, plus one block (so the window's push-pull levels are exact)."""
    return -(-half_px // BLOCK) * BLOCK + BLOCK


def sparse_margin(centres, scales: dict[int, int], ids, aperture) -> int:
    """Full-resolution padding the windows of the tile-sparse layers ``ids`` need
    around the frame (their kernel halo, a fill block and the splat margin at the
    coarsest of their levels)."""
    S = max(scales[i] for i in ids)
    half = max(max(render_kernel(aperture, abs(float(centres[i])) / scales[i], front=centres[i] > 0).shape) // 2 for i in ids)
    return (window_margin(half) + 1) * S
