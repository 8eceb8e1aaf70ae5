"""The invertible highlight boost (see :class:`refocus.render.RenderConfig`).

A clipped pixel recorded less light than reached it. Where it was a light source or
a specular glint, much smaller than its blur disc, the missing light is what makes a
blurred highlight a bright disc rather than a grey one; so its linear radiance is
expanded before blurring and the result compressed by the inverse curve after, and
in-focus pixels come back unchanged.

Not every clipped pixel was a light source. A white petal, a pale sky or the light
squares of a checkerboard are surfaces exposed near the top of the range: boosting
them makes them glow and spill light over their neighbours (a pale surface blurred
into a white disc larger than itself). So the boost is given only to clipped pixels
with few bright pixels around them: the share of bright pixels (sRGB luminance
above :data:`CROWD_BRIGHT_SRGB`) in a window (:data:`CROWD_RADIUS_PX`) turns the gain off
smoothly between :data:`CROWD_FROM` and :data:`CROWD_FULL`.

Measured on 12 ray-traced development scenes with point lights far brighter than 1
and photo textures that are not (``refocus.bench.scenes.make_scene`` seeds
777000-777011, 256 px, largest CoC 6-24 px; rendered against their thin-lens
photos): mean PSNR 33.49 dB with no boost, 32.52 dB with the former boost of every
pixel above the threshold (one scene's white checkerboard 35.20 -> 23.87 dB), 33.85
dB with this one. The window and the crowd limits were chosen on those scenes
(radius 2/4/8 px, limits 0.05-0.3/0.1-0.5/0.2-0.6); a brightness level of 0.75 and
0.85 tied there (33.86/33.85 dB) and the benchmark's frozen synthetic set (seeds
20240601-20240606) decided for 0.85 (36.42 dB, as the former boost's 36.42; no
boost 35.52; 0.75 36.32). The window's radius is a fixed share of the frame's long side,
the share those 256 px scenes chose (4 px at 256 px: 1/64), at every size, so that a
draft, a preview and the full-size export judge the same highlights to be light sources;
a fractional radius weights the outer ring of the next integer box by its fraction.
(Until 2026-12-07 the window was 9 x 9 px for every frame up to 1,024 px and grew only
beyond, so a half-size draft boosted a light that the full-size render took for a pale
surface: 2.99x against 1.07x its light, ``tests/test_bokeh_look_trial.py``.)

Known limit (found 2026-12-07, not fixed): the window's size alone cannot tell a light
from a pale surface on real photos. On the Motorola Lens Blur photo
(``../shared/data/phone-depth``) the clipped tips of pale pink petals, 2-30 px blobs
ringed by pixels just under the clip level, get a mean gain of 1.88 of 2 with the
1/64 window (0.41 with the 9 x 9-per-1,024-px window used before): blurred, they glow
as white blobs. A smaller share would fix them but also dims real lights and glints:
over 41 real photos (``python tools/highlight_crowd_scale.py`` on the shared photos,
``--crops`` to look at what is boosted), the mean gain on clipped pixels is 0.91 /
0.69 / 0.52 for windows of 1/64, 1/128 and 1/256 of the long side, and among the
regions whose gain falls at 1/256 are a candle, a lamp and glints on a bottle and on
metal (lights) beside leaves, a gold label and a paper cup (surfaces). Neither the
ring's brightness nor the blob's colour (min channel) separated the two on these
photos. ``highlight_gain=0`` (``--highlight-gain 0``, the UI's boost slider) is the
way out for such a photo.

The curve: on luminance y, with u = (y - t) / (1 - t) for a threshold t (linear),
a pixel is expanded to ``Y = y + g * u^2`` (u clipped to [0, 1]): continuous with
a continuous slope at t, ``1 + g`` for a fully clipped pixel, and inverted in
closed form (a quadratic in y - t) with a per-pixel gain g.
"""

from __future__ import annotations

import numpy as np

from refocus.render.plan import EPS, smoothstep

#: sRGB luminance from which a pixel counts as bright when judging whether a clipped
#: pixel stands alone (a light source) or in a crowd (a pale surface). See the module
#: docstring for the data that chose it and the three constants below.
CROWD_BRIGHT_SRGB = 0.85
#: Radius of the square window over which the share of bright pixels is taken, px of an
#: image whose long side is :data:`CROWD_REFERENCE_PX`; other sizes scale it with their
#: long side (fractional radii allowed), so that a draft, a preview and the full-size
#: export judge the same highlights to be light sources. The reference is the size of
#: the development scenes that chose the radius.
CROWD_RADIUS_PX = 4
CROWD_REFERENCE_PX = 256
#: Share of bright pixels up to which a clipped pixel gets the full boost ...
CROWD_FROM = 0.1
#: ... and from which it gets none (smoothstep in between).
CROWD_FULL = 0.4


def _luminance(x, channel_axis: int):
    """Rec. 709 luminance of a linear RGB image, channels first (0) or last (-1)
    (the compiled kernels' ``image_in``/``image_out`` compute the same)."""
    r, g, b = (x[0], x[1], x[2]) if channel_axis == 0 else (x[..., 0], x[..., 1], x[..., 2])
    return r * 0.2126 + g * 0.7152 + b * 0.0722


