"""`refocus info`'s camera facts on real camera files (photos/exif-corpus) and synthetic EXIF."""

from __future__ import annotations

import pytest
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

from refocus.camera import camera_from_exif, read_camera_info, strength_from_camera


def _exif(**sub_tags) -> Image.Exif:
    ex = Image.Exif()
    sub = ex.get_ifd(0x8769)
    for tag, val in sub_tags.items():
        sub[int(tag[1:], 16)] = val
    return ex


def test_focal_plane_resolution_of_a_portrait_file_gives_the_long_side():
    """Regression: the width was PixelXDimension / FocalPlaneXResolution, the SHORT side
    of a portrait file (Canon writes a rotated photo's X as 1536 px over 0.156 in and
    Y as 2048 px over 0.208 in), while K multiplies by the long side in pixels."""
    ex = _exif(
        x829D=IFDRational(28, 10), x920A=IFDRational(173, 32), x9206=IFDRational(2, 1),
        xA002=1536, xA003=2048, xA20E=IFDRational(1536000, 156), xA20F=IFDRational(2048000, 208), xA210=2,
    )
    cam = camera_from_exif(ex, (1536, 2048))
    assert cam.sensor_width_mm == pytest.approx(0.208 * 25.4)  # 5.28 mm, a 1/2.7" sensor
    assert cam.strength() == pytest.approx(strength_from_camera(2.8, 173 / 32, 0.208 * 25.4, 2.0, 2048))
    # The same sensor written landscape gives the same width.
    ex = _exif(x920A=IFDRational(173, 32), xA002=2048, xA003=1536, xA20E=IFDRational(2048000, 208),
               xA20F=IFDRational(1536000, 156), xA210=2)
    assert camera_from_exif(ex, (2048, 1536)).sensor_width_mm == pytest.approx(0.208 * 25.4)


def test_digital_zoom_is_recorded():
    ex = _exif(x920A=IFDRational(58, 10), xA404=IFDRational(3264, 2048), xA002=2048, xA003=1536,
               xA20E=IFDRational(3264000, 225), xA210=2)
    cam = camera_from_exif(ex, (2048, 1536))
    assert cam.digital_zoom == pytest.approx(1.59375)
    # Canon's focal-plane resolution counts the zoomed image's pixels: the area it covers.
    assert cam.sensor_width_mm == pytest.approx(0.225 * 25.4 / 1.59375)
    assert camera_from_exif(_exif(xA404=IFDRational(0, 1)), (20, 10)).digital_zoom is None


# Sensor width along the long side (mm) of corpus cameras, from their published sensor
# size: Canon PowerShot SD100 and Digital IXUS 300 1/2.7" (5.27 mm), S40 1/1.8" (7.18 mm),
# A560 and SD600 1/2.5" (5.76 mm), Konica Q-M100 about 1/2.7".
_WIDTHS = {
    "Canon_PowerShot_SD100.jpg": 5.27,
    "Canon_IXUS_300.jpg": 5.27,
    "Canon_PowerShot_S40_1_.jpg": 7.18,
    "Canon_PowerShot_A560.jpg": 5.76,
    "Canon_PowerShot_SD600.jpg": 5.76,
    "Konica_Q-M100_2_.jpg": 5.27,
}


@pytest.mark.parametrize("name", sorted(_WIDTHS))
def test_corpus_sensor_widths_from_focal_plane_resolution(shared_data, name):
    cam = read_camera_info(shared_data / "photos" / "exif-corpus" / name)
    assert cam.sensor_width_source == "focal plane resolution"
    assert cam.sensor_width_mm == pytest.approx(_WIDTHS[name], rel=0.05)


def test_corpus_upright_sizes_and_hand_computed_k(shared_data):
    corpus = shared_data / "photos" / "exif-corpus"
    cam = read_camera_info(corpus / "Blackberry_Z10.jpg")  # stored 3264x1836, orientation 6
    assert (cam.width_px, cam.height_px) == (1836, 3264)
    cam = read_camera_info(corpus / "Canon_PowerShot_S40_1_.jpg")
    # f 7.09375 mm, f/2.8, 3.114 m, 2272 px over 2272 / 8114.29 in: K by hand.
    f, n, z, w, sw = 7.09375e-3, 2.8, 3.114, 2272, 2272 / 8114.285714 * 0.0254
    assert cam.strength() == pytest.approx(f * f / (2 * n * (1 - f / z)) * w / sw, rel=1e-4)
    assert cam.strength() == pytest.approx(2.877, abs=0.002)
    # Placeholder SubjectDistance 0 (Motorola) is no focus distance.
    assert read_camera_info(shared_data / "phone-depth" / "motorola-lensblur-gdepth.jpg").focus_distance_m is None


def test_info_says_when_the_pixels_cannot_be_decoded(tmp_path, capsys):
    """Found 2026-12-07: `info` read a truncated camera JPEG's header and printed its
    facts without a word, and refocus then stopped with "truncated or damaged". It also
    exited 0, so a script checking a folder with `refocus info` passed the damaged file
    (found 2026-12-07, later): the report is printed, then the one-line error, exit 2."""
    import numpy as np

    from refocus.cli import main

    rgb = (np.random.default_rng(0).random((240, 320, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "whole.jpg", quality=95)
    data = (tmp_path / "whole.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    for name, damaged in (("whole.jpg", False), ("cut.jpg", True)):
        with pytest.raises(SystemExit) as exc:
            main(["info", str(tmp_path / name)])
        captured = capsys.readouterr()
        out = captured.out
        assert (exc.value.code or 0) == (2 if damaged else 0)
        assert ("truncated or damaged" in out) == damaged, out
        assert "camera" in out  # the header's facts are still reported
        assert ("error: cannot read image" in captured.err) == damaged, captured.err
