"""EXR depth written and read through the real OpenEXR package (the test extra installs
it): the trial's reader was only checked against a stand-in module."""

from __future__ import annotations

import numpy as np
import pytest

OpenEXR = pytest.importorskip("OpenEXR")


def _write(path, channels: dict):
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    with OpenEXR.File(header, {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in channels.items()}) as f:
        f.write(str(path))


def test_a_blender_style_exr_reads_its_depth_channel_and_infinite_sky(tmp_path):
    from refocus.io.depthfile import read_depth_file

    z = np.tile(np.linspace(1.0, 5.0, 12, dtype=np.float32), (8, 1))
    z[0, :3] = np.inf  # the world background of a render
    p = tmp_path / "render.exr"
    _write(p, {"R": np.full_like(z, 0.5), "G": np.zeros_like(z), "B": np.zeros_like(z), "ViewLayer.Depth.Z": z})
    got = read_depth_file(p)
    assert got.shape == z.shape
    np.testing.assert_array_equal(got, z)


def test_an_exr_of_differing_colour_channels_is_refused_in_one_line(tmp_path):
    from refocus.errors import RefocusError
    from refocus.io.depthfile import read_depth_file

    z = np.ones((4, 5), np.float32)
    p = tmp_path / "colour.exr"
    _write(p, {"R": z, "G": z * 2, "B": z})
    with pytest.raises(RefocusError) as exc:
        read_depth_file(p)
    assert "\n" not in str(exc.value)
