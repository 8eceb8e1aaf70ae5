"""Issue 18, item 7: metadata read as tolerantly as exiftool. Damage that leaves the
data whole gives a note and the depth map; an error only when the data is not whole."""

from __future__ import annotations

import struct

import numpy as np
import pytest

import test_depth_writers as W
from refocus.depth.embedded import read_gdepth
from refocus.errors import RefocusError

H, W_ = 48, 64


def _gdepth(extended=True):
    rng = np.random.default_rng(3)
    rgb = (rng.random((H, W_, 3)) * 255).astype(np.uint8)
    depth = np.tile(np.linspace(1, 4, W_, dtype=np.float32), (H, 1))
    png = W.png_bytes(W.encode_range(depth, "RangeLinear", 1.0, 4.0))
    return W.gdepth_jpeg(rgb, png, "RangeLinear", 1.0, 4.0, extended=extended, chunk=200), depth


def _ext_segments(data):
    """(start, end) of each Extended XMP APP1 segment, marker included."""
    out, i = [], 0
    while (i := data.find(W.EXT_HEADER, i + 1)) != -1:
        start = i - 4
        length = int.from_bytes(data[start + 2 : start + 4], "big")
        out.append((start, start + 2 + length))
    return out


def test_duplicated_extended_segment_is_tolerated():
    data, depth = _gdepth()
    segs = _ext_segments(data)
    assert len(segs) >= 3
    a, b = segs[1]
    dup = data[:b] + data[a:b] + data[b:]
    got = read_gdepth(dup)
    np.testing.assert_allclose(got.values, depth, rtol=5e-3)
    assert any("duplicated" in n for n in got.notes)


def test_inconsistent_total_length_is_tolerated_when_the_data_is_whole():
    data, depth = _gdepth()
    a, _ = _ext_segments(data)[1]
    field = a + 4 + len(W.EXT_HEADER) + 32
    (total,) = struct.unpack(">I", data[field : field + 4])
    bad = data[:field] + struct.pack(">I", total + 7) + data[field + 4 :]
    got = read_gdepth(bad)
    np.testing.assert_allclose(got.values, depth, rtol=5e-3)
    assert any("disagree" in n for n in got.notes)


def test_missing_chunk_is_still_an_error():
    data, _ = _gdepth()
    a, b = _ext_segments(data)[1]
    with pytest.raises(RefocusError, match="Extended XMP"):
        read_gdepth(data[:a] + data[b:])


@pytest.mark.parametrize("delta", [-3, 3])
def test_main_xmp_length_off_by_a_few_bytes_is_tolerated(delta):
    data, depth = _gdepth(extended=False)
    i = data.find(W.XMP_HEADER) - 2
    (length,) = struct.unpack(">H", data[i : i + 2])
    bad = data[:i] + struct.pack(">H", length + delta) + data[i + 2 :]
    got = read_gdepth(bad)
    np.testing.assert_allclose(got.values, depth, rtol=5e-3)
    assert any("off by" in n for n in got.notes)
