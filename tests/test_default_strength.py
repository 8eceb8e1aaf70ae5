"""The default blur strength on frames of every shape (user trial: a 12000 x 1500
panorama got 180 px of blur, 1.5 % of its long side)."""

from __future__ import annotations

import numpy as np
import pytest

from refocus.pipeline import RefocusConfig
from refocus.pipeline.core import prepare


def _strength(tmp_path, h: int, w: int) -> float:
    """The default K of an h x w photo with a disparity ramp across it."""
    img = np.random.default_rng(3).random((h, w, 3), dtype=np.float32)
    np.save(tmp_path / "disp.npy", np.tile(np.linspace(0.0, 1.0, w, dtype=np.float32), (h, 1)))
    p = prepare(img, depth_path=str(tmp_path / "disp.npy"), deblur="never")
    return p.strength(RefocusConfig(), 0.5)


@pytest.mark.parametrize("h, w", [(400, 600), (600, 400), (300, 400), (225, 400), (200, 400)])
def test_camera_frames_keep_one_and_a_half_percent_of_the_long_side(tmp_path, h, w):
    assert _strength(tmp_path, h, w) == pytest.approx(0.015 * max(h, w))


@pytest.mark.parametrize("h, w", [(150, 1200), (1200, 150), (40, 1600), (1, 600)])
def test_panoramas_and_strips_follow_twice_their_short_side(tmp_path, h, w):
    k = _strength(tmp_path, h, w)
    assert k == pytest.approx(0.015 * 2 * min(h, w))
    from refocus.pipeline.photo import default_strength_px

    assert k == pytest.approx(default_strength_px((h, w, 3)))
