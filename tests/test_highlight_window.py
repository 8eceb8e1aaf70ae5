"""The highlight boost's crowd window is a fixed share of the frame at every size.

Regression (2026-12-07): the window was 9 x 9 px for every frame up to 1,024 px, so a
draft or preview judged a light source differently from the full-size export.
"""

from __future__ import annotations

import numpy as np
import pytest

from refocus.render import RenderConfig, render_linear
from refocus.render.backends import get_backend
from refocus.render.highlights import CROWD_RADIUS_PX, CROWD_REFERENCE_PX, Booster, crowd_radius_px


def test_radius_is_a_share_of_the_long_side():
    assert crowd_radius_px(CROWD_REFERENCE_PX) == CROWD_RADIUS_PX
    assert crowd_radius_px(2 * CROWD_REFERENCE_PX) == pytest.approx(2 * CROWD_RADIUS_PX)
    assert crowd_radius_px(CROWD_REFERENCE_PX // 2) == pytest.approx(CROWD_RADIUS_PX / 2)
    assert crowd_radius_px(300) == pytest.approx(CROWD_RADIUS_PX * 300 / CROWD_REFERENCE_PX)
    assert crowd_radius_px(10) == 1.0


@pytest.mark.parametrize("long_side", [256, 300, 700])
def test_fractional_window_has_the_area_of_its_radius(long_side):
    """One bright pixel counts 1 / (2 r + 1)^2 at its own place and the share of an
    all-bright frame is 1: the outer ring is weighted, not dropped or counted whole."""
    be = get_backend("cpu")
    b = Booster(0.95, 2.0, long_side)
    r = b.radius_px
    y = np.zeros((61, 61), np.float32)
    y[30, 30] = 1.0
    share = np.asarray(b.crowd(y, be))
    assert share[30, 30] == pytest.approx(1.0 / (2 * r + 1) ** 2, rel=1e-4)
    full = np.asarray(b.crowd(np.ones((61, 61), np.float32), be))
    assert np.allclose(full, 1.0, atol=1e-5)


def _boost(n: int, light_frac: float) -> float:
    """Light carried by a square light source of side ``light_frac * n`` px on black,
    blurred by a disc of radius 3 % of the side, over the light it had."""
    size = max(1, round(light_frac * n))
    img = np.zeros((n, n, 3), np.float32)
    c = n // 2
    img[c : c + size, c : c + size] = 1.0
    out = render_linear(img, np.full((n, n), -0.03 * n, np.float32), RenderConfig(highlight_gain=2.0))
    return float(out[..., 1].sum()) / size**2


@pytest.mark.parametrize("light_frac", [0.01, 0.1])
def test_a_light_is_boosted_alike_at_every_size(light_frac):
    """A small light (1 % of the side) is boosted, a large bright patch (10 %) is a
    surface and is not; the same at 300 and 1,200 px."""
    small, large = _boost(300, light_frac), _boost(1200, light_frac)
    assert small == pytest.approx(large, rel=0.1)
    if light_frac < 0.05:
        assert small > 2.0
    else:
        assert small == pytest.approx(1.0, abs=0.05)
