"""One rule for Apple depth marked "relative" in a JPEG and in a HEIC: metric, with a
note that its metres are approximate (a depth-user trial: the HEIC was metric, the
same mark in an iPhone JPEG made its depth relative, and --f-number was refused)."""

from __future__ import annotations

import numpy as np
import pytest

import test_depth_writers as W
from refocus.depth.embedded import read_mpf_depth


@pytest.mark.parametrize("accuracy, metric, noted", [("absolute", True, False), ("relative", True, True)])
def test_iphone_jpeg_accuracy(accuracy, metric, noted):
    rgb = np.full((16, 24, 3), 120, np.uint8)
    d8 = np.tile(np.linspace(0, 255, 24).astype(np.uint8), (16, 1))
    data = W.mpf_jpeg(W.jpeg_bytes(rgb), [W.apple_depth_jpeg(d8, 0.5, 2.0, accuracy=accuracy)])
    got = read_mpf_depth(data)
    assert got is not None and got.metric is metric
    from refocus.depth.embedded import APPROXIMATE_METRES

    assert (APPROXIMATE_METRES in got.notes) is noted
    assert float(np.nanmin(got.values)) == pytest.approx(0.5, abs=0.01) and float(np.nanmax(got.values)) == pytest.approx(2.0, abs=0.01)
