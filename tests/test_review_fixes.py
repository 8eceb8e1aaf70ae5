"""Defects a review of the session's changes found."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image


def _tiff_with_big_photoshop_tag(path):
    import tifffile

    rng = np.random.default_rng(0)
    arr = (rng.random((24, 32, 3)) * 65535).astype(np.uint16)
    blob = bytes(rng.integers(0, 256, 70_000, dtype=np.uint8))  # Photoshop image resources, 70 KB
    tifffile.imwrite(path, arr, photometric="rgb", extratags=[(34377, "B", len(blob), blob, True),
                                                              (271, "s", 0, "Refocus Test Camera", True)])


def test_a_jpeg_from_a_tiff_with_large_photoshop_tags_is_written_with_its_exif(tmp_path):
    """A 16-bit TIFF with 70 KB of Photoshop resources: the JPEG result failed after the
    render with 'ValueError: EXIF data is too long' (the resources rode along as EXIF)."""
    from refocus.io import read_image, write_image

    src = tmp_path / "photo.tif"
    _tiff_with_big_photoshop_tag(src)
    img, info = read_image(src)
    write_image(tmp_path / "out.jpg", img, info)
    with Image.open(tmp_path / "out.jpg") as out:
        exif = out.getexif()
    assert exif.get(271) == "Refocus Test Camera" and 34377 not in exif


def test_exif_too_long_for_a_jpeg_is_left_out_with_a_warning(tmp_path):
    from refocus.io import write_image
    from refocus.io.image import ImageInfo

    e = Image.Exif()
    e[270] = "x" * 70_000  # ImageDescription: EXIF over one JPEG segment
    with pytest.warns(UserWarning, match="does not fit a JPEG"):
        write_image(tmp_path / "out.jpg", np.full((8, 8, 3), 0.5, np.float32), ImageInfo(exif=e.tobytes()))
    assert (tmp_path / "out.jpg").is_file()


def test_a_png_batch_is_not_called_stale_when_only_jpeg_quality_changed(tmp_path):
    from refocus.pipeline.batch import _record
    from refocus.pipeline.config import RefocusConfig

    cfg = RefocusConfig(strength=3)
    png_60, png_95 = (_record(cfg, __file__, None, q, tmp_path / "a.png")["settings"] for q in (60, 95))
    assert png_60 == png_95
    jpg_60, jpg_95 = (_record(cfg, __file__, None, q, tmp_path / "a.jpg")["settings"] for q in (60, 95))
    assert jpg_60 != jpg_95


def test_info_offers_sensor_width_when_the_exif_width_was_refused():
    from refocus.camera.exif import CameraInfo
    from refocus.cli.cmd_info import _f_number_words

    cam = CameraInfo(focal_length_mm=25.0)
    cam.ignored["focal_length_35mm"] = "FocalLengthIn35mmFilm 0 mm is not plausible; ignored"
    assert "--sensor-width" in _f_number_words(cam, metric_depth=False)


def test_a_given_sensor_width_is_the_whole_sensor_of_a_zoomed_photo(tmp_path):
    """--sensor-width names the camera's sensor; a 2x digitally zoomed photo covers half
    of it, as the EXIF-derived width already says (CameraInfo.digital_zoom)."""
    from refocus.pipeline import RefocusConfig
    from refocus.pipeline.core import prepare

    def k(zoom):
        exif = Image.Exif()
        sub = exif.get_ifd(0x8769)
        sub[0x920A] = 25.0
        if zoom:
            sub[0xA404] = zoom
        Image.fromarray(np.full((30, 45, 3), 100, np.uint8)).save(tmp_path / "p.jpg", exif=exif.tobytes())
        np.save(tmp_path / "d.npy", np.tile(np.linspace(1.0, 4.0, 45, dtype=np.float32), (30, 1)))
        p = prepare(tmp_path / "p.jpg", depth_path=str(tmp_path / "d.npy"), depth_kind="depth", deblur="never")
        cfg = RefocusConfig(f_number=2.0, sensor_width_mm=17.3, focus_distance_m=2.0)
        return p.strength(cfg, p.focus_disparity(cfg))

    assert k(2.0) == pytest.approx(2.0 * k(None), rel=1e-3)  # half the sensor: twice the blur in pixels


def test_render_bokeh_reads_an_infinite_distance_as_infinitely_far():
    """One rule for +inf distances: get_depth made them disparity 0, prepare_disparity
    (render_bokeh, the speed bench) filled them from the ground next to the sky."""
    from refocus.depth.prepare import prepare_disparity

    depth_m = np.array([[np.inf, np.inf, 5.0, 2.0]] * 3, np.float32)
    d = prepare_disparity(depth_m, "depth", normalize=False)
    assert d[0, 0] == 0.0 and d[0, 2] == pytest.approx(0.2)


def test_the_metric_range_of_a_depth_components_result_counts_the_infinite_sky():
    from refocus.pipeline.stages import _metric_range

    assert _metric_range(np.array([[np.inf, 4.0, 2.0]]), "depth") == (0.0, 0.5)


def test_the_ui_says_infinity_for_a_band_reaching_the_sky():
    from refocus.pipeline.photo import PreparedPhoto

    p = PreparedPhoto(image=np.zeros((2, 2, 3), np.float32), disparity=np.zeros((2, 2), np.float32),
                      input_blur_px=np.zeros((2, 2), np.float32), metric_range=(0.0, 2.0))
    assert p.distance_m(0.0) == float("inf") and p.distance_m(1.0) == pytest.approx(0.5)


def test_the_sensor_width_advice_reads_as_ui_words():
    from refocus.ui.app import ui_message

    msg = ui_message("p.jpg: --f-number needs the sensor width from EXIF, which this photo lacks; give the sensor's width "
                     "along the long side, e.g. --sensor-width 17.3 (Micro Four Thirds), or use --strength", [])
    assert 'set "Blur set by: strength"' in msg and "command line only" in msg


def test_lightroom_develop_settings_are_not_carried_in_xmp():
    """Camera Raw settings (crs:) in a result's XMP make Lightroom crop and tone the
    rendered photo a second time on import; captions and rights stay."""
    from refocus.io.image import xmp_for_output

    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           b'<rdf:Description rdf:about="" xmlns:crs="http://ns.adobe.com/camera-raw-settings/1.0/" '
           b'xmlns:dc="http://purl.org/dc/elements/1.1/" crs:Exposure2012="+1.00" crs:HasCrop=\'True\' '
           b'crs:CropTop="0.1"><dc:rights>(c) Me</dc:rights><crs:ToneCurvePV2012><rdf:Seq><rdf:li>0, 0</rdf:li>'
           b"<rdf:li>255, 255</rdf:li></rdf:Seq></crs:ToneCurvePV2012><crs:Look/></rdf:Description></rdf:RDF></x:xmpmeta>")
    out = xmp_for_output(xmp)
    assert b"crs:Exposure2012" not in out and b"crs:CropTop" not in out and b"crs:HasCrop" not in out
    assert b"ToneCurvePV2012" not in out and b"crs:Look" not in out
    assert b"<dc:rights>(c) Me</dc:rights>" in out and out.count(b"<rdf:Description") == 1
    from xml.dom import minidom

    minidom.parseString(out)  # still well-formed XML


def test_info_names_the_colour_space_a_heic_states_as_cicp(tmp_path):
    """info said "no ICC profile (sRGB taken)" for a Display P3 HEIC without an ICC
    profile (CICP codes only), while the commands read it as P3 (io.image.photo_icc)."""
    pillow_heif = pytest.importorskip("pillow_heif")
    pillow_heif.register_heif_opener()
    from refocus.camera.exif import read_camera_info

    src = tmp_path / "p3.heic"
    Image.fromarray(np.full((16, 24, 3), (200, 60, 60), np.uint8)).save(
        src, quality=95, color_primaries=12, transfer_characteristics=13, matrix_coefficients=6, full_range_flag=1)
    assert read_camera_info(src).icc_name not in (None, "unnamed", "unreadable")


def test_a_stack_of_depth_maps_says_which_one_is_used(tmp_path):
    """A multi-page TIFF or an .npy of several maps silently gave its first map."""
    from refocus.io.depthfile import read_depth_file

    np.save(tmp_path / "stack.npy", np.random.default_rng(0).random((6, 20, 30), dtype=np.float32))
    with pytest.warns(UserWarning, match="holds 6 maps of 30x20 .*the first is used"):
        d = read_depth_file(tmp_path / "stack.npy")
    assert d.shape == (20, 30)


def test_a_distance_on_a_constant_metric_map_says_it_is_constant(tmp_path):
    """A constant map of distances in metres was called "relative" for --focus-value 2m."""
    from refocus.errors import RefocusError
    from refocus.io import write_image
    from refocus.pipeline import RefocusConfig
    from refocus.pipeline.core import prepare

    write_image(tmp_path / "p.png", np.full((20, 30, 3), 0.5, np.float32))
    np.save(tmp_path / "d.npy", np.full((20, 30), 3.0, np.float32))
    p = prepare(tmp_path / "p.png", depth_path=str(tmp_path / "d.npy"), depth_kind="depth", deblur="never")
    with pytest.raises(RefocusError, match="constant, one plane") as exc:
        p.focus_disparity(RefocusConfig(focus_distance_m=2.0))
    assert "relative" not in str(exc.value)
