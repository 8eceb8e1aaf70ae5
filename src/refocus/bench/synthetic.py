"""Ray-traced synthetic scenes with exact thin-lens ground truth.

A scene is a stack of fronto-parallel layers ("dead leaves"): a textured
background plane at disparity 0 and a few planes in front of it, each holding
random shapes (discs, ellipses, polygons, blobs) textured with patches of real
photos and procedural patterns, plus point lights (tiny spots that can be far
brighter than 1 in linear light, i.e. clipped highlights). The nearest plane has
disparity 1, so disparity maps are min-max normalised to [0, 1] and the
renderer's ``coc_px = K * (disparity - focus_disparity)`` applies directly.

Lens model (thin lens, ray traced). The lens photo is the average, over points
``(u, v)`` of the aperture (pupil coordinates, unit circumscribed circle, ``u``
right, ``v`` down, weighted by :func:`refocus.aperture.aperture_mask`), of pinhole
renders in which a layer of disparity ``d`` is translated by
``-coc_px * (u, v) = K * (focus_disparity - d) * (u, v)`` pixels. Each pinhole
render composites the translated layers front to back (nearest wins, with
antialiased alphas), so partial occlusion -- a blurred foreground edge that is
semi-transparent over a sharp background -- is exact, not modelled. The sign
matches the project convention (``refocus.aperture``): the image of a point light
behind the focal plane is the upright aperture, ``aperture.kernel(cfg, |coc|)``;
in front of it, the same kernel rotated by 180 degrees.

Sampling. The pupil is cut into square cells of side ``delta`` (pupil units),
chosen so that at the largest |CoC| neighbouring samples land ``spacing_px``
pixels apart (and no larger than ``max_cell``); a cell's weight is the aperture's
transmission integrated over it (4 x 4 supersampling). Through cell k a layer is
seen as the area average over the cell's footprint: a square of side
``delta * |coc|`` px centred ``-coc * (u_k, v_k)`` px away, rasterised with exact
pixel coverage (CPU path, :func:`_trace_cpu`), so the cells tile the aperture
without gaps or overlaps: no ghosting and no moire, whatever ``spacing_px``.
What remains approximate:

* occlusion *inside* one cell is that of the footprint-averaged layers: an error
  confined to bands about ``spacing_px`` wide at occlusion boundaries;
* the aperture outline is resolved to the cell footprint: with ``spacing_px=1``
  bokeh edges are as sharp as ``aperture.kernel`` makes them (L1 distance between
  unit-sum kernels <= 0.05 for radii 1.5..14 px with ``max_cell=0.125``, as
  :func:`make_scene` uses; 0.11 at radius 1.5 with the default 0.25); with
  ``spacing_px=2.5`` edges are softened by about 2.5 px (L1 0.08..0.15);
* the GPU path (``method="grid"``) box-filters each layer over the footprint
  once and moves it with bilinear ``grid_sample``: the same at integer footprint
  sizes, otherwise a few per cent of ripple inside bokeh discs and slightly soft
  edges (L1 up to ~0.2 against ``aperture.kernel`` at small radii).

``spacing_px=1`` is the default for :func:`make_scene` / :func:`frozen_test_set`
(the exact path above, which the benchmark's frozen set keeps using).

Fast path for training pairs (``method="fast"``, :func:`generate_pairs` on the
CPU: rendering ~2.8x faster than the exact path at its former training setting
of ``spacing_px=2.5``, and more accurate) is a control variate. "Blur each layer with its kernel, then
composite" (LB) is exact wherever no partly transparent layer edge moves within
a blur's reach, and cheap: one FFT per layer, with reference kernels from a
1/64-pupil-unit cell grid (point lights match ``aperture.kernel`` to L1 <= 0.03). Only in
32 px tiles where some front layer's alpha varies within its reach (about a
third of a training frame) a coarse sampled render S (cells of ``spacing_px``
at the largest CoC, at most 0.35 pupil units: 37..70 samples; each sample a
whole-pixel view of one of 4 half-pixel-phase copies of the layer, box-filtered
over the cell footprint) adds its occlusion: result = LB(exact kernels) + S -
LB(kernels of the coarse samples). Where layers do not interact the last two
cancel exactly. Accuracy against the exact path at ``spacing_px=1`` (sRGB PSNR):
62.3 dB on 256 px training-like scenes (the former 2.5 setting: 56.9 dB); on
96 px scenes crowded with bright lights 49.8..61.1 dB (former: 47.5..56.1),
the largest errors being lights behind moving occluding edges. Point lights
match ``aperture.kernel`` at least as well as the exact path does.

Cat's-eye clipping (``ApertureConfig.cats_eye``) is not modelled.

All-in-focus image: the same compositing with no translation. In linear light
point lights may exceed 1; the sRGB images are clipped to [0, 1], as a camera
clips.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from refocus.aperture import ApertureConfig, aperture_mask
from refocus.errors import RefocusError
from refocus.render import coc_map, signed_coc_px

__all__ = [
    "CameraParams",
    "Layers",
    "SyntheticScene",
    "aperture_samples",
    "composite_all_in_focus",
    "frozen_test_set",
    "generate_pairs",
    "make_layers",
    "make_scene",
    "render_thin_lens",
    "save_scene",
]

#: Largest aperture cell (pupil units; the pupil spans [-1, 1]).
_MAX_CELL = 0.25

_SHARED_PHOTOS = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "photos"

#: Images bundled with scikit-image (no download needed) used as photo textures.
_SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "colorwheel")
_SKIMAGE_GRAY = ("camera", "brick", "grass", "gravel", "moon", "coins", "clock")


# --------------------------------------------------------------------------- colour


def _srgb_to_linear_t(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x <= 0.04045, x / 12.92, ((x.clamp(min=0.04045) + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb_t(x: torch.Tensor) -> torch.Tensor:
    x = x.clamp(0.0, 1.0)
    # exp(log(x) / 2.4) rather than x ** (1 / 2.4): 1.5x faster on the CPU (pow with
    # a fractional exponent is not vectorised), equal to within 1.2e-7.
    hi = x.clamp(min=0.0031308).log_().mul_(1 / 2.4).exp_().mul_(1.055).sub_(0.055)
    return torch.where(x <= 0.0031308, x * 12.92, hi)


# --------------------------------------------------------------------------- data classes


@dataclass(frozen=True)
class CameraParams:
    """A thin-lens camera consistent with a scene's K and focus.

    The disparity map is ``(1/z - 1/far_m) / (1/near_m - 1/far_m)``, and the CoC
    radius of a point at distance z is
    ``f^2 / (2 N (1 - f/z_f)) * |1/z_f - 1/z| * pixels_per_mm``.

    Attributes
    ----------
    focal_length_mm, f_number, sensor_width_mm:
        Lens and sensor (full-frame width by default).
    focus_distance_m:
        Distance of the focal plane, metres.
    near_m, far_m:
        Distances of the nearest plane (disparity 1) and the background (disparity 0).
    pixels_per_mm:
        Image width in pixels over the sensor width.
    """

    focal_length_mm: float
    f_number: float
    sensor_width_mm: float
    focus_distance_m: float
    near_m: float
    far_m: float
    pixels_per_mm: float

    @staticmethod
    def from_strength(K: float, focus_disparity: float, width_px: int, *, focal_length_mm: float = 85.0,
                      sensor_width_mm: float = 36.0, near_m: float = 0.5, far_m: float = 20.0) -> "CameraParams":
        """Solve for the f-number that gives strength ``K`` (px) with this geometry."""
        inv_near, inv_far = 1.0 / near_m, 1.0 / far_m
        inv_zf = inv_far + focus_disparity * (inv_near - inv_far)
        zf_mm = 1000.0 / inv_zf
        ppm = width_px / sensor_width_mm
        # K is inversely proportional to N: solve with the one K formula at N = 1.
        k_at_f1 = _strength(focal_length_mm, 1.0, sensor_width_mm, zf_mm / 1000.0, near_m, far_m, ppm)
        n = k_at_f1 / K if K > 0 else math.inf
        return CameraParams(focal_length_mm, float(n), sensor_width_mm, zf_mm / 1000.0, near_m, far_m, ppm)

    def strength_px(self) -> float:
        """K implied by these parameters (px per unit of normalised disparity)."""
        return _strength(self.focal_length_mm, self.f_number, self.sensor_width_mm, self.focus_distance_m,
                         self.near_m, self.far_m, self.pixels_per_mm)


def _strength(focal_length_mm: float, f_number: float, sensor_width_mm: float, focus_distance_m: float,
              near_m: float, far_m: float, pixels_per_mm: float) -> float:
    """K (px per unit of normalised disparity) by the one K formula of :mod:`refocus.camera.lens`."""
    from refocus.camera.lens import strength_for_normalised_disparity, strength_from_camera

    k_metric = strength_from_camera(f_number, focal_length_mm, sensor_width_mm, focus_distance_m,
                                    sensor_width_mm * pixels_per_mm)
    return strength_for_normalised_disparity(k_metric, 1.0 / far_m, 1.0 / near_m)


@dataclass
class Layers:
    """Fronto-parallel layers on a padded canvas (torch tensors on one device).

    Attributes
    ----------
    rgba:
        (B, L, 4, H + 2 pad, W + 2 pad) float32: linear RGB *premultiplied* by
        alpha, then alpha. Layer 0 of each item is the nearest; the last is the
        opaque background.
    disparity:
        (B, L) float32, normalised disparity of each layer.
    pad:
        Margin in pixels around the visible H x W frame, so that content outside
        the frame blurs into it.
    """

    rgba: torch.Tensor
    disparity: torch.Tensor
    pad: int

    @property
    def frame_shape(self) -> tuple[int, int]:
        """(H, W) of the visible frame, pixels."""
        return self.rgba.shape[-2] - 2 * self.pad, self.rgba.shape[-1] - 2 * self.pad


@dataclass
class SyntheticScene:
    """One ray-traced scene with its ground truth.

    Attributes
    ----------
    all_in_focus, all_in_focus_linear:
        (H, W, 3) float32, sRGB in [0, 1] / linear (may exceed 1 at point lights).
    lens, lens_linear:
        (H, W, 3) float32: the thin-lens photo, sRGB (clipped) / linear.
    disparity:
        (H, W) float32, larger = nearer, normalised to [0, 1] (background 0,
        nearest plane 1): the disparity of the front-most layer with alpha >= 0.5.
    coc_px:
        (H, W) float32 signed CoC radius, ``K * (disparity - focus_disparity)``.
    K:
        Strength, px of CoC radius per unit of disparity.
    focus_disparity:
        Disparity of the focal plane, in [0, 1].
    aperture:
        The aperture the photo was rendered with.
    camera:
        Thin-lens camera parameters consistent with ``K`` and ``focus_disparity``.
    layer_disparities:
        Disparities of the scene's planes, nearest first.
    lights_xy:
        (n, 2) float32 positions (x, y) of the point lights in frame pixels.
    seed, spacing_px, n_samples:
        How it was generated (seed of :func:`make_scene`, sample spacing in px at
        the largest CoC, number of aperture samples).
    """

    all_in_focus: np.ndarray
    all_in_focus_linear: np.ndarray
    lens: np.ndarray
    lens_linear: np.ndarray
    disparity: np.ndarray
    coc_px: np.ndarray
    K: float
    focus_disparity: float
    aperture: ApertureConfig
    camera: CameraParams
    layer_disparities: np.ndarray
    lights_xy: np.ndarray
    seed: int | None = None
    spacing_px: float = 1.0
    n_samples: int = 0
    meta: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- aperture sampling


def aperture_samples(aperture: ApertureConfig | None, delta: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cells of side ``delta`` (pupil units) covering the aperture.

    Returns ``(u, v, w)``: cell centres (a grid symmetric about 0, so an aperture
    and its 180-degree rotation are sampled alike) and weights summing to 1, each
    the aperture's transmission integrated over the cell (4 x 4 supersampling).
    """
    cfg = aperture or ApertureConfig()
    if cfg.cats_eye > 0:
        raise RefocusError("the synthetic ray tracer does not model cat's-eye clipping (cats_eye must be 0)")
    if not (delta > 0):
        raise RefocusError(f"aperture cell size must be positive, got {delta}")
    n = int(math.floor((1.0 + delta / 2) / delta))
    c = np.arange(-n, n + 1) * delta
    ss = 4
    offs = ((np.arange(ss) + 0.5) / ss - 0.5) * delta
    vv, uu = np.meshgrid(c, c, indexing="ij")
    sv = vv[:, :, None, None] + offs[None, None, :, None]
    su = uu[:, :, None, None] + offs[None, None, None, :]
    w = aperture_mask(cfg, su, sv).mean(axis=(2, 3))
    keep = w > 1e-6
    u, v, w = uu[keep], vv[keep], w[keep]
    if w.sum() <= 0:
        raise RefocusError("the aperture has no open area")
    return u.astype(np.float64), v.astype(np.float64), (w / w.sum()).astype(np.float64)


