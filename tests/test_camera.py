"""Thin-lens maths and EXIF reading."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

from refocus.camera import (
    coc_diameter_mm,
    coc_px_from_depth,
    read_camera_info,
    sensor_width_from_35mm,
    strength_from_camera,
)
from refocus.errors import RefocusError


def test_thin_lens_reference_case():
    # 50 mm, f/2, full frame, focused at 2 m, object at 4 m, 6000 px wide.
    c = coc_diameter_mm(2.0, 50.0, 2.0, 4.0)
    assert c == pytest.approx(0.3205, abs=5e-5)
    k = strength_from_camera(2.0, 50.0, 36.0, 2.0, 6000)
    radius = k * (1 / 4 - 1 / 2)
    assert radius == pytest.approx(-26.7, abs=0.05)  # behind the focal plane: negative
    assert abs(radius) == pytest.approx(c / 2 * 6000 / 36.0, rel=1e-9)


def test_coc_sign_and_focal_plane():
    z = np.array([1.0, 2.0, 4.0, np.inf])
    coc = coc_px_from_depth(z, f_number=2.0, focal_length_mm=50.0, sensor_width_mm=36.0, focus_distance_m=2.0, width_px=6000)
    assert coc[0] > 0 and coc[1] == pytest.approx(0.0, abs=1e-4) and coc[2] < 0 and coc[3] < coc[2]
    # The diameter formula and the signed radius agree everywhere.
    c = coc_diameter_mm(2.0, 50.0, 2.0, z[:3])
    np.testing.assert_allclose(np.abs(coc[:3]), c / 2 * 6000 / 36.0, rtol=1e-5)


def test_blur_halves_when_stopping_down_by_two():
    assert strength_from_camera(4.0, 50, 36, 2, 6000) == pytest.approx(strength_from_camera(2.0, 50, 36, 2, 6000) / 2)


def test_sensor_width_from_35mm_equivalent():
    # An APS-C camera: 35 mm lens, 52 mm equivalent.
    assert sensor_width_from_35mm(35.0, 52.5, aspect=1.5) == pytest.approx(24.0)


@pytest.mark.parametrize("args", [(0, 50, 36, 2, 6000), (2, 50, 36, 0.04, 6000), (2, -1, 36, 2, 6000), (2, 50, 36, float("nan"), 6000)])
def test_bad_settings_raise(args):
    with pytest.raises(RefocusError):
        strength_from_camera(*args)


def _jpeg_with_exif(path, size=(120, 80), orientation=1, **tags):
    img = Image.new("RGB", size, (90, 120, 150))
    ex = Image.Exif()
    ex[0x010F] = "Canon"
    ex[0x0110] = "Canon EOS R5"
    ex[0x0112] = orientation
    sub = ex.get_ifd(0x8769)
    for tag, val in tags.items():
        sub[int(tag[1:], 16)] = val
    img.save(path, exif=ex.tobytes())


def test_read_camera_info_from_exif(tmp_path):
    p = tmp_path / "c.jpg"
    _jpeg_with_exif(
        p,
        x829D=IFDRational(28, 10),
        x920A=IFDRational(50, 1),
        xA405=75,
        x9206=IFDRational(35, 10),
        xA434="RF50mm F1.8 STM",
    )
    info = read_camera_info(p)
    assert info.camera == "Canon EOS R5"
    assert info.lens == "RF50mm F1.8 STM"
    assert info.f_number == pytest.approx(2.8)
    assert info.focal_length_mm == 50 and info.focal_length_35mm == 75
    assert info.sensor_width_mm == pytest.approx(24.0)
    assert info.focus_distance_m == pytest.approx(3.5)
    assert info.width_px == 120 and info.height_px == 80
    assert info.missing_for_strength() == []
    assert info.strength() == pytest.approx(strength_from_camera(2.8, 50, 24.0, 3.5, 120))


def test_missing_tags_and_orientation(tmp_path):
    p = tmp_path / "n.jpg"
    _jpeg_with_exif(p, orientation=6, x920A=IFDRational(26, 1))
    info = read_camera_info(p)
    assert (info.width_px, info.height_px) == (80, 120)
    assert info.f_number is None and info.strength() is None
    assert "focus distance" in info.missing_for_strength()


def test_unreadable_file(tmp_path):
    p = tmp_path / "x.jpg"
    p.write_bytes(b"not a jpeg")
    with pytest.raises(RefocusError):
        read_camera_info(p)
    with pytest.raises(RefocusError):
        read_camera_info(tmp_path / "missing.jpg")


def test_camera_from_raw_exif_bytes():
    from refocus.camera import camera_from_exif

    ex = Image.Exif()
    sub = ex.get_ifd(0x8769)
    sub[0x829D] = IFDRational(4, 1)
    sub[0x920A] = IFDRational(35, 1)
    sub[0xA405] = 35
    info = camera_from_exif(ex.tobytes(), (300, 200))
    assert info.f_number == 4 and info.sensor_width_mm == pytest.approx(36.0)
    assert camera_from_exif(b"garbage", (3, 2)).f_number is None


@pytest.mark.parametrize("aspect, width_mm", [(1.5, 36.0 * 5.7 / 26), (4 / 3, 7.589), (16 / 9, 8.268)])
def test_a_35mm_equivalent_is_read_on_the_diagonal(aspect, width_mm):
    # Taken as 36 mm * f / f35 for every aspect, a 4:3 sensor came out 4 % too wide:
    # 7.89 mm for the iPhone 13 Pro's main camera (5.7 mm, 26 mm equivalent; its sensor
    # is about 7.6 mm wide), and its K 4 % too small.
    from refocus.camera import crop_factor

    w = sensor_width_from_35mm(5.7, 26, aspect=aspect)
    assert w == pytest.approx(width_mm, rel=2e-3)
    assert crop_factor(w, aspect) == pytest.approx(26 / 5.7)  # the crop factor stays f35 / f


def test_the_pug_photos_sensor_is_as_wide_as_apples(shared_data):
    from refocus.camera import read_camera_info

    cam = read_camera_info(shared_data / "phone-depth" / "iphone13pro-pug.heic")
    assert cam.sensor_width_mm == pytest.approx(7.6, abs=0.05)
