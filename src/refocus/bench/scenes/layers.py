"""Dead-leaves scenes as layers: the ray-traced generator's scene model.

A scene is a stack of fronto-parallel layers ("dead leaves"): a textured
background plane at disparity 0 and a few planes in front of it, each holding
random shapes (discs, ellipses, polygons, blobs) textured with patches of real
photos and procedural patterns (:mod:`.textures`), plus point lights (tiny spots
that can be far brighter than 1 in linear light, i.e. clipped highlights). The
nearest plane has disparity 1, so disparity maps are min-max normalised to [0, 1]
and the renderer's ``coc_px = K * (disparity - focus_disparity)`` applies directly.

:func:`make_layers` draws them as :class:`Layers` (premultiplied RGBA planes on a
padded canvas, so that content outside the frame blurs into it);
:mod:`.thin_lens` renders them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from refocus.bench.scenes.textures import _Rand, _scene_texture, photo_bank
from refocus.bench.scenes.threads import GENERATION_THREADS, cpu_threads

__all__ = ["Layers", "make_layers"]


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
    photo_dirs: Sequence[str | Path] = (),
    threads: int | None = GENERATION_THREADS,
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
    device:
        Torch device of the layers.
    photo_dirs:
        Folders of extra photos for the textures, besides scikit-image's (see
        :func:`refocus.bench.scenes.textures.photo_bank`); none by default.
    threads:
        torch CPU threads while drawing (see :mod:`refocus.bench.scenes.threads`).

    Returns
    -------
    The layers and, per scene, the (n, 2) positions (x, y) of its lights in frame px.
    """
    with cpu_threads(device, threads):
        bank = photo_bank(photo_dirs, device)  # a first load converts the photos on these threads, as ever
        return _make_layers(rand, batch, size, pad, n_planes, shapes_per_plane, n_lights, light_gain, photo_prob,
                            torch.device(device), bank)


def _make_layers(rand, batch, size, pad, n_planes, shapes_per_plane, n_lights, light_gain, photo_prob, dev, bank):
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
        rgba[b, L - 1, :3] = _scene_texture(r, Hp, Wp, gx, gy, dev, photo_prob, bank)
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
                tex = _scene_texture(r, a.shape[0], a.shape[1], gx[ys_, xs_], gy[ys_, xs_], dev, photo_prob, bank)
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