def _box_weights(width_px: torch.Tensor, half: int) -> torch.Tensor:
    """Per-item 1-D box filters of fractional width, taps -half..half, unit sum.

    Tap n gets the length of ``[n - 1/2, n + 1/2]`` inside ``[-w/2, w/2]``; a width
    below 1 px is the identity.
    """
    n = torch.arange(-half, half + 1, device=width_px.device, dtype=torch.float32)
    w = width_px.clamp(min=1.0)[:, None]
    lo = torch.maximum(n[None] - 0.5, -w / 2)
    hi = torch.minimum(n[None] + 0.5, w / 2)
    k = (hi - lo).clamp(min=0.0)
    return k / k.sum(dim=1, keepdim=True)


def _prefilter(rgba: torch.Tensor, width_px: torch.Tensor) -> torch.Tensor:
    """Box-filter every (item, layer) over its own cell footprint ``width_px`` (B, L)."""
    B, L, C, Hp, Wp = rgba.shape
    if float(width_px.max()) <= 1.0:
        return rgba
    half = int(math.ceil((float(width_px.max()) - 1) / 2))
    k = _box_weights(width_px.reshape(-1).float(), half)  # (B*L, taps)
    k = k.repeat_interleave(C, dim=0)  # one filter per channel
    x = rgba.reshape(1, B * L * C, Hp, Wp)
    x = F.conv2d(F.pad(x, (half, half, 0, 0), mode="replicate"), k[:, None, None, :], groups=B * L * C)
    x = F.conv2d(F.pad(x, (0, 0, half, half), mode="replicate"), k[:, None, :, None], groups=B * L * C)
    return x.reshape(B, L, C, Hp, Wp)


# --------------------------------------------------------------------------- ray tracing


def render_thin_lens(
    layers: Layers,
    K: torch.Tensor | float,
    focus_disparity: torch.Tensor | float,
    aperture: ApertureConfig | None = None,
    *,
    spacing_px: float = 1.0,
    max_samples: int = 20000,
    max_cell: float | None = None,
    method: str = "auto",
    return_n_samples: bool = False,
):
    """Thin-lens photo of layered scenes, by averaging pinhole renders over the aperture.

    Parameters
    ----------
    layers:
        The scenes (see :class:`Layers`).
    K:
        Strength per item, px of CoC radius per unit disparity (scalar or (B,)).
    focus_disparity:
        Disparity of the focal plane per item (scalar or (B,)).
    aperture:
        Aperture shape (default: disc). ``cats_eye`` must be 0.
    spacing_px:
        Distance in px between neighbouring aperture samples at the largest |CoC|
        of the batch; smaller is more accurate and slower (cost ~ 1/spacing^2).
    max_samples:
        Upper bound on the number of aperture samples (raises beyond it).
    max_cell:
        Largest aperture cell, pupil units (the pupil spans [-1, 1]): sets the
        minimum number of samples (about pi / max_cell^2) for small blurs
        (default 0.25; 0.35 for ``"fast"``).
    method:
        ``"slices"`` (CPU, exact: pre-shifted copies and array views),
        ``"grid"`` (one batched ``grid_sample`` per sample, for GPUs),
        ``"auto"`` (slices on the CPU, grid elsewhere) or ``"fast"`` (CPU, the
        control variate of the module docstring, for training pairs; there
        ``spacing_px`` sets the coarse samples, 4 is a good value, and
        ``max_cell`` defaults to 0.35).

    Returns
    -------
    (B, 3, H, W) float32 linear image on the layers' device (and the number of
    aperture samples when ``return_n_samples``).
    """
    rgba = layers.rgba
    dev = rgba.device
    B, L, _, Hp, Wp = rgba.shape
    H, W = layers.frame_shape
    P = layers.pad
    K_t = torch.as_tensor(K, dtype=torch.float32, device=dev).reshape(-1).expand(B)
    f_t = torch.as_tensor(focus_disparity, dtype=torch.float32, device=dev).reshape(-1).expand(B)
    # Translation per unit of pupil coordinate: -coc (see the module docstring).
    t = (K_t[:, None] * (f_t[:, None] - layers.disparity.to(dev))).float()  # (B, L)
    if method not in ("auto", "slices", "grid", "fast"):
        raise RefocusError(f"unknown ray-tracing method {method!r}: use auto, slices, grid or fast")
    if max_cell is None:
        max_cell = _FAST_MAX_CELL if method == "fast" else _MAX_CELL
    if method == "fast":
        outs, n_max = [], 1
        with _cpu_threads("cpu"):
            for b in range(B):
                t_b = t[b].cpu()
                item = rgba[b].cpu()
                if float(t_b.abs().max()) < 1e-6:
                    outs.append(_composite(item[None, ..., P : P + H, P : P + W])[0])
                    continue
                if not (spacing_px > 0):
                    raise RefocusError(f"spacing_px must be positive, got {spacing_px}")
                o, n = _trace_fast(item, t_b, aperture, spacing_px, max_cell, P, H, W)
                outs.append(o.clamp_(min=0.0))
                n_max = max(n_max, n)
        out = torch.stack(outs).to(dev)
        return (out, n_max) if return_n_samples else out
    if method == "slices" or (method == "auto" and dev.type == "cpu"):
        # Item by item, each with the sample count its own largest CoC needs.
        outs, n_max = [], 1
        with _cpu_threads("cpu"):
            for b in range(B):
                t_b = t[b : b + 1].cpu()
                item = rgba[b : b + 1].cpu()
                plan = _plan_samples(float(t_b.abs().max()), spacing_px, aperture, max_samples, P, max_cell)
                if plan is None:
                    outs.append(_composite(item[..., P : P + H, P : P + W])[0])
                    continue
                delta, u, v, w = plan
                n_max = max(n_max, len(w))
                outs.append(_trace_cpu(item, t_b, delta * t_b.abs(), u, v, w, P, H, W)[0])
        out = torch.stack(outs).to(dev)
        return (out, n_max) if return_n_samples else out
    plan = _plan_samples(float(t.abs().max()), spacing_px, aperture, max_samples, P, max_cell)
    if plan is None:
        out = _composite(rgba[..., P : P + H, P : P + W])
        return (out, 1) if return_n_samples else out
    delta, u, v, w = plan
    out = _trace_grid(_prefilter(rgba, delta * t.abs()), t, u, v, w, P, H, W)
    return (out, len(w)) if return_n_samples else out