def crowd_radius_px(long_side_px: int) -> float:
    """Radius (px, fractional) of the crowd window for a frame whose long side is
    ``long_side_px``: :data:`CROWD_RADIUS_PX` at :data:`CROWD_REFERENCE_PX`, in
    proportion elsewhere, and at least 1 px. 0 (unknown size) gives the reference."""
    if long_side_px <= 0:
        return float(CROWD_RADIUS_PX)
    return max(1.0, CROWD_RADIUS_PX * long_side_px / CROWD_REFERENCE_PX)


class Booster:
    """The highlight boost of one render: :meth:`expand` the padded input frame,
    :meth:`compress` the result (the same pixels' gains, cropped).

    Parameters
    ----------
    threshold_srgb:
        sRGB luminance above which a pixel is taken as clipped.
    gain:
        How much brighter a fully clipped light source is taken to be (its linear
        luminance becomes ``1 + gain``); 0 turns the boost off.
    long_side_px:
        The long side of the frame being rendered (sets the crowd window's radius).
    """

    def __init__(self, threshold_srgb: float, gain: float, long_side_px: int = 0):
        from refocus.io.color import srgb_to_linear

        self.enabled = gain > 0 and threshold_srgb < 1.0
        self.gain_full = float(gain)
        self.t = float(srgb_to_linear(np.float32(threshold_srgb)))
        self.t_bright = float(srgb_to_linear(np.float32(min(CROWD_BRIGHT_SRGB, threshold_srgb))))
        self.radius_px = crowd_radius_px(long_side_px)
        self._crowd = None  # share of bright pixels around each pixel of the expanded frame
        self._off = 0

    def crowd(self, y, be):
        """Share of bright pixels around each pixel (H x W, the backend's array kind),
        from the luminance ``y``: ``be.bright_share``, each pixel counted by a
        smoothstep from ``t_bright`` to 1. A fractional radius r is the box of
        ``floor(r)`` with the ring out to ``floor(r) + 1`` weighted so that the window's
        area is (2 r + 1)^2."""
        r_lo = int(np.floor(self.radius_px))
        share_lo = be.bright_share(y, self.t_bright, r_lo)
        a_lo, a_hi, a = (2 * r_lo + 1) ** 2, (2 * r_lo + 3) ** 2, (2 * self.radius_px + 1) ** 2
        f = (a - a_lo) / (a_hi - a_lo)
        if f < 1e-3:
            return share_lo
        share_hi = be.bright_share(y, self.t_bright, r_lo + 1)
        # Sums over the two boxes, the ring between them counted with weight f.
        share_hi *= f * a_hi / a
        share_lo *= (1.0 - f) * a_lo / a
        share_hi += share_lo
        return share_hi

    def gain(self, crowd):
        """Per-pixel gain from the share of bright pixels around: ``gain`` for a
        clipped pixel with few bright pixels around it, falling to 0 in a crowd."""
        return (1.0 - smoothstep((crowd - CROWD_FROM) * (1.0 / (CROWD_FULL - CROWD_FROM)))) * self.gain_full

    def _expanded(self, y, g):
        u = ((y - self.t) * (1.0 / (1.0 - self.t))).clip(0.0, 1.0)
        return y + g * u * u

    def _restored(self, Y, g):
        d = (Y - self.t).clip(0.0, None)
        a = g * (1.0 / (1.0 - self.t) ** 2)
        # y - t = d / (1 + a (y - t)) solved for y - t, in the form that stays exact as a -> 0.
        inner = self.t + 2.0 * d / (1.0 + (1.0 + 4.0 * a * d) ** 0.5)
        beyond = Y - g  # above a fully clipped pixel's 1 + g the curve is a shift
        return inner + (beyond - inner).clip(0.0, None) * ((Y - 1.0 - g) >= 0)

    def expand(self, x, be, off: int = 0, channel_axis: int = 0, y=None):
        """Boost the highlights of ``x`` (3 x H x W, or H x W x 3 with
        ``channel_axis=-1``; may work in place) and keep what :meth:`compress` needs
        (its frame starts ``off`` px into this one). ``y``: x's luminance, when the
        caller has it."""
        self._crowd = None
        if not self.enabled:
            return x
        y = _luminance(x, channel_axis) if y is None else y
        if not be.may_exceed(y, self.t):
            return x
        crowd = self._crowd = self.crowd(y, be)
        self._off = off

        def ratio(take):
            v = take(y)
            return self._expanded(v, self.gain(take(crowd))) / v.clip(EPS, None)

        return be.scale_highlights(x, y, self.t, ratio, channel_axis)

    def compress(self, x, be, channel_axis: int = 0, y=None):
        """Invert :meth:`expand` on the result ``x`` (its frame ``off`` px into the
        expanded one; ``y`` its luminance, when the caller has it); may work in place."""
        if self._crowd is None:
            return x
        H, W = (x.shape[1], x.shape[2]) if channel_axis == 0 else (x.shape[0], x.shape[1])
        o = self._off
        crowd = be.contiguous(self._crowd[o : o + H, o : o + W])
        Y = _luminance(x, channel_axis) if y is None else y

        def ratio(take):
            v = take(Y)
            return self._restored(v, self.gain(take(crowd))) / v.clip(EPS, None)

        return be.scale_highlights(x, Y, self.t, ratio, channel_axis)
