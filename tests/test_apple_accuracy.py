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


def test_iphone_jpeg_range_in_apples_pixel_data_info_namespace():
    """As a real iPhone writes it (the pug HEIC's XMP): the range and format in apdi,
    only Accuracy in depthData. Read from depthData alone, the map stayed 0..1 and relative."""
    attrs = ('apdi:NativeFormat="1751411059" apdi:FloatMinValue="1.498047" apdi:FloatMaxValue="4.382812" '
             'apdi:AuxiliaryImageType="disparity" depthData:Accuracy="relative"')
    x = W.xmp_packet(attrs, {"depthData": W.APPLE_DEPTH, "apdi": "http://ns.apple.com/pixeldatainfo/1.0/"})
    d8 = np.tile(np.linspace(0, 255, 24).astype(np.uint8), (16, 1))
    aux = W.insert_segments(W.jpeg_bytes(d8, mode="L"), [W.segment(0xE1, W.XMP_HEADER + x)])
    got = read_mpf_depth(W.mpf_jpeg(W.jpeg_bytes(np.full((16, 24, 3), 120, np.uint8)), [aux]))
    assert got is not None and got.metric and got.kind == "disparity"
    assert float(np.nanmin(got.values)) == pytest.approx(1.498, abs=0.02)
    assert float(np.nanmax(got.values)) == pytest.approx(4.383, abs=0.02)