def _plan_samples(t_max: float, spacing_px: float, aperture, max_samples: int, pad: int, max_cell: float):
    """Aperture cells for a largest translation ``t_max`` (px per pupil unit), or
    None when nothing moves."""
    if t_max < 1e-6:
        return None
    if not (spacing_px > 0):
        raise RefocusError(f"spacing_px must be positive, got {spacing_px}")
    # A floor on the number of cells, so that small blurs keep their shape.
    delta = min(spacing_px / t_max, max_cell)
    u, v, w = aperture_samples(aperture, delta)
    if len(w) > max_samples:
        raise RefocusError(f"{len(w)} aperture samples needed (> {max_samples}); raise spacing_px")
    # Cell centres lie within 1 + delta/2 of the pupil centre; bilinear reads one
    # more pixel and the prefilter half a cell more.
    reach = t_max * (1.0 + delta / 2) + spacing_px / 2 + 1
    if reach > pad:
        raise RefocusError(f"layers are padded by {pad} px but the blur reaches {reach:.1f} px")
    return delta, u, v, w


def _composite(rgba: torch.Tensor) -> torch.Tensor:
    """Front-to-back "over" of (B, L, 4, H, W) premultiplied layers -> (B, 3, H, W)."""
    acc = torch.zeros_like(rgba[:, 0, :3])
    T = torch.ones_like(rgba[:, 0, 3:])
    for l in range(rgba.shape[1]):
        acc.addcmul_(T, rgba[:, l, :3])
        T = T * (1.0 - rgba[:, l, 3:])
    return acc


def _breakpoints(side_px: float) -> np.ndarray:
    """Sub-pixel offsets in [0, 1) where the pixel coverage of a box of width
    ``side_px`` stops being linear in the box's position (an end crosses a pixel
    boundary), plus 0, followed by 1."""
    pts = {0.0, round((0.5 - side_px / 2) % 1.0, 9), round((0.5 + side_px / 2) % 1.0, 9)}
    pts = sorted(p for p in pts if p < 1.0 - 1e-9)
    return np.asarray(pts + [1.0])


def _trace_cpu(rgba, t, cell_px, u, v, w, P, H, W):
    """CPU path, exact up to float rounding.

    Sample k sees layer l through the footprint of its aperture cell: a square of
    side ``cell_px[l]`` centred ``t[l] * (u_k, v_k)`` px away. Its pixel coverage is
    separable and, along each axis, piecewise linear in the sub-pixel position,
    with at most three breakpoints (:func:`_breakpoints`). So each layer is
    filtered once per pair of breakpoints (<= 9 copies) and every sample blends
    the (<= 4) copies around its position, read through array views at integer
    offsets: no quantisation, no interpolation error.
    """
    B, L = t.shape
    out = torch.zeros(B, 3, H, W, dtype=torch.float32)
    t_np = t.cpu().double().numpy()
    T = torch.empty(1, H, W, dtype=torch.float32)
    blend = torch.empty(4, H, W, dtype=torch.float32)
    for b in range(B):
        plans = []
        copies: dict[tuple[int, int, int], torch.Tensor] = {}
        for l in range(L):
            side = float(cell_px[b, l])
            bp = _breakpoints(side)
            per_axis = []
            for coord in (v, u):  # rows (y), then columns (x)
                s = t_np[b, l] * coord  # the image moves by +s
                i0 = np.floor(s)
                f = s - i0
                j = np.clip(np.searchsorted(bp, f, side="right") - 1, 0, len(bp) - 2)
                alpha = (f - bp[j]) / (bp[j + 1] - bp[j])
                j1 = j + 1
                i1 = i0.copy()
                wrap = j1 == len(bp) - 1  # breakpoint 1 is breakpoint 0 one pixel on
                j1[wrap] = 0
                i1[wrap] += 1
                per_axis.append(((j, i0.astype(np.int64), 1 - alpha), (j1, i1.astype(np.int64), alpha)))
            plans.append((side, bp, per_axis))

        def copy(l: int, jy: int, jx: int) -> torch.Tensor:
            key = (l, jy, jx)
            if key not in copies:
                side, bp, _ = plans[l]
                if (l, jy, -1) not in copies:
                    copies[(l, jy, -1)] = _footprint_filter(rgba[b, l], side, float(bp[jy]), dim=1)
                copies[key] = _footprint_filter(copies[(l, jy, -1)], side, float(bp[jx]), dim=2)
            return copies[key]

        acc = out[b]
        for k in range(len(w)):
            T.fill_(float(w[k]))
            for l in range(L):
                _, _, (ys, xs) = plans[l]
                terms = []
                for jy, iy, wy in ys:
                    for jx, ix, wx in xs:
                        wt = float(wy[k] * wx[k])
                        if wt > 1e-7:
                            c = copy(l, int(jy[k]), int(jx[k]))
                            y0, x0 = P - int(iy[k]), P - int(ix[k])
                            terms.append((wt, c[:, y0 : y0 + H, x0 : x0 + W]))
                if len(terms) == 1:
                    view = terms[0][1]
                else:
                    torch.mul(terms[0][1], terms[0][0], out=blend)
                    for wt, tv in terms[1:]:
                        blend.add_(tv, alpha=wt)
                    view = blend
                acc.addcmul_(T, view[:3])
                if l < L - 1:
                    T.addcmul_(T, view[3:], value=-1.0)
    return out


def _footprint_taps(side_px: float, offset_px: float) -> tuple[np.ndarray, int]:
    """Taps i = -half..half: the share of a segment of length ``side_px`` centred at
    ``offset_px`` that falls in pixel i (pixel i spans [i - 1/2, i + 1/2])."""
    side = max(side_px, 1e-6)
    lo, hi = offset_px - side / 2, offset_px + side / 2
    half = int(math.ceil(max(abs(lo), abs(hi)) + 0.5))
    i = np.arange(-half, half + 1)
    taps = np.clip(np.minimum(i + 0.5, hi) - np.maximum(i - 0.5, lo), 0.0, None) / side
    return taps / taps.sum(), half


def _footprint_filter(x: torch.Tensor, side_px: float, offset_px: float, dim: int) -> torch.Tensor:
    """``out[j] = sum_i taps[i] x[j - i]`` along ``dim`` (1 = rows, 2 = columns) of a
    (C, H, W) tensor, zeros beyond the edges: ``x`` seen through a box of width
    ``side_px`` moved by ``offset_px``, area-exact on the pixel grid."""
    taps, half = _footprint_taps(side_px, offset_px)
    n = x.shape[dim]
    out = torch.zeros_like(x)
    for idx in np.nonzero(taps > 1e-12)[0]:
        i = int(idx) - half
        if abs(i) >= n:
            continue
        # out[j] += taps * x[j - i]
        dst = out.narrow(dim, max(i, 0), n - abs(i))
        src = x.narrow(dim, max(-i, 0), n - abs(i))
        dst.add_(src, alpha=float(taps[idx]))
    return out


def _trace_grid(rgba, t, u, v, w, P, H, W):
    """Device path: one batched bilinear ``grid_sample`` per aperture sample."""
    B, L, C, Hp, Wp = rgba.shape
    dev = rgba.device
    x = rgba.reshape(B * L, C, Hp, Wp)
    ys = torch.arange(H, device=dev, dtype=torch.float32) + P
    xs = torch.arange(W, device=dev, dtype=torch.float32) + P
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    tf = t.reshape(B * L, 1, 1)
    out = torch.zeros(B, 3, H, W, device=dev, dtype=torch.float32)
    for k in range(len(w)):
        px = gx[None] - tf * float(u[k])
        py = gy[None] - tf * float(v[k])
        grid = torch.stack([(2 * px + 1) / Wp - 1, (2 * py + 1) / Hp - 1], dim=-1)
        s = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        s = s.reshape(B, L, C, H, W)
        T = torch.full((B, 1, H, W), float(w[k]), device=dev)
        for l in range(L):
            out.addcmul_(T, s[:, l, :3])
            T = T * (1.0 - s[:, l, 3:])
    return out


