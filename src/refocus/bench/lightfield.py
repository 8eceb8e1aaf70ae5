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
        raise RefocusError(f"no views named input_CamNNN.png in {folder}")
    n_views = len(files)
    if grid is None:
        grid = int(round(math.sqrt(n_views)))
        if grid * grid != n_views:
            raise RefocusError(f"{folder.name}: {n_views} views is not a square grid; pass the grid size")
    if sorted(files) != list(range(grid * grid)):
        raise RefocusError(f"{folder.name}: expected views 000..{grid * grid - 1:03d} for a {grid}x{grid} grid")
    views = None
    for idx in range(grid * grid):
        rgb, _ = read_image(files[idx])
        lin = srgb_to_linear(rgb).astype(np.float32)
        if half:
            lin = _area_down2(lin)
        if views is None:
            views = np.empty((grid, grid) + lin.shape, dtype=np.float32)
        elif lin.shape != views.shape[2:]:
            raise RefocusError(f"{files[idx].name} is {lin.shape[1]}x{lin.shape[0]}, other views differ")
        views[idx // grid, idx % grid] = lin
    disparity = None
    dpath = folder / DISPARITY_FILE
    if dpath.is_file():
        disparity = read_pfm(dpath)
        if half:
            disparity = _area_down2(disparity) / 2.0
        if disparity.shape != views.shape[2:4]:
            raise RefocusError(f"{dpath.name} is {disparity.shape[1]}x{disparity.shape[0]}, views are {views.shape[3]}x{views.shape[2]}")
        disparity = disparity.astype(np.float32)
    return LightField(views_linear=views, disparity=disparity, name=folder.name)


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


def shift_image(img: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """``out(x, y) = img(x - dx, y - dy)`` with bilinear interpolation, edges clamped.

    Parameters
    ----------
    img:
        H x W x C float array.
    dx, dy:
        Shift to the right and down, px (any real value).
    """
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


def refocus_linear(lf: LightField, focus_disparity: float, radius: float, sign: float = 1.0) -> np.ndarray:
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

    Returns
    -------
    H x W x 3 float32 linear image.
    """
    acc = None
    offs = aperture_offsets(lf.grid, radius)
    c = lf.centre
    for du, dv in offs:
        view = lf.views_linear[int(round(dv + c)), int(round(du + c))]
        shifted = shift_image(view, sign * focus_disparity * du, sign * focus_disparity * dv)
        acc = shifted if acc is None else acc + shifted
    return (acc / len(offs)).astype(np.float32)


def refocus_srgb(lf: LightField, focus_disparity: float, radius: float) -> np.ndarray:
    """:func:`refocus_linear`, encoded to sRGB in [0, 1]."""
    return np.clip(linear_to_srgb(refocus_linear(lf, focus_disparity, radius)), 0.0, 1.0).astype(np.float32)


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


def lightfield_cases(
    lf: LightField,
    task: str,
    radii: tuple[float, ...] = RADII,
    focus_names: tuple[str, ...] = ("near", "middle", "far"),
    refocus_pairs: tuple[tuple[str, str], ...] = REFOCUS_PAIRS,
    with_depth: bool = True,
    dataset: str | None = None,
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
      no-depth track (``disparity`` None).

    Returns
    -------
    list of :class:`refocus.bench.methods.Case`.
    """
    from refocus.bench.methods import Case

    if lf.disparity is None:
        raise RefocusError(f"light field {lf.name} has no disparity ({DISPARITY_FILE}); the benchmark needs it")
    d = lf.disparity
    focus = focus_disparities(d)
    dataset = dataset or f"lightfield:{lf.name}"
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
                meta = {"R": r, "from": src, "to": dst, "from_disparity": s1, "to_disparity": s2, "depth": with_depth}
                cases.append(Case("refocus", dataset, f"R{r:g}-{src}-to-{dst}", photo(r, src), photo(r, dst),
                                  d if with_depth else None, float(r), focus_disparity=s2,
                                  input_focus_disparity=s1, crop_px=crop_border_px(r, d, s1, s2), meta=meta))
        else:
            raise RefocusError(f"unknown task {task!r}")
    return cases
