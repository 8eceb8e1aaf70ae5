"""Thin-lens photos of layered scenes by ray tracing: exact ground truth.

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
  :func:`refocus.bench.scenes.make_scene` uses; 0.11 at radius 1.5 with the
  default 0.25); with ``spacing_px=2.5`` edges are softened by about 2.5 px
  (L1 0.08..0.15);
* the GPU path (``method="grid"``) box-filters each layer over the footprint
  once and moves it with bilinear ``grid_sample``: the same at integer footprint
  sizes, otherwise a few per cent of ripple inside bokeh discs and slightly soft
  edges (L1 up to ~0.2 against ``aperture.kernel`` at small radii).

``spacing_px=1`` is the default for :func:`~refocus.bench.scenes.make_scene` /
:func:`~refocus.bench.scenes.frozen_test_set` (the exact path above, which the
benchmark's frozen set keeps using). Training pairs on the CPU take the fast
path (``method="fast"``), a control variate described in :mod:`.fast`.

Cat's-eye clipping (``ApertureConfig.cats_eye``) is not modelled.

All-in-focus image (:func:`composite_all_in_focus`): the same compositing with no
translation. In linear light point lights may exceed 1; the sRGB images are
clipped to [0, 1], as a camera clips.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from refocus.aperture import ApertureConfig, aperture_mask
from refocus.bench.scenes.fast import _FAST_MAX_CELL, _trace_fast
from refocus.bench.scenes.layers import Layers
from refocus.bench.scenes.threads import GENERATION_THREADS, cpu_threads
from refocus.errors import RefocusError

__all__ = ["aperture_samples", "composite_all_in_focus", "render_thin_lens"]

#: Largest aperture cell (pupil units; the pupil spans [-1, 1]).
_MAX_CELL = 0.25


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
    threads: int | None = GENERATION_THREADS,
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
        control variate of :mod:`.fast`, for training pairs; there
        ``spacing_px`` sets the coarse samples, 4 is a good value, and
        ``max_cell`` defaults to 0.35).
    return_n_samples:
        Also return the number of aperture samples (the largest over the batch).
    threads:
        torch CPU threads of the CPU paths (see :mod:`refocus.bench.scenes.threads`).

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
        with cpu_threads("cpu", threads):
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
        with cpu_threads("cpu", threads):
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