# --------------------------------------------------------------------------- fast path (control variate)

#: Pupil cell of the fast path's reference kernels (pupil units): 129 x 129 cells,
#: a quarter pixel apart at a 16 px CoC, so the kernels match ``aperture.kernel``.
_FINE_CELL = 1.0 / 64

#: Default largest coarse cell of the fast path (pupil units): 37 samples
#: for small blurs; the reference kernels, not the samples, give the bokeh shape.
#: 0.5 was 2.7 dB worse on training scenes for 10 % less time.
_FAST_MAX_CELL = 0.35

#: Side of the tiles in which the fast path samples occlusion, px.
_TILE_PX = 32

#: Groups of fewer tiles are merged into one (see _trace_fast).
_MIN_GROUP_TILES = 4

#: Sub-pixel phases per axis of the fast path's sample translations.
_PHASES = 2

_GRID_CACHE: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}


def _pupil_grid(aperture: ApertureConfig | None, delta: float) -> tuple[np.ndarray, np.ndarray]:
    """Pupil cells of side ``delta`` as a grid: centres ``c`` (n,) on both axes and
    weights ``m`` (n, n) indexed [v, u], summing to 1 (the same cells and weights as
    :func:`aperture_samples`, not flattened). Cached per aperture and ``delta``."""
    cfg = aperture or ApertureConfig()
    if cfg.cats_eye > 0:
        raise RefocusError("the synthetic ray tracer does not model cat's-eye clipping (cats_eye must be 0)")
    key = (cfg.key(), round(delta, 12))
    hit = _GRID_CACHE.get(key)
    if hit is None:
        n = int(math.floor((1.0 + delta / 2) / delta))
        c = np.arange(-n, n + 1) * delta
        ss = 4
        s = (c[:, None] + ((np.arange(ss) + 0.5) / ss - 0.5)[None] * delta).ravel()
        vv, uu = np.meshgrid(s, s, indexing="ij")
        m = aperture_mask(cfg, uu, vv).reshape(2 * n + 1, ss, 2 * n + 1, ss).mean(axis=(1, 3))
        m[m <= 1e-6] = 0.0
        if m.sum() <= 0:
            raise RefocusError("the aperture has no open area")
        if len(_GRID_CACHE) > 64:  # coarse grids change with every item's largest CoC
            _GRID_CACHE.clear()
        hit = _GRID_CACHE[key] = (c, m / m.sum())
    return hit


def _coverage_taps(centres_px: np.ndarray, side_px: float, half: int) -> np.ndarray:
    """(n, 2 half + 1) taps: the share of a segment of length ``side_px`` centred at
    each of ``centres_px`` that falls in pixel i = -half..half (pixel i spans
    [i - 1/2, i + 1/2])."""
    side = max(side_px, 1e-6)
    i = np.arange(-half, half + 1)
    lo = centres_px[:, None] - side / 2
    hi = centres_px[:, None] + side / 2
    return np.clip(np.minimum(i + 0.5, hi) - np.maximum(i - 0.5, lo), 0.0, None) / side


def _exact_kernels(t_px: np.ndarray, aperture, pad: int) -> list[np.ndarray]:
    """Per layer of translation ``t_px`` (px per pupil unit) the reference kernel of
    the fast path, all (2 half + 1)^2 arrays of one common ``half``: the aperture
    in cells of :data:`_FINE_CELL`, each seen through its pixel-exact footprint
    (what the exact ray tracer gives for an isolated point)."""
    t_max = float(np.abs(t_px).max())
    c_f, m_f = _pupil_grid(aperture, _FINE_CELL)
    half = int(math.ceil(t_max * (float(np.abs(c_f).max()) + _FINE_CELL / 2) + 0.5))
    if half > pad:
        raise RefocusError(f"layers are padded by {pad} px but the blur reaches {half} px")
    out = []
    for t in t_px:
        fy = _coverage_taps(t * c_f, _FINE_CELL * abs(t), half)  # rows (v) and columns (u) alike
        out.append(fy.T @ m_f @ fy)
    return out


def _coarse_samples(t_px: np.ndarray, aperture, spacing_px: float, max_cell: float):
    """Coarse aperture samples for layers of translation ``t_px``: cells of side
    ``delta`` such that at the largest |t| neighbours land ``spacing_px`` apart (at
    most ``max_cell``). Returns (L, n, 2) (row, column) translations in px, (n,)
    weights and ``delta``."""
    delta = min(spacing_px / float(np.abs(t_px).max()), max_cell)
    c, m = _pupil_grid(aperture, delta)
    pos = t_px[:, None] * c[None]  # (L, grid), px
    jv, iu = np.nonzero(m)
    return np.stack([pos[:, jv], pos[:, iu]], axis=-1), m[jv, iu], delta


def _fast_fft_len(n: int) -> int:
    """Smallest m >= n whose only prime factors are 2, 3 and 5 (FFTs of such sizes
    are several times faster: 304 = 16 * 19 took 3x as long as 320)."""
    m = n
    while True:
        k = m
        for p in (2, 3, 5):
            while k % p == 0:
                k //= p
        if k == 1:
            return m
        m += 1


def _embed_kernels(kernels: list[np.ndarray], Hf: int, Wf: int) -> torch.Tensor:
    """(n, Hf, Wf) circular embeddings (centre tap at [0, 0]) for FFT convolution."""
    half = kernels[0].shape[0] // 2
    out = np.zeros((len(kernels), Hf, Wf), np.float32)
    iy = np.arange(-half, half + 1) % Hf
    ix = np.arange(-half, half + 1) % Wf
    for n, k in enumerate(kernels):
        out[n][np.ix_(iy, ix)] = k
    return torch.from_numpy(out)


def _tile_starts(n: int, tile: int) -> list[int]:
    """Tile origins covering [0, n); the last tile is moved inwards to fit (it then
    overlaps its neighbour, which is harmless: both compute the same pixels)."""
    starts = list(range(0, n - tile + 1, tile))
    if starts[-1] + tile < n:
        starts.append(n - tile)
    return starts


