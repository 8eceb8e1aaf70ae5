"""Choosing the focal plane: one module shared by the CLI, the Python API and the UI.

Every function takes the renderer's disparity (larger = nearer, normally min-max
normalised to [0, 1]) and returns a ``focus_disparity`` in the same units, to be used
as ``coc_px = K * (disparity - focus_disparity)``. :func:`select_focus` dispatches on
what the user gave (a point, a box, a mask, a value, nothing) and says what it did.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from refocus.errors import RefocusError


@dataclass
class FocusChoice:
    """A chosen focal plane and how it was chosen.

    Attributes
    ----------
    focus_disparity : float
        In the units of the disparity map it was computed on.
    method : str
        ``"point"``, ``"box"``, ``"mask"``, ``"value"``, ``"defocus"`` or ``"auto"``.
    detail : str
        One line for the user, e.g. ``"point (412, 300)"``.
    region : (H, W) bool array or None
        The pixels the value was taken from (for display), when there is one.
    """

    focus_disparity: float
    method: str
    detail: str
    region: np.ndarray | None = None


def _as_map(disparity: np.ndarray) -> np.ndarray:
    d = np.asarray(disparity, dtype=np.float32)
    if d.ndim != 2 or d.size == 0:
        raise RefocusError(f"disparity map must be 2-D and non-empty, got shape {d.shape}")
    return d


def _finite_median(vals: np.ndarray, what: str) -> float:
    vals = vals[np.isfinite(vals)]
    if vals.size == 0:
        raise RefocusError(f"no valid depth values in the {what}")
    return float(np.median(vals))


def check_point_inside(x: float, y: float, width: int, height: int) -> None:
    """A one-line error unless pixel ``(x, y)`` lies in a ``width`` x ``height`` image."""
    if not (np.isfinite(x) and np.isfinite(y) and 0 <= x < width and 0 <= y < height):
        raise RefocusError(f"focus point ({x:g}, {y:g}) is outside the {width}x{height} image")


def warn_if_fractions(x: float, y: float, width: int, height: int) -> None:
    """Warn when a user's focus point looks like fractions of the frame: "--focus
    0.5,0.5" was read as pixels and focused on the top-left corner, silently. For the
    point as the user gave it, in the photo's own pixels (on a working copy a click near
    the corner becomes sub-pixel)."""
    if 0 < x < 1 and 0 < y < 1 and min(width, height) > 2:
        import warnings

        warnings.warn(f"focus point ({x:g}, {y:g}) is in pixels: the top-left corner of the {width}x{height} image; "
                      f"its centre is {width // 2},{height // 2}", stacklevel=3)


def focus_at_point(disparity: np.ndarray, x: float, y: float, radius_px: int | None = None) -> float:
    """Disparity of the surface under pixel (x, y): a robust local median.

    Parameters
    ----------
    disparity : (H, W) array
        Disparity map (larger = nearer).
    x, y : float
        Pixel column and row (0-based, may be fractional).
    radius_px : int, optional
        Half-size of the window; default 1.5 % of the image diagonal, at least 3 px.

    Returns
    -------
    float
        The median of the window's pixels that lie on the same side of any depth
        edge as the clicked one, so clicking just inside a subject's outline focuses
        on the subject, not the background behind it.
    """
    d = _as_map(disparity)
    h, w = d.shape
    check_point_inside(x, y, w, h)
    if radius_px is None:
        radius_px = max(3, int(round(0.015 * np.hypot(h, w))))
    radius_px = max(0, int(radius_px))
    xi, yi = int(x), int(y)
    win = d[max(0, yi - radius_px) : yi + radius_px + 1, max(0, xi - radius_px) : xi + radius_px + 1]
    centre = float(d[yi, xi])
    vals = win[np.isfinite(win)].ravel()
    if not np.isfinite(centre):
        return _finite_median(vals, "focus window")
    spread = float(np.percentile(vals, 90) - np.percentile(vals, 10)) if vals.size else 0.0
    if spread > 0:
        # Keep the cluster the clicked pixel belongs to.
        near = vals[np.abs(vals - centre) <= 0.25 * spread + 1e-6]
        if near.size >= 3:
            vals = near
    return float(np.median(vals))


def _otsu_threshold(vals: np.ndarray, bins: int = 64) -> float:
    hist, edges = np.histogram(vals, bins=bins)
    centres = 0.5 * (edges[:-1] + edges[1:])
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    s0 = np.cumsum(hist * centres)
    m0 = s0 / np.maximum(w0, 1)
    m1 = (s0[-1] - s0) / np.maximum(w1, 1)
    between = w0 * w1 * (m0 - m1) ** 2
    return float(edges[int(np.argmax(between[:-1])) + 1])


def focus_in_box(disparity: np.ndarray, box: tuple[float, float, float, float]) -> tuple[float, np.ndarray]:
    """Focus on the subject framed by a box (x0, y0, x1, y1), in pixels, x1/y1 exclusive.

    A box around a subject also holds background in its corners, so the box's
    disparities are split in two (Otsu) and the class that dominates the central half
    of the box is taken; its median is returned with the chosen pixels.
    """
    d = _as_map(disparity)
    h, w = d.shape
    try:
        x0, y0, x1, y1 = (float(v) for v in box)
    except (TypeError, ValueError):
        raise RefocusError(f"focus box must be four numbers x0,y0,x1,y1, got {box!r}") from None
    if not all(np.isfinite(v) for v in (x0, y0, x1, y1)):
        raise RefocusError(f"focus box must be four finite numbers x0,y0,x1,y1, got {box!r}")
    x0, x1 = sorted((x0, x1))
    y0, y1 = sorted((y0, y1))
    if x1 <= x0 or y1 <= y0:
        # Was "does not overlap the image", about a box inside it.
        raise RefocusError(f"focus box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) has no area: give two opposite corners "
                           "x0,y0,x1,y1 with x0 != x1 and y0 != y1 (or a point x,y)")
    c0, c1 = int(np.clip(np.floor(x0), 0, w)), int(np.clip(np.ceil(x1), 0, w))
    r0, r1 = int(np.clip(np.floor(y0), 0, h)), int(np.clip(np.ceil(y1), 0, h))
    if c1 <= c0 or r1 <= r0:
        raise RefocusError(f"focus box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) does not overlap the {w}x{h} image")
    sub = d[r0:r1, c0:c1]
    region = np.zeros_like(d, dtype=bool)
    vals = sub[np.isfinite(sub)]
    if vals.size == 0:
        raise RefocusError("no valid depth values in the focus box")
    keep = np.isfinite(sub)
    if float(np.percentile(vals, 95) - np.percentile(vals, 5)) > 1e-6:
        t = _otsu_threshold(vals)
        hi_cls = sub >= t
        bh, bw = sub.shape
        centre = np.zeros_like(hi_cls)
        centre[bh // 4 : bh - bh // 4 or bh, bw // 4 : bw - bw // 4 or bw] = True
        centre &= keep
        frac_hi = float(hi_cls[centre].mean()) if centre.any() else 0.5
        keep &= hi_cls if frac_hi >= 0.5 else ~hi_cls
    region[r0:r1, c0:c1] = keep
    return float(np.median(sub[keep])), region


def _mask_pixels(mask: np.ndarray) -> np.ndarray:
    """A mask array as the bool H x W array of the pixels it marks (bool, or weights
    in [0, 1] thresholded at 0.5, or 8-bit at 127; a colour mask by its first channel)."""
    m = np.asarray(mask)
    if m.ndim == 3:
        m = m[..., 0]
    return m > (0.5 if m.dtype.kind == "f" else (127 if m.dtype == np.uint8 else 0))


def focus_in_mask(disparity: np.ndarray, mask: np.ndarray) -> float:
    """Median disparity inside a mask (bool, or weights in [0, 1] thresholded at 0.5)."""
    d = _as_map(disparity)
    m = _mask_pixels(mask)
    if m.shape != d.shape:
        raise RefocusError(f"focus mask is {m.shape[1]}x{m.shape[0]} but the depth map is {d.shape[1]}x{d.shape[0]}")
    if not m.any():
        raise RefocusError("focus mask is empty")
    return _finite_median(d[m], "focus mask")


#: How far a focus mask's aspect ratio may differ from the photo's (relative): an
#: editor's export rounds each side to a whole pixel, a mask of another photo differs more.
MASK_ASPECT_TOLERANCE = 0.02


def read_focus_mask(path, shape: tuple[int, int]) -> np.ndarray:
    """A focus mask image as a bool H x W array for a depth map of ``shape`` (H, W).

    White marks the subject; an image with a (not fully opaque) alpha channel marks it
    by opacity instead, as a cut-out exported by a photo editor. The mask may have any
    size with the photo's aspect ratio (within :data:`MASK_ASPECT_TOLERANCE`) and is
    resized to ``shape`` (bilinear, then thresholded at half of the sRGB range). EXIF orientation is
    applied, as to the photo. Raises :class:`RefocusError` (one line) for an unreadable
    file, another aspect ratio, or a mask that marks nothing.
    """
    from PIL import Image

    from refocus.io import read_image

    rgb, info = read_image(path)
    alpha = getattr(info, "alpha", None)
    m = alpha if alpha is not None and float(alpha.min()) < 1.0 else rgb.mean(axis=2)
    h, w = shape
    mh, mw = m.shape
    if abs((mw / mh) / (w / h) - 1.0) > MASK_ASPECT_TOLERANCE:
        raise RefocusError(f"focus mask {Path(path).name} is {mw}x{mh}, not the photo's aspect ratio ({w}x{h} for the depth map): "
                           "a mask of another photo, or of a crop?")
    if (mh, mw) != (h, w):
        m = np.asarray(Image.fromarray(np.ascontiguousarray(m, dtype=np.float32), "F").resize((w, h), Image.BILINEAR))
    mask = m > 0.5
    if not mask.any():
        raise RefocusError(f"focus mask {Path(path).name} marks nothing: white (or opaque) pixels mark the subject")
    return mask


def focus_in_focus_region(disparity: np.ndarray, defocus_px: np.ndarray) -> tuple[float, np.ndarray]:
    """The plane the input photo was focused on, from its (unsigned) defocus map.

    Pixels whose estimated blur radius is within 0.5 px of the sharpest 5 % (and
    at most 1.5 px) form the in-focus region; its largest connected part (the
    subject, not scattered sharp-looking flat areas) gives the median disparity.
    """
    d = _as_map(disparity)
    b = np.asarray(defocus_px, dtype=np.float32)
    if b.shape != d.shape:
        raise RefocusError(f"defocus map is {b.shape[::-1]} but the depth map is {d.shape[::-1]}")
    valid = np.isfinite(b) & np.isfinite(d)
    if not valid.any():
        raise RefocusError("defocus map has no valid values")
    thr = min(float(np.percentile(np.abs(b[valid]), 5)) + 0.5, max(1.5, float(np.abs(b[valid]).min()) + 0.5))
    sharp = valid & (np.abs(b) <= thr)
    region = _largest_component(sharp)
    return float(np.median(d[region])), region


def _largest_component(mask: np.ndarray) -> np.ndarray:
    labels, n = ndimage.label(mask)
    if n <= 1:
        return mask
    sizes = ndimage.sum_labels(mask, labels, index=np.arange(1, n + 1))
    return labels == (int(np.argmax(sizes)) + 1)


def auto_focus(disparity: np.ndarray) -> tuple[float, np.ndarray]:
    """The likely subject: a region near the centre that stands in front of its
    surroundings and is not cut by the frame.

    On a copy of at most ~256 px, the disparity range is swept in 17 overlapping
    bands (each 20 % of the 1st-99th percentile span); the connected parts of each
    band (cleaned of specks, at least 1 % of the frame) are candidates, scored by

    * their centre-weighted area (Gaussian, sigma = 1/4 of the diagonal);
    * ``exp(-b / 0.08)`` with b the fraction of the frame's border they touch: a
      foreground branch or the ground running out of the frame is rarely the
      subject, a person standing in it is;
    * ``0.2 + contrast``, contrast being how much nearer the region is than a ring
      around it (as a fraction of the span): figures stand out from their ground.

    The best candidate's median disparity is the focus. Returns (focus disparity,
    region mask at full size).
    """
    d = _as_map(disparity)
    valid = np.isfinite(d)
    if not valid.any():
        raise RefocusError("disparity map has no valid values")
    h, w = d.shape
    step = max(1, int(max(h, w) // 256))
    small = np.where(valid, d, np.nanmedian(d[valid]))[::step, ::step]
    hs, ws = small.shape
    yy, xx = np.mgrid[0:hs, 0:ws].astype(np.float32)
    sigma = 0.25 * float(np.hypot(hs, ws))
    centre = np.exp(-(((xx - (ws - 1) / 2) ** 2 + (yy - (hs - 1) / 2) ** 2) / (2 * sigma**2)))
    edge = np.zeros((hs, ws), np.float32)
    edge[0, :] = edge[-1, :] = edge[:, 0] = edge[:, -1] = 1.0
    lo, hi = (float(v) for v in np.percentile(small, [1, 99]))
    span = max(hi - lo, 1e-6)
    ring_px = max(2, int(0.03 * max(hs, ws)))
    best, best_region = -1.0, None
    for c in np.linspace(lo, hi, 17):
        band = ndimage.binary_opening(np.abs(small - c) <= 0.1 * span, iterations=2)
        labels, n = ndimage.label(band)
        if n == 0:
            continue
        idx = np.arange(1, n + 1)
        area = ndimage.sum_labels(np.ones_like(centre), labels, idx)
        mass = ndimage.sum_labels(centre, labels, idx) / (hs * ws)
        cut = ndimage.sum_labels(edge, labels, idx) / edge.sum()
        for k in np.nonzero(area >= 0.01 * hs * ws)[0]:
            region = labels == idx[k]
            ring = ndimage.binary_dilation(region, iterations=ring_px) & ~region
            contrast = (np.median(small[region]) - np.median(small[ring])) / span if ring.any() else 0.0
            score = mass[k] * np.exp(-cut[k] / 0.08) * (0.2 + max(float(contrast), 0.0))
            if score > best:
                best, best_region = score, region
    if best_region is None:  # no region of 1 % of the frame: a flat or noisy map
        return float(np.median(d[valid])), valid
    full = np.repeat(np.repeat(best_region, step, axis=0), step, axis=1)
    full = np.pad(full, ((0, max(0, h - full.shape[0])), (0, max(0, w - full.shape[1]))), mode="edge")[:h, :w]
    full &= valid
    if not full.any():
        full = valid
    return float(np.median(d[full])), full


def select_focus(
    disparity: np.ndarray,
    *,
    point: tuple[float, float] | None = None,
    box: tuple[float, float, float, float] | None = None,
    mask: np.ndarray | None = None,
    value: float | None = None,
    defocus_px: np.ndarray | None = None,
) -> FocusChoice:
    """Pick the focal plane from whatever the user gave; at most one of point/box/mask/value.

    With none of them: the in-focus region of the input when ``defocus_px`` (its
    unsigned blur radius map, px) is given, else :func:`auto_focus`.
    """
    given = [n for n, v in (("point", point), ("box", box), ("mask", mask), ("value", value)) if v is not None]
    if len(given) > 1:
        raise RefocusError(f"give only one way to set the focus, got {' and '.join(given)}")
    d = _as_map(disparity)
    if point is not None:
        try:
            x, y = (float(v) for v in point)
        except (TypeError, ValueError):
            raise RefocusError(f"focus point must be two numbers x,y, got {point!r}") from None
        return FocusChoice(focus_at_point(d, x, y), "point", f"point ({x:g}, {y:g})")
    if box is not None:
        f, region = focus_in_box(d, box)
        return FocusChoice(f, "box", "box ({:g}, {:g}, {:g}, {:g})".format(*box), region)
    if mask is not None:
        # The pixels the value came from (was mask > 0: weights below 0.5 shown as used,
        # and a colour mask gave an H x W x 3 region); a bool mask passes _mask_pixels as it is.
        region = _mask_pixels(mask)
        return FocusChoice(focus_in_mask(d, region), "mask", "median inside the mask", region)
    if value is not None:
        v = float(value)
        if not np.isfinite(v):
            raise RefocusError(f"focus value must be finite, got {value}")
        return FocusChoice(v, "value", f"disparity {v:g}")
    if defocus_px is not None:
        f, region = focus_in_focus_region(d, defocus_px)
        return FocusChoice(f, "defocus", "the input photo's in-focus region", region)
    f, region = auto_focus(d)
    return FocusChoice(f, "auto", "the likely subject (a central region standing out in depth)", region)
