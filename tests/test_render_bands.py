"""Bands on smooth depth ramps at large blur (user trial: 1500 x 256 px, K = 100).

A layer hidden by nearer ones is extended under them with a push-pull fill, which
shows through the small alpha gaps between neighbouring blurred layers. The pull
averaged the weights too, so a hole's fill took a share of every coarser level up
to the whole frame's mean: far-away bright content leaked into dark regions as
bands one layer spacing apart, 14-18 of 255 levels at 1500 x 256 px and K = 100
where the exact result is black. The coarse pull levels now clamp (see
``ArrayBackend.pull_down2`` and ``plan.PULL_FULL``).
"""

from __future__ import annotations

import numpy as np
import pytest

from refocus.io.color import linear_to_srgb
from refocus.render import RenderConfig, coc_map, render_linear


def _white_top_on_a_ramp(h: int, w: int, white_rows: int, strength_px: float):
    img = np.zeros((h, w, 3), np.float32)
    img[:white_rows] = 1.0
    disp = np.repeat(np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None], w, axis=1)
    return img, coc_map(disp, 0.0, strength_px)


def _dense_numpy():
    from refocus.render.backends import NumpyBackend

    be = NumpyBackend()
    be.tile_sparse = False
    return be


@pytest.mark.parametrize("path", ["cpu", "dense-numpy"])
def test_no_light_leaks_into_the_dark_end_of_a_smooth_ramp(path):
    """White top rows, black below, CoC 0 -> 40 px down the rows (all of it a
    tilted plane, in front of the focal plane). Beyond the white rows' own blur
    the exact result is black: no disc of a white pixel reaches there. Measured
    (8-bit sRGB, row means beyond that reach + 8 px): up to 27.4 levels before the
    clamped pulls (compiled cpu and dense numpy alike), 3.5 and 3.6 after; what is
    left is the fill of large holes seen through the alpha gaps between layers."""
    from refocus.render.layered import render_layers

    h, w, white_rows, k_px = 600, 96, 120, 40.0
    img, coc = _white_top_on_a_ramp(h, w, white_rows, k_px)
    cfg = RenderConfig(highlight_gain=0.0)
    out = render_linear(img, coc, cfg) if path == "cpu" else render_layers(img, coc, cfg, _dense_numpy())
    levels = linear_to_srgb(np.clip(out, 0.0, 1.0)).mean(axis=(1, 2)) * 255
    reach = int(white_rows + float(coc[white_rows, 0])) + 8
    assert levels[:white_rows - 40].min() > 254.0  # the white rows stay white
    assert levels[reach:].max() < 6.0, (path, float(levels[reach:].max()), int(reach + levels[reach:].argmax()))
