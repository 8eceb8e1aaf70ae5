"""--sensor-width: --f-number on a camera whose EXIF states no sensor size (a
photographer trial: the Olympus PEN E-P3 and Pentax files of the exif-corpus, like
many interchangeable-lens cameras, state the focal length but neither its 35 mm
equivalent nor the focal-plane resolution, so --f-number was refused outright)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from refocus.camera import strength_for_normalised_disparity, strength_from_camera
from test_cli_text import _run  # the CLI run as a user runs it: (exit code, stdout + stderr)
from refocus.errors import RefocusError
from refocus.pipeline import RefocusConfig
from refocus.pipeline.core import prepare

H, W = 60, 90


def _photo(tmp_path):
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x920A] = 25.0  # FocalLength 25 mm, nothing about the sensor
    rng = np.random.default_rng(1)
    Image.fromarray((rng.random((H, W, 3)) * 255).astype(np.uint8)).save(tmp_path / "p.jpg", exif=exif.tobytes())
    depth_m = np.tile(np.linspace(1.0, 4.0, W, dtype=np.float32), (H, 1))
    np.save(tmp_path / "d.npy", depth_m)
    return tmp_path / "p.jpg", tmp_path / "d.npy"


def test_without_it_the_error_says_what_to_give(tmp_path, capsys):
    photo, depth = _photo(tmp_path)
    code, text = _run(capsys, "refocus", photo, "--depth", depth, "--depth-kind", "depth", "--f-number", "2",
                      "--focus-value", "2m", "-o", tmp_path / "o.jpg")
    assert code == 2 and "--sensor-width" in text and len(text.strip().splitlines()) == 1, text


def test_the_given_width_sets_k_as_the_camera_model_does(tmp_path, capsys):
    photo, depth = _photo(tmp_path)
    p = prepare(photo, depth_path=str(depth), depth_kind="depth", deblur="never")
    cfg = RefocusConfig(f_number=2.0, sensor_width_mm=17.3, focus_distance_m=2.0)
    fd = p.focus_disparity(cfg)
    lo, hi = p.metric_range
    want = strength_for_normalised_disparity(strength_from_camera(2.0, 25.0, 17.3, 2.0, W), lo, hi)
    assert p.strength(cfg, fd) == pytest.approx(want, rel=1e-4)
    code, text = _run(capsys, "refocus", photo, "--depth", depth, "--depth-kind", "depth", "--f-number", "2",
                      "--sensor-width", "17.3", "--focus-value", "2m", "-o", tmp_path / "o.jpg")
    assert code in (0, None) and (tmp_path / "o.jpg").is_file(), text


def test_it_needs_an_f_number_and_a_plausible_width():
    with pytest.raises(RefocusError, match="sensor-width"):
        RefocusConfig.build(sensor_width_mm=17.3)
    with pytest.raises(RefocusError):
        RefocusConfig.build(f_number=2.0, sensor_width_mm=0.5)