def _window_range(a: torch.Tensor, ty: list[int], tx: list[int], win: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Max and min of ``a`` (h, w) over the ``win`` x ``win`` windows at origins
    ``ty`` x ``tx``, each (len(ty), len(tx)); separable: rows first, then columns."""
    rows = [a[y : y + win].aminmax(dim=0) for y in ty]
    hi, lo = torch.stack([m.max for m in rows]), torch.stack([m.min for m in rows])
    hi = torch.stack([hi[:, x : x + win].amax(dim=1) for x in tx], dim=1)
    lo = torch.stack([lo[:, x : x + win].amin(dim=1) for x in tx], dim=1)
    return hi, lo


def _box_filter(x: torch.Tensor, taps_x: np.ndarray, dim: int) -> torch.Tensor:
    """``out[p] = sum_i taps[i] x[p - i]`` (i = -half..half) along ``dim`` of ``x``, by
    shifted multiply-adds (depthwise ``conv2d`` was 4x slower here); the outer
    ``half`` entries are left at zero (callers never read them)."""
    hb = len(taps_x) // 2
    if hb == 0 and taps_x[0] == 1.0:
        return x
    n = x.shape[dim]
    y = torch.zeros_like(x)
    dst = y.narrow(dim, hb, n - 2 * hb)
    for j, tap in enumerate(taps_x.tolist()):
        if tap > 1e-12:
            dst.add_(x.narrow(dim, 2 * hb - j, n - 2 * hb), alpha=tap)
    return y


def _trace_fast(rgba: torch.Tensor, t: torch.Tensor, aperture, spacing_px: float, max_cell: float,
                P: int, H: int, W: int) -> tuple[torch.Tensor, int]:
    """Fast CPU path for one item (``rgba`` (L, 4, Hp, Wp), ``t`` (L,)): a control variate.

    With per-layer kernels ``k_l``, "blur then composite"
    (``LB(k) = sum_l (k_l * c_l) prod_{m<l} (1 - k_m * a_m)``) is the exact lens
    photo wherever every front layer's alpha is constant within its blur's reach
    (nothing there is partly occluded), but wrong at occlusions. The sampled
    render ``S`` gets occlusion right but, with few samples, the bokeh shape wrong.
    The estimate is ``LB(exact) + S - LB(coarse)``, where ``coarse`` are the kernels
    ``S`` effectively applies to each layer: where ``LB`` is exact, ``S ==
    LB(coarse)`` and the result is ``LB(exact)``; at occlusions ``S`` supplies the
    occlusion and ``LB(exact) - LB(coarse)`` (small: only the outline of the
    kernels differs) sharpens the outline.

    ``LB(exact)`` is one FFT convolution per layer. ``S`` and ``LB(coarse)`` are
    computed only in the tiles where some front layer's alpha varies within its
    reach (about a third of the frame in training scenes), with only the layers
    visible there. Samples move a layer by whole pixels; the layer is first
    box-filtered over the cell's footprint so that the copies of a bright light
    tile its bokeh instead of leaving dots (which occlusion would turn into holes
    in the estimate). Per sample: a strided view and a few multiply-adds per layer.
    """
    L, C, Hp, Wp = rgba.shape
    t_np = t.double().numpy()
    pos, wts, delta = _coarse_samples(t_np, aperture, spacing_px, max_cell)
    # Sample translations to 1/_PHASES px: a whole-pixel shift of one of
    # _PHASES^2 copies of the layer, each box-filtered over the cell's footprint
    # and moved by its sub-pixel phase (whole-pixel rounding alone misplaced
    # occluding edges by up to 1/2 px: visible in front of bright lights).
    q = np.floor(pos * _PHASES + 0.5).astype(np.int64)
    shifts, phase = q // _PHASES, q % _PHASES  # (L, n, 2) each
    side = [max(delta * abs(tl), 1e-6) for tl in t_np]
    hb = [int(math.ceil(sd / 2 + 1)) for sd in side]
    taps = [[_coverage_taps(np.array([f / _PHASES]), side[l], hb[l])[0] for f in range(_PHASES)] for l in range(L)]
    # Margin each layer's samples read around a tile, px.
    reach = [int(np.abs(shifts[l]).max()) + hb[l] for l in range(L)]
    exact = _exact_kernels(t_np, aperture, 10**9)
    half = exact[0].shape[0] // 2
    grow = max(max(reach), half) - P
    if grow > 0:  # layers padded too little for these samples: zeros beyond, as everywhere
        rgba = F.pad(rgba, (grow, grow, grow, grow))
        P += grow
        Hp, Wp = Hp + 2 * grow, Wp + 2 * grow
    # LB(exact) over the frame, by FFT over the frame and the kernels' reach (no
    # wrap-around reaches the frame). The background's alpha (1) is never used.
    crop = rgba[..., P - half : P + H + half, P - half : P + W + half]
    Hf, Wf = _fast_fft_len(H + 2 * half), _fast_fft_len(W + 2 * half)
    kern = torch.fft.rfft2(_embed_kernels(exact, Hf, Wf))
    front = torch.fft.irfft2(torch.fft.rfft2(crop[: L - 1], s=(Hf, Wf)) * kern[: L - 1, None], s=(Hf, Wf))
    back = torch.fft.irfft2(torch.fft.rfft2(crop[L - 1, :3], s=(Hf, Wf)) * kern[L - 1], s=(Hf, Wf))
    out = back[:, half : half + H, half : half + W].contiguous()
    for l in range(L - 2, -1, -1):  # back to front: out = c_l + (1 - a_l) out
        fl = front[l, :, half : half + H, half : half + W]
        out.addcmul_(out, fl[3:], value=-1.0).add_(fl[:3])
    ts = min(_TILE_PX, H, W)
    ty, tx = _tile_starts(H, ts), _tile_starts(W, ts)
    # Per front layer, alpha's max and min over each tile's window (margin: the
    # samples' reach, which covers the exact kernel's).
    hi_all, lo_all = [], []
    for l in range(L - 1):
        r = max(reach[l], half)
        hi_l, lo_l = _window_range(rgba[l, 3, P - r : P + H + r, P - r : P + W + r], ty, tx, ts + 2 * r)
        hi_all.append(hi_l.numpy())
        lo_all.append(lo_l.numpy())
    # Per tile, the layers visible in it: those not transparent throughout, down to
    # the first one opaque throughout. Group the tiles where one of them (but the
    # last) has a varying alpha by that set of layers.
    groups: dict[tuple[int, ...], list[tuple[int, int]]] = {}
    for i, y in enumerate(ty):
        for j, x in enumerate(tx):
            seen, varies = [], False
            for l in range(L - 1):
                hi_, lo_ = hi_all[l][i, j], lo_all[l][i, j]
                if hi_ <= 0:
                    continue
                seen.append(l)
                if lo_ >= 1.0 - 1e-6:
                    break
                varies = varies or hi_ - lo_ > 1e-6
            else:
                seen.append(L - 1)
            if varies and len(seen) > 1:
                groups.setdefault(tuple(seen), []).append((y, x))
    # A group costs a fixed Python overhead per sample and layer, about what 2-3
    # tiles of work cost: fold small groups into the one with every layer (extra
    # layers are harmless: transparent ones add nothing, occluded ones are hidden).
    full = tuple(range(L))
    for sig in [g for g, tl in groups.items() if len(tl) < _MIN_GROUP_TILES and g != full]:
        groups.setdefault(full, []).extend(groups.pop(sig))
    # Per layer, the canvas rectangle its tiles' windows cover: only that is filtered.
    rect: dict[int, list[int]] = {}
    for sig, tiles in groups.items():
        for l in sig:
            r = reach[l]
            y0, y1 = min(y for y, _ in tiles) + P - r, max(y for y, _ in tiles) + P + ts + r
            x0, x1 = min(x for _, x in tiles) + P - r, max(x for _, x in tiles) + P + ts + r
            old_r = rect.get(l, [y0, y1, x0, x1])
            rect[l] = [min(old_r[0], y0), max(old_r[1], y1), min(old_r[2], x0), max(old_r[3], x1)]
    pre: dict[tuple[int, int, int], torch.Tensor] = {}
    rows: dict[tuple[int, int], torch.Tensor] = {}

    def copy(l: int, fy: int, fx: int) -> torch.Tensor:
        """Layer l (its rectangle) box-filtered and moved by (fy, fx) / _PHASES px."""
        if (l, fy, fx) not in pre:
            if (l, fx) not in rows:
                y0, y1, x0, x1 = rect[l]
                rows[(l, fx)] = _box_filter(rgba[l, : (4 if l < L - 1 else 3), y0:y1, x0:x1], taps[l][fx], dim=2)
            pre[(l, fy, fx)] = _box_filter(rows[(l, fx)], taps[l][fy], dim=1)
        return pre[(l, fy, fx)]

    lb_exact = out.clone() if groups else out
    for sig, tiles in groups.items():
        codes = [phase[l, :, 0] * _PHASES + phase[l, :, 1] for l in sig]
        layers = [{int(cd): copy(l, int(cd) // _PHASES, int(cd) % _PHASES) for cd in np.unique(codes[i])}
                  for i, l in enumerate(sig)]
        origins = [(P - rect[l][0], P - rect[l][2]) for l in sig]  # canvas row/col P in each copy
        delta_img = _sample_tiles(layers, codes, tiles, shifts[list(sig)], wts, [reach[l] for l in sig], ts, origins)
        # From LB(exact) as it was: the last tile of a row or column may overlap
        # one already corrected.
        base = torch.stack([lb_exact[:, y : y + ts, x : x + ts] for y, x in tiles])
        base += delta_img
        for i, (y, x) in enumerate(tiles):
            out[:, y : y + ts, x : x + ts] = base[i]
    return out, len(wts)


def _sample_tiles(layers, codes, tiles, shifts, wts, reach, ts, origins) -> torch.Tensor:
    """``S - LB(coarse)`` (n_tiles, 3, ts, ts) for ``layers`` (per layer, front to
    back, its prefiltered canvases by phase code; the last layer, rgb only, is
    opaque over these tiles) by the coarse samples: per layer (n,) phase ``codes``,
    (n, 2) whole-pixel ``shifts``; weights ``wts``. Frame pixel (0, 0) is at
    ``origins[i]`` in layer i's canvases."""
    n_l = len(layers)
    # Per layer and phase, the canvas windows the samples read for every tile.
    G = []
    for i, copies in enumerate(layers):
        r, ch = reach[i], (4 if i < n_l - 1 else 3)
        oy, ox = origins[i]
        G.append({cd: torch.stack([x_l[:ch, oy + y - r : oy + y + ts + r, ox + x - r : ox + x + ts + r]
                                   for y, x in tiles])
                  for cd, x_l in copies.items()})
    n = len(tiles)
    S = torch.zeros(n, 3, ts, ts)
    cb = [torch.zeros(n, 4 if i < n_l - 1 else 3, ts, ts) for i in range(n_l)]  # coarse blur of each layer
    T = torch.empty(n, 1, ts, ts)
    sh = [shifts[i].tolist() for i in range(n_l)]  # Python ints: numpy scalars cost more per sample
    cd = [codes[i].tolist() for i in range(n_l)]
    for k, wk in enumerate(wts.tolist()):
        for i in range(n_l):
            r = reach[i]
            sy, sx = sh[i][k]
            # The image moves by +s: output pixel y reads source pixel y - s.
            view = G[i][cd[i][k]][:, :, r - sy : r - sy + ts, r - sx : r - sx + ts]
            cb[i].add_(view, alpha=wk)
            if i == 0:
                # The front layer is seen through nothing: its S term is cb[0].
                torch.mul(view[:, 3:], -wk, out=T).add_(wk)
                continue
            S.addcmul_(T, view[:, :3])
            if i < n_l - 1:
                T.addcmul_(T, view[:, 3:], value=-1.0)
    S.add_(cb[0][:, :3])
    lb_coarse = cb[-1]
    for i in range(n_l - 2, -1, -1):
        lb_coarse.addcmul_(lb_coarse, cb[i][:, 3:], value=-1.0).add_(cb[i][:, :3])
    return S.sub_(lb_coarse)

def composite_all_in_focus(layers: Layers) -> tuple[torch.Tensor, torch.Tensor]:
    """The pinhole image and its disparity map.

    Returns ``(rgb_linear (B, 3, H, W), disparity (B, H, W))``; the disparity of a
    pixel is that of the front-most layer whose alpha there is >= 0.5.
    """
    H, W = layers.frame_shape
    P = layers.pad
    rgba = layers.rgba[..., P : P + H, P : P + W]
    rgb = _composite(rgba)
    B, L = layers.disparity.shape
    disp = layers.disparity[:, -1, None, None].expand(B, H, W).clone()
    for l in range(L - 2, -1, -1):
        m = rgba[:, l, 3] >= 0.5
        disp = torch.where(m, layers.disparity[:, l, None, None].expand(B, H, W), disp)
    return rgb, disp


# --------------------------------------------------------------------------- textures


@lru_cache(maxsize=1)
def _photo_bank_cpu() -> tuple[torch.Tensor, ...]:
    """Linear-light photo textures (3, h, w): scikit-image's bundled photos and the
    shared photos when present. Missing sources are skipped."""
    imgs: list[np.ndarray] = []
    try:
        import skimage.data as skd

        for name in _SKIMAGE_PHOTOS + _SKIMAGE_GRAY:
            try:
                a = np.asarray(getattr(skd, name)())
            except Exception:  # an image missing from this scikit-image build
                continue
            if a.ndim == 2:
                a = np.repeat(a[..., None], 3, axis=2)
            imgs.append(a[..., :3])
    except ImportError:  # pragma: no cover - scikit-image is a core dependency
        pass
    if _SHARED_PHOTOS.is_dir():
        from PIL import Image

        for p in sorted(_SHARED_PHOTOS.glob("*.jpg")):
            try:
                with Image.open(p) as im:
                    im = im.convert("RGB")
                    im.thumbnail((768, 768))
                    imgs.append(np.asarray(im))
            except Exception:
                continue
    out = []
    for a in imgs:
        x = torch.from_numpy(np.array(a, copy=True)).permute(2, 0, 1).float() / 255.0
        out.append(_srgb_to_linear_t(x).contiguous())
    return tuple(out)


_BANK_ON_DEVICE: dict[str, tuple[torch.Tensor, ...]] = {}


def _photo_bank(device: torch.device) -> tuple[torch.Tensor, ...]:
    key = str(device)
    if key not in _BANK_ON_DEVICE:
        _BANK_ON_DEVICE[key] = tuple(x.to(device) for x in _photo_bank_cpu())
    return _BANK_ON_DEVICE[key]


class _cpu_threads:
    """Run small CPU tensor operations on one thread.

    On a busy 2-core machine a 2-thread pool made a 0.3 ms ``addcmul_`` take 14 ms;
    generation is a long run of such operations. Parallelise across processes
    (e.g. DataLoader workers) instead. No effect on other devices.
    """

    def __init__(self, device: torch.device | str):
        self.active = torch.device(device).type == "cpu"

    def __enter__(self):
        if self.active:
            self.n = torch.get_num_threads()
            torch.set_num_threads(1)

    def __exit__(self, *exc):
        if self.active:
            torch.set_num_threads(self.n)


class _Rand:
    """Scalar random draws from a CPU torch generator (deterministic on every device)."""

    def __init__(self, gen: torch.Generator):
        self.g = gen

    def u(self, lo: float = 0.0, hi: float = 1.0) -> float:
        return lo + (hi - lo) * float(torch.rand((), generator=self.g))

    def i(self, lo: int, hi: int) -> int:
        """Integer in [lo, hi]."""
        return int(torch.randint(lo, hi + 1, (), generator=self.g))

    def t(self, *shape) -> torch.Tensor:
        return torch.rand(*shape, generator=self.g)

    def colour(self) -> torch.Tensor:
        return _srgb_to_linear_t(self.t(3))


def _texture(r: _Rand, Hp: int, Wp: int, gx: torch.Tensor, gy: torch.Tensor, dev: torch.device,
             photo_prob: float) -> torch.Tensor:
    """A random (3, Hp, Wp) linear texture: a photo patch or a procedural pattern."""
    bank = _photo_bank(dev)
    kind = r.u()
    if bank and kind < photo_prob:
        img = bank[r.i(0, len(bank) - 1)]
        _, h, w = img.shape
        # Scale 0.6..1.6 px of photo per canvas px, limited by the photo's size.
        scale = min(r.u(0.6, 1.6), h / Hp, w / Wp)
        ch, cw = max(8, int(Hp * scale)), max(8, int(Wp * scale))
        y0, x0 = r.i(0, h - ch), r.i(0, w - cw)
        crop = img[:, y0 : y0 + ch, x0 : x0 + cw]
        if r.u() < 0.5:
            crop = crop.flip(-1)
        tex = F.interpolate(crop[None], size=(Hp, Wp), mode="bilinear", align_corners=False, antialias=scale > 1)[0]
        # Vary exposure and tint so that the same photo gives many textures.
        return tex * (r.u(0.5, 1.4) * (0.8 + 0.4 * r.t(3))).to(dev)[:, None, None]
    c0, c1 = r.colour().to(dev), r.colour().to(dev)
    kind = (kind - photo_prob) / max(1e-9, 1 - photo_prob)
    th = r.u(0, math.pi)
    proj = gx * math.cos(th) + gy * math.sin(th)
    if kind < 0.3:  # multi-octave value noise
        m = torch.zeros(Hp, Wp, device=dev)
        amp, tot = 1.0, 0.0
        cells = r.i(3, 8)
        for _ in range(4):
            g = r.t(1, 1, cells + 1, cells + 1).to(dev)
            m += amp * F.interpolate(g, size=(Hp, Wp), mode="bicubic", align_corners=True)[0, 0]
            tot += amp
            amp *= r.u(0.35, 0.7)
            cells *= 2
        m = (m / tot).clamp(0, 1)
        lo, hi = float(m.min()), float(m.max())
        m = (m - lo) / max(hi - lo, 1e-6)
    elif kind < 0.55:  # stripes, period >= 4 px so they stay antialiased
        period = r.u(4.0, 40.0)
        m = 0.5 + 0.5 * torch.sin(2 * math.pi * proj / period + r.u(0, 6.3))
        m = ((m - 0.5) * r.u(1.0, 4.0) + 0.5).clamp(0, 1)
    elif kind < 0.8:  # linear gradient
        lo, hi = float(proj.min()), float(proj.max())
        m = (proj - lo) / max(hi - lo, 1e-6)
    else:  # rotated checker with ~1 px soft edges
        period = r.u(6.0, 48.0)
        proj2 = -gx * math.sin(th) + gy * math.cos(th)
        s = torch.sin(math.pi * proj / period) * torch.sin(math.pi * proj2 / period)
        m = (0.5 + s * period / 2).clamp(0, 1)
    return c0[:, None, None] * (1 - m)[None] + c1[:, None, None] * m[None]


def _shape_alpha(r: _Rand, gx: torch.Tensor, gy: torch.Tensor, cx: float, cy: float, rad: float) -> torch.Tensor:
    """Antialiased alpha (Hp, Wp) of a random disc, ellipse, polygon or blob."""
    dx, dy = gx - cx, gy - cy
    kind = r.i(0, 3)
    if kind == 0:
        sd = torch.sqrt(dx * dx + dy * dy) - rad
    elif kind == 1:
        a, b = rad, rad * r.u(0.3, 1.0)
        th = r.u(0, math.pi)
        xr = dx * math.cos(th) + dy * math.sin(th)
        yr = -dx * math.sin(th) + dy * math.cos(th)
        q = torch.sqrt((xr / a) ** 2 + (yr / b) ** 2).clamp(min=1e-6)
        grad = torch.sqrt((xr / a**2) ** 2 + (yr / b**2) ** 2).clamp(min=1e-9) / q
        sd = (q - 1) / grad
    elif kind == 2:
        n = r.i(3, 8)
        ang = torch.sort(r.t(n) * 2 * math.pi).values
        ang = ang + torch.linspace(0, 2 * math.pi, n + 1)[:-1] * 0.5  # spread vertices out
        ang = torch.sort(torch.remainder(ang, 2 * math.pi)).values
        px = (rad * torch.cos(ang)).tolist()
        py = (rad * torch.sin(ang)).tolist()
        sd = torch.full_like(gx, -1e9)
        for i in range(n):
            x0, y0, x1, y1 = px[i], py[i], px[(i + 1) % n], py[(i + 1) % n]
            ex, ey = x1 - x0, y1 - y0
            ln = math.hypot(ex, ey)
            if ln < 1e-6:
                continue
            # Outward normal of a counter-clockwise (in angle) edge.
            nx, ny = ey / ln, -ex / ln
            sd = torch.maximum(sd, (dx - x0) * nx + (dy - y0) * ny)
    else:
        th = torch.atan2(dy, dx)
        rr = torch.ones_like(gx)
        for k in range(2, 6):
            rr = rr + r.u(-0.12, 0.12) * torch.cos(k * th + r.u(0, 6.3))
        sd = torch.sqrt(dx * dx + dy * dy) - rad * rr
    return (0.5 - sd).clamp(0.0, 1.0)


def make_layers(
    rand: torch.Generator,
    batch: int,
    size: tuple[int, int],
    pad: int,
    *,
    n_planes: int = 4,
    shapes_per_plane: tuple[int, int] = (1, 4),
    n_lights: tuple[int, int] = (0, 12),
    light_gain: tuple[float, float] = (1.0, 16.0),
    photo_prob: float = 0.5,
    device: str | torch.device = "cpu",
) -> tuple[Layers, list[np.ndarray]]:
    """Random dead-leaves scenes as :class:`Layers`.

    Parameters
    ----------
    rand:
        CPU ``torch.Generator``; all random choices come from it, so a seed gives
        the same scene on every device.
    batch, size:
        Number of scenes and their (H, W) in pixels.
    pad:
        Canvas margin in px (at least the largest |CoC| plus a few px).
    n_planes:
        Planes in front of the background; the nearest has disparity 1, the
        others uniform in (0.05, 0.95), the background 0.
    shapes_per_plane:
        Range of shapes per plane.
    n_lights:
        Range of point lights per scene (spots 1..3 px wide, mostly on the back
        planes; linear peak ``light_gain``, values above 1 clip in sRGB).
    photo_prob:
        Probability that a texture is a photo patch rather than procedural.

    Returns
    -------
    The layers and, per scene, the (n, 2) positions (x, y) of its lights in frame px.
    """
    with _cpu_threads(device):
        return _make_layers(rand, batch, size, pad, n_planes, shapes_per_plane, n_lights, light_gain, photo_prob,
                            torch.device(device))


def _make_layers(rand, batch, size, pad, n_planes, shapes_per_plane, n_lights, light_gain, photo_prob, dev):
    H, W = size
    Hp, Wp = H + 2 * pad, W + 2 * pad
    L = n_planes + 1
    r = _Rand(rand)
    ys = torch.arange(Hp, device=dev, dtype=torch.float32)
    xs = torch.arange(Wp, device=dev, dtype=torch.float32)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    rgba = torch.zeros(batch, L, 4, Hp, Wp, device=dev)
    disp = torch.zeros(batch, L)
    lights_all = []
    diag = math.hypot(H, W)
    for b in range(batch):
        mids = sorted((0.05 + 0.9 * r.t(max(n_planes - 1, 0))).tolist(), reverse=True)
        d = ([1.0] + mids)[:n_planes] + [0.0]
        disp[b] = torch.tensor(d)
        # Background: opaque, textured over the whole canvas.
        rgba[b, L - 1, :3] = _texture(r, Hp, Wp, gx, gy, dev, photo_prob)
        rgba[b, L - 1, 3] = 1.0
        for l in range(n_planes):
            # Nearer planes get larger shapes, like objects closer to the camera.
            size_scale = 0.06 + 0.16 * d[l]
            for _ in range(r.i(*shapes_per_plane)):
                rad = diag * size_scale * r.u(0.5, 1.5)
                cx, cy = pad + r.u(0, W), pad + r.u(0, H)
                # Work on the shape's bounding box only (blobs reach 1.48 rad).
                ys_, xs_ = _bbox(cy, cx, 1.5 * rad + 2, Hp, Wp)
                a = _shape_alpha(r, gx[ys_, xs_], gy[ys_, xs_], cx, cy, rad)
                tex = _texture(r, a.shape[0], a.shape[1], gx[ys_, xs_], gy[ys_, xs_], dev, photo_prob)
                _over(rgba[b, l, :, ys_, xs_], tex, a)
        lights = []
        for _ in range(r.i(*n_lights)):
            # Mostly on the back planes, where bokeh balls are seen.
            l = L - 1 - min(int(r.u() ** 2 * L), L - 1)
            x, y = r.u(0, W), r.u(0, H)
            rad = r.u(0.5, 1.5)
            ys_, xs_ = _bbox(pad + y, pad + x, rad + 2, Hp, Wp)
            a = _shape_alpha_disc(gx[ys_, xs_], gy[ys_, xs_], pad + x, pad + y, rad)
            col = (0.6 + 0.4 * r.t(3)).to(dev) * r.u(*light_gain)
            _over(rgba[b, l, :, ys_, xs_], col[:, None, None].expand(3, *a.shape), a)
            lights.append((x, y))
        lights_all.append(np.asarray(lights, dtype=np.float32).reshape(-1, 2))
    return Layers(rgba=rgba, disparity=disp.to(dev), pad=pad), lights_all


def _bbox(cy: float, cx: float, half: float, Hp: int, Wp: int) -> tuple[slice, slice]:
    y0, y1 = max(0, int(cy - half)), min(Hp, int(math.ceil(cy + half)) + 1)
    x0, x1 = max(0, int(cx - half)), min(Wp, int(math.ceil(cx + half)) + 1)
    return slice(y0, max(y1, y0 + 1)), slice(x0, max(x1, x0 + 1))


def _over(dst: torch.Tensor, rgb: torch.Tensor, a: torch.Tensor) -> None:
    """Draw premultiplied ``rgb * a`` with alpha ``a`` over ``dst`` (4, h, w) in place;
    shapes within one plane occlude each other in drawing order."""
    keep = 1.0 - a
    dst[:3] = rgb * a + dst[:3] * keep
    dst[3] = a + dst[3] * keep


def _shape_alpha_disc(gx, gy, cx, cy, rad):
    return (0.5 - (torch.sqrt((gx - cx) ** 2 + (gy - cy) ** 2) - rad)).clamp(0.0, 1.0)


# --------------------------------------------------------------------------- public generators


def _pick_focus(r: _Rand, disp: list[float]) -> float:
    # Mostly on a plane (something in the picture is sharp), sometimes between.
    if r.u() < 0.75:
        return float(disp[r.i(0, len(disp) - 1)])
    return r.u(0.0, 1.0)


def make_scene(
    seed: int,
    size: tuple[int, int] = (256, 256),
    *,
    max_coc_px: float = 12.0,
    focus_disparity: float | None = None,
    aperture: ApertureConfig | None = None,
    n_planes: int = 4,
    n_lights: tuple[int, int] = (0, 12),
    spacing_px: float = 1.0,
    device: str = "cpu",
) -> SyntheticScene:
    """One deterministic ray-traced scene.

    Parameters
    ----------
    seed:
        Everything random comes from ``torch.Generator().manual_seed(seed)``.
    size:
        (H, W) in pixels.
    max_coc_px:
        Largest |CoC| radius in the scene, px; K is set so that the plane
        farthest from focus (disparity 0 or 1) reaches it.
    focus_disparity:
        Focal plane; by default a random plane's disparity (75 %) or uniform.
    aperture:
        Aperture shape (default: disc).
    n_planes, n_lights:
        See :func:`make_layers`.
    spacing_px:
        Aperture sample spacing at the largest CoC (see :func:`render_thin_lens`).
    device:
        Torch device for the rendering.
    """
    H, W = size
    if H < 8 or W < 8:
        raise RefocusError(f"scene size must be at least 8x8, got {W}x{H}")
    if not (max_coc_px >= 0):
        raise RefocusError(f"max_coc_px must be >= 0, got {max_coc_px}")
    gen = torch.Generator().manual_seed(int(seed))
    pad = int(math.ceil(max_coc_px * 1.1 + spacing_px)) + 4
    layers, lights = make_layers(gen, 1, size, pad, n_planes=n_planes, n_lights=n_lights, device=device)
    r = _Rand(gen)
    d_planes = layers.disparity[0].cpu().tolist()
    f = _pick_focus(r, d_planes) if focus_disparity is None else float(focus_disparity)
    if not (0.0 <= f <= 1.0):
        raise RefocusError(f"focus_disparity must be in [0, 1], got {f}")
    K = max_coc_px / max(f, 1.0 - f, 1e-6)
    lens_lin, n_samples = render_thin_lens(layers, K, f, aperture, spacing_px=spacing_px, max_cell=0.125,
                                           return_n_samples=True)
    aif_lin, disp = composite_all_in_focus(layers)
    aif_lin_np = aif_lin[0].permute(1, 2, 0).cpu().numpy().astype(np.float32)
    lens_lin_np = lens_lin[0].permute(1, 2, 0).cpu().numpy().astype(np.float32)
    disp_np = disp[0].cpu().numpy().astype(np.float32)
    from refocus.io.color import linear_to_srgb

    return SyntheticScene(
        all_in_focus=linear_to_srgb(aif_lin_np),
        all_in_focus_linear=aif_lin_np,
        lens=linear_to_srgb(lens_lin_np),
        lens_linear=lens_lin_np,
        disparity=disp_np,
        coc_px=coc_map(disp_np, f, K),
        K=float(K),
        focus_disparity=f,
        aperture=aperture or ApertureConfig(),
        camera=CameraParams.from_strength(K, f, W),
        layer_disparities=np.asarray(d_planes, dtype=np.float32),
        lights_xy=lights[0],
        seed=int(seed),
        spacing_px=spacing_px,
        n_samples=int(n_samples),
    )


def frozen_test_set(
    n: int = 12,
    size: tuple[int, int] = (256, 256),
    seed: int = 20240601,
    *,
    max_coc_px: tuple[float, ...] = (4.0, 8.0, 12.0, 16.0),
    spacing_px: float = 1.0,
) -> list[SyntheticScene]:
    """A fixed, deterministic benchmark set.

    Scene ``i`` is ``make_scene(seed + i, size, max_coc_px=max_coc_px[i % len], ...)``
    with the aperture cycling through a disc, a 6-blade polygon and a 5-blade
    curved polygon rotated by 18 degrees. The same arguments give the same images
    on every run (CPU, float32).
    """
    apertures = (
        ApertureConfig(shape="disc"),
        ApertureConfig(shape="polygon", blades=6),
        ApertureConfig(shape="polygon", blades=5, curvature=0.3, rotation_deg=18.0),
    )
    return [
        make_scene(seed + i, size, max_coc_px=max_coc_px[i % len(max_coc_px)], aperture=apertures[i % len(apertures)],
                   spacing_px=spacing_px)
        for i in range(n)
    ]


def generate_pairs(
    batch: int,
    size: tuple[int, int] = (256, 256),
    device: str | torch.device = "cpu",
    generator: torch.Generator | None = None,
    *,
    max_coc_px: tuple[float, float] = (1.0, 16.0),
    aperture: ApertureConfig | None = None,
    spacing_px: float | None = None,
    n_planes: int = 3,
    n_lights: tuple[int, int] = (0, 8),
) -> dict[str, torch.Tensor]:
    """Training pairs for DeblurNet: lens photo -> all-in-focus.

    The batch shares one focus-independent sample spacing; each item draws its
    own scene, focus (as in :func:`make_scene`) and largest |CoC| uniformly in
    ``max_coc_px``.

    Parameters
    ----------
    batch, size:
        Number of pairs and their (H, W), px.
    device:
        Where the heavy work runs ("cpu" or "cuda").
    generator:
        CPU ``torch.Generator`` for all random choices (default: a fresh unseeded
        one); the same seed gives the same pairs on CPU and GPU up to float error.
    max_coc_px:
        Range of the largest |CoC| radius per item, px.
    spacing_px:
        Aperture sample spacing at each item's largest CoC (see
        :func:`render_thin_lens`); default 4 on the CPU, where the ``"fast"``
        path renders (the spacing only sets how finely occlusion is sampled;
        bokeh shapes come from exact kernels), 1.0 elsewhere (``"grid"``).
    n_planes, n_lights:
        See :func:`make_layers`.

    Returns
    -------
    dict of float32 tensors on ``device``: ``blurred`` and ``sharp`` (B, 3, H, W)
    sRGB in [0, 1]; ``blurred_linear``, ``sharp_linear`` (B, 3, H, W) linear;
    ``disparity`` and ``coc_px`` (B, 1, H, W); ``K`` and ``focus_disparity`` (B,).
    """
    gen = generator if generator is not None else torch.Generator()
    if gen.device.type != "cpu":
        raise RefocusError("generate_pairs needs a CPU torch.Generator (random draws are made on the CPU)")
    if batch < 1:
        raise RefocusError(f"batch must be >= 1, got {batch}")
    lo, hi = max_coc_px
    if not (0 <= lo <= hi):
        raise RefocusError(f"max_coc_px must be an increasing range of non-negative radii, got {max_coc_px}")
    dev = torch.device(device)
    if spacing_px is None:
        spacing_px = 4.0 if dev.type == "cpu" else 1.0
    method = "fast" if dev.type == "cpu" else "grid"
    # The fast path's samples reach |t| (1 + cell / 2) px plus half their box of
    # cell * |t| <= spacing px (see _trace_fast); the grid path needs margin for
    # its prefilter and bilinear reads.
    pad = int(math.ceil(hi + spacing_px)) + 1 if method == "fast" else int(math.ceil(hi * 1.1 + spacing_px)) + 4
    with _cpu_threads(dev):
        return _generate_pairs(gen, batch, size, dev, method, pad, aperture, spacing_px, n_planes, n_lights, lo, hi)


def _generate_pairs(gen, batch, size, dev, method, pad, aperture, spacing_px, n_planes, n_lights, lo, hi):
    r = _Rand(gen)
    f, m, results = [], [], []
    # Item by item (draws in the same order on every device): the canvases stay
    # small and warm in cache instead of one large batch allocation. (Threads do
    # not help here: two threads rendering ran no faster than one, the many small
    # tensor operations being bound by the GIL; two processes gave 1.7x.)
    for _ in range(batch):
        layers, _ = make_layers(gen, 1, size, pad, n_planes=n_planes, n_lights=n_lights, device=dev)
        f.append(_pick_focus(r, layers.disparity[0].cpu().tolist()))
        m.append(r.u(lo, hi))
        if method != "fast":
            results.append(layers)
            continue
        K_b = m[-1] / max(f[-1], 1 - f[-1], 1e-6)
        blurred = render_thin_lens(layers, K_b, f[-1], aperture, spacing_px=spacing_px, method=method)
        results.append((blurred, *composite_all_in_focus(layers)))
    f_t = torch.tensor(f, dtype=torch.float32)
    K = torch.tensor(m, dtype=torch.float32) / torch.maximum(f_t, 1 - f_t).clamp(min=1e-6)
    if method == "fast":
        blurred_lin, sharp_lin, disp = (torch.cat(parts) for parts in zip(*results))
    else:
        layers = Layers(torch.cat([it.rgba for it in results]), torch.cat([it.disparity for it in results]), pad)
        blurred_lin = render_thin_lens(layers, K.to(dev), f_t.to(dev), aperture, spacing_px=spacing_px, method=method)
        sharp_lin, disp = composite_all_in_focus(layers)
    K_d, f_d = K.to(dev), f_t.to(dev)
    return {
        "blurred": _linear_to_srgb_t(blurred_lin),
        "sharp": _linear_to_srgb_t(sharp_lin),
        "blurred_linear": blurred_lin,
        "sharp_linear": sharp_lin,
        "disparity": disp[:, None],
        "coc_px": signed_coc_px(disp[:, None], f_d[:, None, None, None], K_d[:, None, None, None]),
        "K": K_d,
        "focus_disparity": f_d,
    }


def save_scene(scene: SyntheticScene, folder: str | Path) -> Path:
    """Write a scene for inspection: PNGs (16-bit) plus .npy arrays and meta.json.

    Files: ``all_in_focus.png``, ``lens.png``, ``disparity.png`` (16-bit, [0, 1]),
    ``*_linear.npy``, ``disparity.npy``, ``coc_px.npy``, ``meta.json``.
    """
    import json

    from refocus.io import atomic_write_bytes, write_image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_image(folder / "all_in_focus.png", scene.all_in_focus, bit_depth=16)
    write_image(folder / "lens.png", scene.lens, bit_depth=16)
    write_image(folder / "disparity.png", np.repeat(scene.disparity[..., None], 3, axis=2), bit_depth=16)

    for name in ("all_in_focus_linear", "lens_linear", "disparity", "coc_px"):
        arr = getattr(scene, name)
        # np.save appends ".npy" to bare paths, so hand it an open file.
        atomic_write_bytes(folder / f"{name}.npy", lambda tmp, arr=arr: _save_npy(tmp, arr))
    meta = {
        "K": scene.K,
        "focus_disparity": scene.focus_disparity,
        "aperture": scene.aperture.model_dump(),
        "camera": scene.camera.__dict__,
        "layer_disparities": scene.layer_disparities.tolist(),
        "lights_xy": scene.lights_xy.tolist(),
        "seed": scene.seed,
        "spacing_px": scene.spacing_px,
        "n_samples": scene.n_samples,
        "disparity_normalised": True,
    }
    atomic_write_bytes(folder / "meta.json", lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=2)))
    return folder


def _save_npy(path, arr: np.ndarray) -> None:
    with open(path, "wb") as fh:
        np.save(fh, arr)
