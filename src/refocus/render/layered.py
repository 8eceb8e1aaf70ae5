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

Speed. A layer whose |CoC| exceeds ``2 r0`` is rendered at 1/s resolution (s a power
of two, so that its kernel radius lies in [r0, 2 r0) there) and upsampled; cost per
layer then falls like 1/|CoC|^2 and the total is sub-quadratic in the maximum CoC.
The far half of the layers is composited back-to-front, the near half front-to-back
(the *over* operator is associative), then the two are joined once at full size.

All of this runs on the small set of array operations in
:mod:`refocus.render.backend`, so the numpy and torch paths are the same algorithm.
"""

from __future__ import annotations

import math

import numpy as np

from refocus import aperture as ap
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


def layer_scale(radius_px: float, r0: float) -> int:
    """Downsampling factor (power of two) for a layer of this |CoC|."""
    if radius_px < 2 * r0:
        return 1
    return 2 ** int(math.floor(math.log2(radius_px / r0)))


def _tent_weights(coc: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each pixel, the index k of the layer just behind it and the weight t of layer k+1."""
    if len(centres) == 1:
        return np.zeros(coc.shape, dtype=np.int32), np.zeros(coc.shape, dtype=np.float32)
    k = np.searchsorted(centres, coc, side="right") - 1
    k = np.clip(k, 0, len(centres) - 2).astype(np.int32)
    lo = centres[k]
    hi = centres[k + 1]
    t = np.clip((coc - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)
    return k, t


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

    @staticmethod
    def _lum(x):
        return x[0] * 0.2126 + x[1] * 0.7152 + x[2] * 0.0722

    def expand(self, x, be):
        if not self.enabled:
            return x
        y = self._lum(x)
        ratio = be.interp(y, self.y_lin, self.y_exp) / be.clip(y, _EPS, None)
        ratio = be.where(y > self.t, ratio, 1.0)
        return x * ratio[None]

    def compress(self, x, be):
        if not self.enabled:
            return x
        y = self._lum(x)
        ratio = be.interp(y, self.y_exp, self.y_lin) / be.clip(y, _EPS, None)
        ratio = be.where(y > self.t, ratio, 1.0)
        return x * ratio[None]


def pushpull(values, weights, be):
    """Fill low-weight pixels of premultiplied ``values`` (C,H,W) from their surroundings.

    ``weights`` (1,H,W) in [0, 1]. Returns colours defined everywhere: at fully
    covered pixels the input colour, elsewhere a smooth extrapolation.
    """
    pyr = [(values, weights)]
    v, w = values, weights
    while v.shape[1] > 1 or v.shape[2] > 1:
        v = be.downsample(v, 2)
        w = be.downsample(w, 2)
        pyr.append((v, w))
    top_v, top_w = pyr[-1]
    fill = top_v / be.clip(top_w, _EPS, None)
    for v, w in reversed(pyr[:-1]):
        up = be.upsample(fill, 2, v.shape[1], v.shape[2])
        fill = v + (1.0 - w) * up
    return fill


def _conv_layer(stack, radius: float, front: bool, cfg: RenderConfig, be, scale: int, full_hw: tuple[int, int]):
    """Blur a (4,h,w) layer stack with the aperture kernel (spatially varying for cat's-eye)."""
    aper = cfg.aperture
    if aper.cats_eye <= 0 or radius < 0.5:
        return be.conv(stack, ap.kernel(aper, radius, front=front))
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
            k = ap.kernel(aper, radius, front=front, cats_eye_offset=off)
            cy0, cy1 = max(0, y_lo - r_pad), min(h, y_hi + r_pad)
            cx0, cx1 = max(0, x_lo - r_pad), min(w, x_hi + r_pad)
            blurred = be.conv(stack[:, cy0:cy1, cx0:cx1], k)[:, y_lo - cy0 : y_hi - cy0, x_lo - cx0 : x_hi - cx0]
            wt = be.asarray((wy[:, None] * wx[None, :]).astype(np.float32))[None]
            if out is None:
                out = be.zeros(stack.shape)
            out[:, y_lo:y_hi, x_lo:x_hi] += blurred * wt
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


def render_layers(image_linear: np.ndarray, coc_px: np.ndarray, cfg: RenderConfig, backend=None) -> np.ndarray:
    """Render the lens photo from a linear all-in-focus image and a signed CoC map.

    Parameters
    ----------
    image_linear:
        H x W x 3 float32, linear light.
    coc_px:
        H x W signed CoC radius in pixels (positive = nearer than the focal plane).
    cfg:
        Renderer settings.
    backend:
        An object from :mod:`refocus.render.backend`; by default chosen from
        ``cfg.device``.

    Returns
    -------
    H x W x 3 float32 linear image (may exceed 1 slightly when highlights are boosted;
    the caller clips when encoding).
    """
    from refocus.render.backend import get_backend

    be = backend or get_backend(cfg.device)
    H, W = coc_px.shape
    coc = np.asarray(coc_px, dtype=np.float32)
    x = be.asarray(np.transpose(image_linear, (2, 0, 1)))
    booster = _Booster(cfg.highlight_threshold, cfg.highlight_gain)
    x = booster.expand(x, be)

    min_step, rel_step = cfg.layer_step()
    r0 = cfg.full_res_max_radius() / 2
    centres = layer_centres(float(coc.min()), float(coc.max()), min_step, rel_step)
    k_np, t_np = _tent_weights(coc, centres)
    # Only layers that some pixel uses are rendered.
    used = np.zeros(len(centres), dtype=bool)
    used[np.unique(k_np[t_np < 1])] = True
    if len(centres) > 1:
        used[np.unique(k_np[t_np > 0]) + 1] = True
    k = be.asarray(k_np.astype(np.float32))
    t = be.asarray(t_np)

    def weight(i: int):
        wi = be.where(k == i, 1.0 - t, 0.0)
        if i > 0:
            wi = wi + be.where(k == i - 1, t, 0.0)
        return wi[None]

    def layer_contribution(i: int, w_i, covered_behind, front: bool):
        """Blurred premultiplied colour and alpha of layer i, upsampled to full size.

        covered_behind: coverage by layers at or behind i (C_i), full size (1,H,W).
        """
        radius = abs(float(centres[i]))
        s = layer_scale(radius, r0)
        hidden = 1.0 - covered_behind  # coverage by nearer layers
        alpha = w_i + hidden
        p = be.downsample(w_i * x, s)
        if be.scalar_max(hidden) > 1e-4:
            c_small = be.downsample(covered_behind, s)
            fill = pushpull(be.downsample(covered_behind * x, s), c_small, be)
            p = p + be.downsample(hidden, s) * fill
        stack = be.concat([p, be.downsample(alpha, s)])
        blurred = _conv_layer(stack, radius / s, front, cfg, be, s, (H, W))
        return be.upsample(blurred, s, H, W)

    order = np.nonzero(used)[0]
    back = [i for i in order if centres[i] <= 0]
    front = [i for i in order if centres[i] > 0]

    acc = be.zeros((3, H, W))
    acc_a = be.zeros((1, H, W))
    cum = be.zeros((1, H, W))
    for i in back:  # far to near, back-to-front
        w_i = weight(i)
        cum = cum + w_i
        up = layer_contribution(i, w_i, cum, front=False)
        a = be.clip(up[3:4], 0.0, 1.0)
        acc = up[:3] + (1.0 - a) * acc
        acc_a = a + (1.0 - a) * acc_a

    fr = be.zeros((3, H, W))
    fr_a = be.zeros((1, H, W))
    nearer = be.zeros((1, H, W))
    for i in reversed(front):  # near to far, front-to-back
        w_i = weight(i)
        up = layer_contribution(i, w_i, 1.0 - nearer, front=True)
        nearer = nearer + w_i
        a = be.clip(up[3:4], 0.0, 1.0)
        fr = fr + (1.0 - fr_a) * up[:3]
        fr_a = fr_a + (1.0 - fr_a) * a

    if back:
        background = acc / be.clip(acc_a, _EPS, None)
    else:
        background = be.zeros((3, H, W))
    out = fr + (1.0 - fr_a) * background
    if not back:
        out = fr / be.clip(fr_a, _EPS, None)
    out = booster.compress(be.clip(out, 0.0, None), be)
    return np.ascontiguousarray(np.transpose(be.to_numpy(out), (1, 2, 0)))
