"""Ground-truth refocusing from light fields (synthetic-aperture photography).

A light field here is an N x N grid of views (files ``input_Cam000.png`` ... with
index ``row * N + col``, as in the HCI 4D light-field benchmark), with an optional
disparity map of the centre view in pixels per view step (``gt_disp_lowres.pfm``).

Averaging, in linear light, the views inside a disc of radius R (view steps) around
the centre, each shifted so that disparity ``s`` aligns, is exactly the photo a lens
with that aperture takes when focused at ``s`` (partial occlusion included). A scene
point of disparity ``d`` is spread over a disc of radius ``R * |d - s|`` px.

Conventions (verified, see ``tests/test_lightfield.py``)
--------------------------------------------------------
* View (u, v) is at column u, row v; the centre is ``c = (N - 1) / 2``.
* Sampling view (u, v) at ``(x - s*(u - c), y - s*(v - c))`` brings disparity ``s``
  into focus (checked by sharpness on hci-antinous: the opposite sign blurs the
  subject as ``s`` approaches its disparity).
* HCI disparity is already "larger = nearer" (the bust has larger values than the
  wall behind it), the project's convention, so it is used as is. The renderer's
  CoC on such a light field is therefore ``coc_px = R * (d - s)``, positive in front
  of the focal plane.

The benchmark protocol built on this is documented in :func:`lightfield_cases`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from refocus.errors import RefocusError
from refocus.io.color import linear_to_srgb, srgb_to_linear

_VIEW_RE = re.compile(r"^input_Cam(\d{3})\.png$", re.IGNORECASE)
DISPARITY_FILE = "gt_disp_lowres.pfm"

#: Focus positions of the protocol, as percentiles of the (half-resolution) disparity.
FOCUS_PERCENTILES = {"near": 95.0, "middle": 50.0, "far": 5.0}
#: Aperture radii of the protocol, view steps.
RADII = (2, 4)
#: Refocus task pairs (source focus -> target focus).
REFOCUS_PAIRS = (("near", "far"), ("far", "near"), ("middle", "near"))


@dataclass
class LightField:
    """An N x N light field in linear light.

    Attributes
    ----------
    views_linear:
        float32 array (N, N, H, W, 3), indexed ``[row v, column u]``, linear light.
    disparity:
        float32 H x W disparity of the centre view, px per view step, larger =
        nearer; None when the light field has none.
    name:
        Short name (the folder's).
    """

    views_linear: np.ndarray
    disparity: np.ndarray | None
    name: str

    @property
    def grid(self) -> int:
        """Number of views per side, N."""
        return int(self.views_linear.shape[0])

    @property
    def centre(self) -> float:
        """Index of the centre view along each axis, ``(N - 1) / 2``."""
        return (self.grid - 1) / 2.0

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) of a view, px."""
        return tuple(self.views_linear.shape[2:4])

    def centre_view_linear(self) -> np.ndarray:
        """The centre view (linear light); for even N, the mean of the 4 central views."""
        c = self.centre
        lo, hi = math.floor(c), math.ceil(c)
        return self.views_linear[lo : hi + 1, lo : hi + 1].mean(axis=(0, 1))

    def centre_view_srgb(self) -> np.ndarray:
        """The centre view, sRGB float32 in [0, 1] (the pinhole, all-in-focus photo)."""
        return np.clip(linear_to_srgb(self.centre_view_linear()), 0.0, 1.0).astype(np.float32)


def _area_down2(x: np.ndarray) -> np.ndarray:
    """2x2 box average over the first two axes (odd trailing row/column dropped)."""
    h, w = x.shape[0] // 2 * 2, x.shape[1] // 2 * 2
    x = x[:h, :w]
    return 0.25 * (x[0::2, 0::2] + x[1::2, 0::2] + x[0::2, 1::2] + x[1::2, 1::2])


def load_lightfield(folder: str | Path, grid: int | None = None, half: bool = False) -> LightField:
    """Load a light field stored as a folder of views.

    Parameters
    ----------
    folder:
        Folder with ``input_Cam000.png`` ... (index ``row * N + col``) and optionally
        ``gt_disp_lowres.pfm`` (disparity of the centre view, px per view step).
    grid:
        N, views per side; inferred from the number of views (which must then be a
        perfect square) when None.
    half:
        Halve the resolution: views are area-averaged 2x2 in linear light, the
        disparity is area-averaged and divided by 2 (it is in pixels).

    Returns
    -------
    The :class:`LightField`.
    """
    from refocus.io import read_image
    from refocus.io.depthfile import read_pfm

    folder = Path(folder)
    if not folder.is_dir():
        raise RefocusError(f"light-field folder not found: {folder}")
    files = {}
    for p in folder.iterdir():
        m = _VIEW_RE.match(p.name)
        if m:
            files[int(m.group(1))] = p
    if not files:
        raise RefocusError(f"no views named input_CamNNN.png (HCI) or IMG_*_AA_BB.png (decoded Lytro) in {folder}")
    n_views = len(files)
    inferred = grid is None
    if grid is None:
        # The highest index tells the grid even when views are missing, so the error
        # can name them rather than ask for a grid size the command has no option for.
        grid = math.isqrt(max(files)) + 1
    missing = [i for i in range(grid * grid) if i not in files]
    extra = sorted(i for i in files if i >= grid * grid)
    if missing or extra:
        what = (f"input_Cam{missing[0]:03d}.png" + (f" and {len(missing) - 1} more" if len(missing) > 1 else "") + " missing"
                if missing else f"input_Cam{extra[0]:03d}.png is beyond it")
        square = math.isqrt(n_views) ** 2 == n_views
        raise RefocusError(f"{folder.name}: " + (f"{n_views} views is not a square grid; " if inferred and not square else "")
                           + f"expected views input_Cam000..{grid * grid - 1:03d}.png for a {grid}x{grid} grid "
                           f"(index row * {grid} + column): {what}")
    views = None
    for idx in range(grid * grid):
        rgb, _ = read_image(files[idx])
        lin = srgb_to_linear(rgb).astype(np.float32)
        if half:
            lin = _area_down2(lin)
        if views is None:
            views = np.empty((grid, grid) + lin.shape, dtype=np.float32)
        elif lin.shape != views.shape[2:]:
            raise RefocusError(f"{folder.name}: {files[idx].name} is {lin.shape[1]}x{lin.shape[0]} px but {files[0].name} is "
                               f"{views.shape[3]}x{views.shape[2]}; all views must be the same size")
        views[idx // grid, idx % grid] = lin
    disparity = None
    dpath = folder / DISPARITY_FILE
    if dpath.is_file():
        disparity = read_pfm(dpath)
        bad = int((~np.isfinite(disparity)).sum())
        if bad:
            # Ground truth is not filled in: the focus percentiles and every CoC depend on it.
            raise RefocusError(f"{folder.name}: {dpath.name} has {bad} NaN or infinite values; the benchmark needs "
                               "a finite disparity at every pixel")
        if half:
            disparity = _area_down2(disparity) / 2.0
        if disparity.shape != views.shape[2:4]:
            raise RefocusError(f"{dpath.name} is {disparity.shape[1]}x{disparity.shape[0]}, views are {views.shape[3]}x{views.shape[2]}")
        disparity = disparity.astype(np.float32)
    return LightField(views_linear=views, disparity=disparity, name=folder.name)


#: Sub-aperture views of a decoded Lytro capture: IMG_<capture>_<index>_<AA>_<BB>.png.
_LYTRO_RE = re.compile(r"^IMG_\d+_\d+_(\d{2})_(\d{2})\.png$", re.IGNORECASE)


def is_lytro_folder(folder: str | Path) -> bool:
    """Whether ``folder`` holds decoded Lytro sub-aperture views (``IMG_*_AA_BB.png``)."""
    folder = Path(folder)
    return folder.is_dir() and any(_LYTRO_RE.match(p.name) for p in folder.iterdir())


def load_lytro(folder: str | Path, grid: int = 9, estimate: bool = True, equalise: bool = True) -> LightField:
    """Load a decoded Lytro capture (a 10 x 10 grid of views) as a light field.

    Views are named ``IMG_<capture>_<index>_<AA>_<BB>.png`` with grid positions AA,
    BB in 01..10. AA is the horizontal position (u) and BB the vertical one (v):
    measured on lytro1g-0001 and -0002, view (AA, BB) = (2, 5) is shifted by about
    1.9 px along x against (5, 5), and (5, 2) along y. The ``grid`` x ``grid``
    sub-grid AA, BB in 01..grid is kept, so that for odd ``grid`` its centre
    (view (5, 5) for 9) is a real view, the pinhole photo. The sign of the Lytro's
    disparity matches the project's convention (the flowers, nearer than the
    ground, have the larger disparity), so no axis is flipped.

    A Lytro capture comes without depth: with ``estimate`` the centre view's
    disparity is estimated from the views (:func:`estimate_disparity`), as a real
    user's depth always is.

    With ``equalise`` (the benchmark's protocol since 2026-12-05) every view is
    softened to the softest view's sharpness first
    (:func:`equalise_view_sharpness`): the decoder's resampling leaves the views
    of different rows unequally sharp, and without this the ground truth (an
    average of views) is sharper than the centre view for reasons unrelated to
    depth or aperture.
    """
    from refocus.io import read_image

    folder = Path(folder)
    if not folder.is_dir():
        raise RefocusError(f"light-field folder not found: {folder}")
    files = {}
    for p in folder.iterdir():
        m = _LYTRO_RE.match(p.name)
        if m:
            files[(int(m.group(1)), int(m.group(2)))] = p
    missing = [(a, b) for a in range(1, grid + 1) for b in range(1, grid + 1) if (a, b) not in files]
    have = max((k for k in range(1, grid) if all((a, b) in files for a in range(1, k + 1) for b in range(1, k + 1))),
               default=0)
    if missing and have and all(a > have or b > have for a, b in missing) and len(missing) == grid * grid - have * have:
        # A decoder that kept fewer views (a 7 x 7 grid) is not a capture with holes.
        raise RefocusError(f"{folder.name}: holds a {have} x {have} grid of Lytro views (IMG_*_AA_BB.png, AA, BB = "
                           f"01..{have:02d}); the benchmark uses {grid} x {grid} (01..{grid:02d})")
    if missing:
        raise RefocusError(f"{folder.name}: Lytro view {missing[0][0]:02d}_{missing[0][1]:02d} is missing"
                           + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
                           + f"; the benchmark uses views AA, BB = 01..{grid:02d} (IMG_*_AA_BB.png)")
    views = None
    for (a, b), path in files.items():
        if a > grid or b > grid:
            continue
        rgb, _ = read_image(path)
        lin = srgb_to_linear(rgb).astype(np.float32)
        if views is None:
            views = np.empty((grid, grid) + lin.shape, dtype=np.float32)
        elif lin.shape != views.shape[2:]:
            raise RefocusError(f"{folder.name}: {path.name} is {lin.shape[1]}x{lin.shape[0]} px, other views are "
                               f"{views.shape[3]}x{views.shape[2]}; all views must be the same size")
        views[b - 1, a - 1] = lin  # [row v = BB, column u = AA]
    if equalise:
        views = equalise_view_sharpness(views)
    lf = LightField(views_linear=views, disparity=None, name=folder.name)
    if estimate:
        lf.disparity = estimate_disparity(lf)
    return lf


#: Border left out of the sharpness measure, px (the views' edges carry the
#: decoder's padding and the boundary mode of the filter).
_SHARPNESS_BORDER_PX = 16


def _view_sharpness_terms(view: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Grey level of a view and its 3-tap second difference along ``axis``, both
    cropped: the terms of :func:`equalise_view_sharpness`'s quadratic."""
    from scipy.ndimage import correlate1d

    grey = view.mean(axis=-1, dtype=np.float64)
    lap = correlate1d(grey, [1.0, -2.0, 1.0], axis=axis, mode="nearest")
    b = _SHARPNESS_BORDER_PX
    return grey[b:-b, b:-b], lap[b:-b, b:-b]


def _sharpness(grey: np.ndarray, axis: int) -> float:
    """Mean squared first difference along ``axis`` over the variance: a
    brightness-free measure of how much fine detail an image holds."""
    return float((np.diff(grey, axis=axis) ** 2).mean() / grey.var())


def equalise_view_sharpness(views_linear: np.ndarray) -> np.ndarray:
    """Soften each view of an N x N light field to the softest view's sharpness.

    A Lytro's views are resampled from the hexagonal microlens grid, and the
    resampling blur depends on the view's position: on lytro1g-0001 the squared
    vertical gradient of rows of views ranges from 1.00 (the centre row) to 1.32
    times the centre view's, with little change along a row; on lytro1g-0002 from
    0.97 to 1.17. An average of views is then sharper than the centre view where
    the views align, which penalises any added blur in the bokeh task (a loss that
    no renderer can avoid) and any sharpening in the deblur task.

    Each view, per axis (rows first, then columns), is filtered with the 3-tap
    kernel ``[a, 1 - 2a, a]`` (variance 2a px²), with ``a`` in [0, 0.25] chosen so
    that its sharpness (mean squared first difference over variance, grey level,
    16 px border left out) equals the softest view's. The sharpness of
    ``x + a·Lx`` (L the second difference) is a ratio of two quadratics in ``a``,
    so ``a`` is solved for exactly. Views already at the softest level are
    unchanged. Nothing is chosen per scene: the target is the capture's own
    softest view.

    Parameters
    ----------
    views_linear:
        (N, N, H, W, 3) float32, linear light.

    Returns
    -------
    A new array of the same shape and dtype.
    """
    from scipy.ndimage import correlate1d

    views = np.array(views_linear, dtype=np.float32, copy=True)
    n_v, n_u = views.shape[:2]
    for axis in (0, 1):
        terms = [[_view_sharpness_terms(views[v, u], axis) for u in range(n_u)] for v in range(n_v)]
        level = np.array([[_sharpness(g, axis) for g, _ in row] for row in terms])
        target = float(level.min())
        for v in range(n_v):
            for u in range(n_u):
                a = _softening_weight(*terms[v][u], axis, target)
                if a > 0.0:
                    views[v, u] = correlate1d(views[v, u], [a, 1.0 - 2.0 * a, a], axis=axis, mode="nearest")
    return views


def _softening_weight(grey: np.ndarray, lap: np.ndarray, axis: int, target: float) -> float:
    """The ``a`` in [0, 0.25] at which ``grey + a·lap`` has sharpness ``target``
    (0 when it is already at or below it)."""
    g0, g1 = np.diff(grey, axis=axis), np.diff(lap, axis=axis)
    x0, x1 = grey - grey.mean(), lap - lap.mean()
    n_g, n_x = g0.size, x0.size
    # sharpness(a) = (A + 2aB + a²C) / (V + 2aW + a²Z); solve numerator = target · denominator.
    A, B, C = (g0 * g0).sum() / n_g, (g0 * g1).sum() / n_g, (g1 * g1).sum() / n_g
    V, W, Z = (x0 * x0).sum() / n_x, (x0 * x1).sum() / n_x, (x1 * x1).sum() / n_x
    q2, q1, q0 = C - target * Z, 2.0 * (B - target * W), A - target * V
    if q0 <= 0.0:
        return 0.0
    roots = np.roots([q2, q1, q0]) if abs(q2) > 1e-30 else np.array([-q0 / q1])
    real = [float(r.real) for r in np.atleast_1d(roots) if abs(r.imag) < 1e-12 and 0.0 < r.real <= 0.25]
    return min(real) if real else 0.25


def estimate_disparity(
    lf: LightField, limit: float = 2.0, coarse_step: float = 0.1, step: float = 0.01, window_px: int = 7
) -> np.ndarray:
    """Disparity of the centre view (px per view step, larger = nearer) by a plane sweep.

    For each candidate s the views are shifted to bring s into focus
    (:func:`refocus_linear`'s convention) and the per-pixel variance across the
    views, summed over the sRGB channels and averaged over ``window_px`` squares, is
    the matching cost; a coarse sweep over [-limit, limit] finds the scene's range,
    a fine one with ``step`` (and a parabola through the three best costs) finds
    each pixel's minimum, and a 5 x 5 median removes isolated outliers. Every other
    view in each direction is used (25 of a 9 x 9 grid, the outermost included: the
    widest baseline), and views are shifted in the Fourier domain (exact for
    band-limited content; edge-padded by the largest shift, so nothing wraps
    around). Textureless regions keep a noisy estimate, as real estimated depth does.
    """
    from scipy import fft, ndimage

    g = lf.grid
    c = lf.centre
    idx = list(range(0, g, 2)) if g >= 5 else list(range(g))
    if (g - 1) % 2 == 1:  # even grid: keep the outer views on both sides
        idx = sorted(set(idx) | {g - 1})
    pad = int(math.ceil(limit * (g - 1) / 2)) + 2
    srgb = np.pad(np.clip(linear_to_srgb(lf.views_linear), 0.0, 1.0), ((0, 0), (0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
    h, w = srgb.shape[2:4]
    ky = fft.fftfreq(h)[:, None]
    kx = fft.rfftfreq(w)[None, :]
    spectra = [(v - c, u - c, fft.rfft2(srgb[v, u], axes=(0, 1))) for v in idx for u in idx]
    n = len(spectra)

    def cost(s: float) -> np.ndarray:
        acc = np.zeros((h, w, 3))
        acc2 = np.zeros((h, w, 3))
        for dv, du, spec in spectra:
            # Bring s into focus: sample view (u, v) at x - s du, y - s dv.
            phase = np.exp(-2j * np.pi * (kx * (s * du) + ky * (s * dv)))[..., None]
            x = fft.irfft2(spec * phase, s=(h, w), axes=(0, 1))
            acc += x
            acc2 += x * x
        var = (acc2 / n - (acc / n) ** 2).sum(axis=2)
        return ndimage.uniform_filter(var, window_px, mode="nearest")[pad:-pad, pad:-pad]

    coarse = np.arange(-limit, limit + 1e-9, coarse_step)
    best = coarse[np.argmin(np.stack([cost(s) for s in coarse]), axis=0)]
    lo = float(np.percentile(best, 1)) - coarse_step
    hi = float(np.percentile(best, 99)) + coarse_step
    fine = np.arange(lo, hi + 1e-9, step)
    costs = np.stack([cost(s) for s in fine])
    k = np.clip(np.argmin(costs, axis=0), 1, len(fine) - 2)
    c0 = np.take_along_axis(costs, (k - 1)[None], 0)[0]
    c1 = np.take_along_axis(costs, k[None], 0)[0]
    c2 = np.take_along_axis(costs, (k + 1)[None], 0)[0]
    denom = c0 - 2 * c1 + c2
    off = np.where(denom > 1e-12, 0.5 * (c0 - c2) / np.where(denom > 1e-12, denom, 1.0), 0.0)
    d = fine[k] + np.clip(off, -0.5, 0.5) * step
    return ndimage.median_filter(d, size=5, mode="nearest").astype(np.float32)


def aperture_offsets(grid: int, radius: float) -> list[tuple[float, float]]:
    """View offsets (du, dv) from the centre inside a disc of ``radius`` view steps.

    Raises
    ------
    RefocusError
        When the disc does not fit in the grid.
    """
    c = (grid - 1) / 2.0
    if radius < 0 or radius > c + 1e-9:
        raise RefocusError(f"aperture radius {radius} view steps does not fit a {grid}x{grid} light field (max {c:g})")
    offs = []
    for v in range(grid):
        for u in range(grid):
            du, dv = u - c, v - c
            if du * du + dv * dv <= radius * radius + 1e-9:
                offs.append((du, dv))
    return offs


def shift_image(img: np.ndarray, dx: float, dy: float, order: int = 3) -> np.ndarray:
    """``out(x, y) = img(x - dx, y - dy)``, edges clamped.

    Parameters
    ----------
    img:
        H x W x C float array.
    dx, dy:
        Shift to the right and down, px (any real value).
    order:
        3 (default): cubic B-spline interpolation with its prefilter, which keeps
        the texture's detail at sub-pixel shifts. 1: bilinear, a low-pass filter
        that varies with the shift's fraction (up to a [1/4, 1/2, 1/4] blur at half
        a pixel per axis); ground truth built with it was blurred before any
        method saw it, which rewarded blurry outputs (issue 12: 0-3 dB in favour
        of naive re-blurring on real light fields).
    """
    if order == 1:
        return _shift_bilinear(img, dx, dy)
    from scipy import ndimage

    if float(dx).is_integer() and float(dy).is_integer():
        # Integer shifts are exact copies (the spline reproduces its samples).
        return _shift_bilinear(img, dx, dy)
    out = np.empty(img.shape, np.float32)
    for c in range(img.shape[2]):
        out[..., c] = ndimage.shift(np.asarray(img[..., c], np.float64), (dy, dx), order=order, mode="nearest", prefilter=True)
    return out


def _shift_bilinear(img: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """:func:`shift_image` with bilinear interpolation."""
    h, w = img.shape[:2]
    xs = np.arange(w, dtype=np.float64) - dx
    ys = np.arange(h, dtype=np.float64) - dy
    x0 = np.floor(xs)
    y0 = np.floor(ys)
    fx = (xs - x0).astype(np.float32)[None, :, None]
    fy = (ys - y0).astype(np.float32)[:, None, None]
    x0i = np.clip(x0.astype(np.int64), 0, w - 1)
    x1i = np.clip(x0.astype(np.int64) + 1, 0, w - 1)
    y0i = np.clip(y0.astype(np.int64), 0, h - 1)
    y1i = np.clip(y0.astype(np.int64) + 1, 0, h - 1)
    top = img[y0i][:, x0i] * (1 - fx) + img[y0i][:, x1i] * fx
    bot = img[y1i][:, x0i] * (1 - fx) + img[y1i][:, x1i] * fx
    return (top * (1 - fy) + bot * fy).astype(np.float32)


def refocus_linear(lf: LightField, focus_disparity: float, radius: float, sign: float = 1.0, shift=None) -> np.ndarray:
    """Shift-and-add refocusing: the photo of a lens with a disc aperture.

    Parameters
    ----------
    lf:
        The light field.
    focus_disparity:
        Disparity brought into focus, px per view step (``s``).
    radius:
        Aperture radius, view steps (``R``); points of disparity ``d`` blur to a disc
        of radius ``R * |d - s|`` px.
    sign:
        +1 samples view (u, v) at ``x - s*(u - c)`` (the verified convention); -1
        only exists to test that convention.
    shift:
        ``shift(img, dx, dy)``, how a view is shifted; by default :func:`shift_image`
        (the protocol's). Another only for experiments on the protocol itself.

    Returns
    -------
    H x W x 3 float32 linear image.
    """
    shift = shift or shift_image
    acc = None
    offs = aperture_offsets(lf.grid, radius)
    c = lf.centre
    for du, dv in offs:
        view = lf.views_linear[int(round(dv + c)), int(round(du + c))]
        shifted = shift(view, sign * focus_disparity * du, sign * focus_disparity * dv)
        acc = shifted if acc is None else acc + shifted
    return (acc / len(offs)).astype(np.float32)


def refocus_srgb(lf: LightField, focus_disparity: float, radius: float, shift=None) -> np.ndarray:
    """:func:`refocus_linear`, encoded to sRGB in [0, 1]."""
    return np.clip(linear_to_srgb(refocus_linear(lf, focus_disparity, radius, shift=shift)), 0.0, 1.0).astype(np.float32)


def focus_disparities(disparity: np.ndarray) -> dict[str, float]:
    """The protocol's focus planes: near/middle/far = 95th/50th/5th percentile of disparity."""
    return {k: float(np.percentile(disparity, q)) for k, q in FOCUS_PERCENTILES.items()}


def crop_border_px(radius: float, disparity: np.ndarray, *focus: float) -> int:
    """Border excluded from the metrics: ``ceil(R * max|d - s|) + 2`` px over all ``s``.

    Beyond that border shifted views sample outside the image, so the ground truth
    is not a true lens photo there.
    """
    dmax, dmin = float(np.max(disparity)), float(np.min(disparity))
    spread = max(max(abs(dmax - s), abs(dmin - s)) for s in focus)
    return int(math.ceil(radius * spread)) + 2


#: Half-width of the band of disparity (a share of the map's range) and side of the
#: window (px) in which :func:`click_point` looks for a patch of the focal plane.
CLICK_BAND = 0.02
CLICK_WINDOW_PX = 15


def click_point(disparity: np.ndarray, focus_disparity: float) -> tuple[int, int]:
    """Where a user would click to focus on disparity ``focus_disparity``: (x, y) of the
    pixel, among those whose ``CLICK_WINDOW_PX`` window lies most within
    ``CLICK_BAND`` of the range around it, nearest the centre of all such pixels. The
    no-depth track gives the focus this way, as a method without depth cannot take it
    as a disparity."""
    from scipy.ndimage import uniform_filter

    d = np.asarray(disparity, dtype=np.float64)
    band = np.abs(d - focus_disparity) <= CLICK_BAND * max(float(np.ptp(d)), 1e-12)
    if not band.any():
        band = np.abs(d - focus_disparity) == np.abs(d - focus_disparity).min()
    share = uniform_filter(band.astype(np.float64), CLICK_WINDOW_PX, mode="nearest")
    best = band & (share >= min(0.9, float(share[band].max())) - 1e-9)
    ys, xs = np.nonzero(band)
    cy, cx = ys.mean(), xs.mean()
    ys, xs = np.nonzero(best)
    i = int(np.argmin((ys - cy) ** 2 + (xs - cx) ** 2))
    return int(xs[i]), int(ys[i])


def lightfield_cases(
    lf: LightField,
    task: str,
    radii: tuple[float, ...] = RADII,
    focus_names: tuple[str, ...] = ("near", "middle", "far"),
    refocus_pairs: tuple[tuple[str, str], ...] = REFOCUS_PAIRS,
    with_depth: bool = True,
    dataset: str | None = None,
    notes: list[str] | None = None,
):
    """Benchmark cases of one task from a light field, following the protocol.

    The protocol (others' acceptance numbers depend on it; change nothing silently):

    * focus planes near/middle/far = 95th/50th/5th percentile of the light field's
      disparity (of the half-resolution map when the light field was loaded with
      ``half=True``, which is how ``hci-antinous`` is used);
    * ``bokeh``: for each R in ``radii`` and each focus s: input = centre view,
      disparity = true disparity, strength K = R, target = refocused at s with
      aperture radius R; crop ``ceil(R * max|d - s|) + 2`` px;
    * ``deblur``: the same 6 (R, s) pairs reversed: input = refocused at s, target =
      centre view;
    * ``refocus``: for each R and each pair (s1 -> s2) in ``refocus_pairs``
      (near->far, far->near, middle->near): input = refocused at s1, target =
      refocused at s2; crop over both planes. ``with_depth=False`` builds the
      no-depth track (``disparity`` None; the focus also as the point a user would
      click, ``meta["focus_xy"]``, :func:`click_point`).

    Focus planes that coincide (a flat or nearly flat disparity: a wall, a test chart)
    give one case, not two identical ones, and a refocus between them none (it scored
    100 dB for doing nothing; found 2026-12-07); each is said in ``notes``.

    Returns
    -------
    list of :class:`refocus.bench.methods.Case`.
    """
    from refocus.bench.methods import Case

    if lf.disparity is None:
        raise RefocusError(f"light field {lf.name} has no disparity: the benchmark needs {DISPARITY_FILE} beside the views "
                           "(the centre view's disparity, px per view step, larger = nearer, PFM)")
    d = lf.disparity
    focus = focus_disparities(d)
    dataset = dataset or f"lightfield:{lf.name}"
    said: set[str] = set()

    def skip(why: str) -> None:
        if notes is not None and why not in said:
            said.add(why)
            notes.append(f"{task} / {dataset}: {why}; skipped")

    firsts = {}
    for fname in focus_names:
        firsts.setdefault(focus[fname], fname)
    centre = lf.centre_view_srgb()
    cache: dict[tuple[float, str], np.ndarray] = {}

    def photo(r: float, name: str) -> np.ndarray:
        if (r, name) not in cache:
            cache[(r, name)] = refocus_srgb(lf, focus[name], r)
        return cache[(r, name)]

    cases = []
    for r in radii:
        if task in ("bokeh", "deblur"):
            for fname in focus_names:
                s = focus[fname]
                if firsts[s] != fname:
                    skip(f"the {fname} focus plane is the {firsts[s]} one (disparity {s:.4g})")
                    continue
                meta = {"R": r, "focus": fname, "focus_disparity": s, "percentile": FOCUS_PERCENTILES[fname]}
                crop = crop_border_px(r, d, s)
                if task == "bokeh":
                    cases.append(Case("bokeh", dataset, f"R{r:g}-{fname}", centre, photo(r, fname), d, float(r),
                                      focus_disparity=s, crop_px=crop, meta=meta))
                else:
                    cases.append(Case("deblur", dataset, f"R{r:g}-{fname}", photo(r, fname), centre, d, float(r),
                                      input_focus_disparity=s, crop_px=crop, meta=meta))
        elif task == "refocus":
            for src, dst in refocus_pairs:
                s1, s2 = focus[src], focus[dst]
                if s1 == s2:
                    skip(f"{src} -> {dst} refocuses nowhere (both planes at disparity {s1:.4g})")
                    continue
                meta = {"R": r, "from": src, "to": dst, "from_disparity": s1, "to_disparity": s2, "depth": with_depth}
                if not with_depth:
                    meta["focus_xy"] = click_point(d, s2)
                cases.append(Case("refocus", dataset, f"R{r:g}-{src}-to-{dst}", photo(r, src), photo(r, dst),
                                  d if with_depth else None, float(r), focus_disparity=s2,
                                  input_focus_disparity=s1, crop_px=crop_border_px(r, d, s1, s2), meta=meta))
        else:
            raise RefocusError(f"unknown task {task!r}")
    return cases
