"""A focus pull is only as smooth as the renderer is continuous in the focal plane."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from refocus.render import RenderConfig, coc_map, render_linear


def test_moving_the_focal_plane_a_little_changes_the_picture_a_little():
    """A layer that lands a fraction of a pixel from its neighbour (the focal plane
    near an end of the depth range) made the depth-jump gate, which compared block
    CoC spans with that gap, read a smooth ramp as an occlusion edge: the surface
    rendered softer and popped back when the layer merged away. Seen on the iPhone
    pug focus pull (one frame step 15 x its neighbours'; issue found 2026-12-06)."""
    rng = np.random.default_rng(0)
    h, w = 96, 200
    img = gaussian_filter(rng.random((h, w, 3)), (1, 1, 0)).astype(np.float32)
    disparity = np.tile(np.linspace(0.0, 1.0, w, dtype=np.float32), (h, 1))
    focus = np.arange(0.0, 0.31, 0.01)
    frames = [render_linear(img, coc_map(disparity, float(f), 3.0), RenderConfig(highlight_gain=0.0)) for f in focus]
    steps = np.array([np.abs(b - a).mean() for a, b in zip(frames, frames[1:])])
    # Equal focus steps over a linear ramp: equal changes, up to the layers' spacing.
    assert steps.max() <= 2.0 * np.median(steps), np.round(steps / np.median(steps), 2)
