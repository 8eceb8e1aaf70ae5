"""A photographer's trial: real-camera metadata through info, read and write.

Each test is a defect a photographer met (see the names); small synthetic files,
no shared data needed.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image

from refocus.camera import read_camera_info
from refocus.camera.exif import camera_from_exif, exif_with_f_number
from refocus.cli import main
from refocus.errors import RefocusError
from refocus.io import read_image, write_image
from refocus.io.image import ImageInfo

tifffile = pytest.importorskip("tifffile")


def _camera_exif(orientation: int = 1, zoom=None) -> bytes:
    """EXIF of a compact camera: make, model, f/2.8, 7.1 mm, 3.1 m, 35 mm equivalent."""
    from PIL.TiffImagePlugin import IFDRational

    e = Image.Exif()
    e[0x010F], e[0x0110], e[0x0112] = "Canon", "Canon PowerShot S40", orientation
    sub = e.get_ifd(0x8769)
    sub[0x829D] = IFDRational(28, 10)
    sub[0x920A] = IFDRational(71, 10)
    sub[0x9206] = IFDRational(31, 10)
    sub[0xA405] = 35
    if zoom is not None:
        sub[0xA404] = zoom
    return e.tobytes()


def _info(capsys, monkeypatch, path) -> str:
    """``refocus info PATH``'s text, on a wide console (rows unwrapped)."""
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as exc:
        main(["info", str(path)])
    out = capsys.readouterr()
    assert exc.value.code in (0, None), out.out + out.err
    return out.out + out.err


def _photo(h: int = 24, w: int = 32) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.dstack([x / w, y / h, 0.5 + 0 * x]).astype(np.float32)


# --- write_image and floats in 0..255 ------------------------------------------------


def test_write_image_refuses_a_0_255_float_image(tmp_path):
    """`write_image("out.png", img.astype(float))` wrote a white picture without a word."""
    out = tmp_path / "out.png"
    with pytest.raises(RefocusError, match=r"out\.png has float values up to 2\d\d.*divide a 0\.\.255 image by 255"):
        write_image(out, _photo() * 255)
    assert not out.exists()
    # Integers other than uint8/uint16 are read as the values themselves, as as_float_rgb does.
    with pytest.raises(RefocusError, match="divide a 0..255 image by 255"):
        write_image(out, (_photo() * 255).astype(np.int64))
    assert not out.exists()


def test_write_image_clips_a_small_overshoot_with_a_warning(tmp_path):
    img = _photo()
    with pytest.warns(UserWarning, match=r"image for a\.png: float values up to 1\.\d+ clipped to 1"):
        write_image(tmp_path / "a.png", img * 1.5)
    # Float round-off above 1 (a render's boosted highlight compressed back) is written quietly.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        over = img.copy()
        over[0, 0] = np.float32(1.0000005)
        write_image(tmp_path / "b.png", over)
        write_image(tmp_path / "c.png", (img * 255).astype(np.uint8))
    assert (np.asarray(Image.open(tmp_path / "b.png"))[0, 0] == 255).all()


# --- 16-bit grey + alpha TIFF ------------------------------------------------------------


def test_16bit_grey_alpha_tiff_keeps_its_camera(tmp_path):
    """Pillow cannot open a 16-bit grey + alpha TIFF: its EXIF was dropped on reading (so
    from every result) and `refocus info` showed no camera."""
    alpha = np.ones((24, 32), np.float32)
    alpha[:4] = 0.5
    tif = tmp_path / "grey16a.tif"
    write_image(tif, _photo(), ImageInfo(bit_depth=16, alpha=alpha, mode="LA", exif=_camera_exif()))
    rgb, info = read_image(tif)
    assert info.mode == "LA" and info.bit_depth == 16 and info.alpha is not None
    assert info.exif is not None
    assert camera_from_exif(info.exif, (32, 24)).camera == "Canon PowerShot S40"
    cam = read_camera_info(tif)
    assert (cam.camera, cam.f_number) == ("Canon PowerShot S40", 2.8)
    write_image(tmp_path / "out.jpg", rgb, info)
    assert read_camera_info(tmp_path / "out.jpg").camera == "Canon PowerShot S40"


def test_planar_16bit_grey_alpha_tiff_is_read(tmp_path):
    """A planar (one plane per sample) TIFF was refused as 'not an image'."""
    grey = (np.arange(20 * 30).reshape(20, 30) * 100).astype(np.uint16)
    alpha = np.full((20, 30), 65535, np.uint16)
    tifffile.imwrite(tmp_path / "planar.tif", np.stack([grey, alpha]), photometric="minisblack",
                     planarconfig="separate", extrasamples=[2])
    rgb, info = read_image(tmp_path / "planar.tif")
    assert rgb.shape == (20, 30, 3) and info.mode == "LA"
    np.testing.assert_allclose(rgb[..., 0], grey / 65535.0, atol=1e-6)


def test_associated_alpha_tiff_is_unpremultiplied(tmp_path):
    """Associated alpha stores colour x alpha: read as colour, a half-transparent grey of
    0.5 came out 0.25 (darkened edges on every cut-out from such a file)."""
    a = np.zeros((4, 4, 2), np.uint16)
    a[..., 0], a[..., 1] = 16384, 32768
    tifffile.imwrite(tmp_path / "assoc.tif", a, photometric="minisblack", extrasamples=[1])
    rgb, info = read_image(tmp_path / "assoc.tif")
    np.testing.assert_allclose(rgb[0, 0], 0.5, atol=1e-3)
    assert info.alpha[0, 0] == pytest.approx(0.5, abs=1e-3)


# --- refocus info ------------------------------------------------------------------------


def test_info_states_orientation_shape_and_f_number_support(tmp_path, capsys, monkeypatch):
    """A photographer could not tell from `refocus info` how the photo is turned, whether it
    is portrait, or whether --f-number can be used on it."""
    p = tmp_path / "sideways.jpg"
    Image.new("RGB", (40, 30), (90, 120, 150)).save(p, exif=_camera_exif(orientation=6))
    text = _info(capsys, monkeypatch, p)
    assert "30x40 px, portrait" in text
    assert "6, rotate 90 CW" in text and "stored upright (orientation 1)" in text
    assert "usable with metric depth" in text
    q = tmp_path / "nosensor.jpg"
    e = Image.Exif()
    e.load(_camera_exif())
    del e.get_ifd(0x8769)[0xA405]  # no 35 mm equivalent, no focal-plane resolution
    Image.new("RGB", (40, 30)).save(q, exif=e.tobytes())
    text = _info(capsys, monkeypatch, q)
    assert "not usable: EXIF lacks the sensor width" in text


def test_digital_zoom_of_65537_65536_is_no_zoom():
    """A Motorola XT912 writes DigitalZoomRatio 65537/65536: info said 'digital zoom 1x:
    the width of the sensor area the image covers (the whole sensor about 4.68 mm)'."""
    from PIL.TiffImagePlugin import IFDRational

    assert camera_from_exif(_camera_exif(zoom=IFDRational(65537, 65536)), (40, 30)).digital_zoom is None
    assert camera_from_exif(_camera_exif(zoom=IFDRational(2, 1)), (40, 30)).digital_zoom == 2.0


def test_a_result_rendered_again_keeps_the_f_number_it_was_taken_at(tmp_path, capsys, monkeypatch):
    """Rendering a refocus result again at another f-number said it was 'taken at' the
    first render's f-number; and `refocus info` did not say a file was rendered."""
    once = exif_with_f_number(_camera_exif(), 1.4)
    twice = exif_with_f_number(once, 2.0)
    cam = camera_from_exif(twice, (40, 30))
    assert cam.f_number == 2.0
    assert cam.rendered == "depth of field rendered for f/2; taken at f/2.8"
    p = tmp_path / "result.jpg"
    Image.new("RGB", (40, 30)).save(p, exif=twice)
    text = _info(capsys, monkeypatch, p)
    assert "rendered by refocus" in text and "taken at f/2.8" in text


# --- JPEG quality ------------------------------------------------------------------------


def _run(capsys, *argv) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in argv])
    out = capsys.readouterr()
    return exc.value.code or 0, out.out + out.err


def _small_scene(folder, name: str = "shot.jpg"):
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(3)
    Image.fromarray((rng.random((36, 48, 3)) * 255).astype(np.uint8)).save(folder / name, quality=98, exif=_camera_exif())
    ramp = np.repeat(np.linspace(0, 65535, 36, dtype=np.float64)[:, None], 48, axis=1).astype(np.uint16)
    Image.fromarray(ramp).save(folder / (name.rsplit(".", 1)[0] + "-disparity.png"))
    return folder / name


def _luma_q0(path) -> int:
    return Image.open(path).quantization[0][0]


def test_jpeg_quality_can_be_chosen(tmp_path, capsys):
    """A photographer had no way to set the JPEG quality: `--quality 90` is the renderer's
    fast/balanced/high, and every JPEG came out at 95."""
    photo = _small_scene(tmp_path / "in")
    code, text = _run(capsys, "refocus", photo, "-o", tmp_path / "q70.jpg", "-k", "3", "--no-deblur", "--jpeg-quality", "70")
    assert code == 0, text
    code, text = _run(capsys, "refocus", photo, "-o", tmp_path / "q95.jpg", "-k", "3", "--no-deblur")
    assert code == 0, text
    assert _luma_q0(tmp_path / "q70.jpg") > _luma_q0(tmp_path / "q95.jpg")
    code, text = _run(capsys, "refocus", photo, "-o", tmp_path / "bad.jpg", "--jpeg-quality", "0")
    assert code == 2 and text.strip() == "error: --jpeg-quality must be a whole number from 1 to 100, got 0"
    with pytest.raises(RefocusError, match="quality must be a whole number from 1 to 100"):
        write_image(tmp_path / "x.jpg", _photo(), quality=150)


def test_batch_jpeg_quality_is_recorded(tmp_path, capsys):
    _small_scene(tmp_path / "in")
    out = tmp_path / "out"
    code, text = _run(capsys, "batch", tmp_path / "in", "-o", out, "-k", "3", "--no-deblur", "-j", "1", "--jpeg-quality", "60")
    assert code == 0, text
    assert _luma_q0(out / "shot.jpg") > 8  # quality 95's first luma step is 2
    code, text = _run(capsys, "batch", tmp_path / "in", "-o", out, "-k", "3", "--no-deblur", "-j", "1")
    assert code == 0, text
    try:
        import os

        os.getxattr(out / "shot.jpg", "user.refocus.batch")
    except OSError:
        return  # no extended attributes on this disk: nothing recorded to compare
    assert "jpeg_quality 60 -> 95" in text


# --- XMP (captions, rights, keywords) ----------------------------------------------------

_XMP = (b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
        b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" '
        b'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="6">'
        b'<dc:rights>(c) A. Photographer</dc:rights></rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>')


@pytest.mark.parametrize("suffix, bits", [(".jpg", 8), (".png", 8), (".png", 16), (".tif", 8), (".tif", 16), (".webp", 8)])
def test_xmp_rights_are_kept_and_said_upright(tmp_path, suffix, bits):
    """A photographer's copyright and captions (XMP) were dropped from every result."""
    src = tmp_path / "shot.jpg"
    Image.new("RGB", (40, 30), (120, 90, 60)).save(src, exif=_camera_exif(orientation=6), xmp=_XMP)
    rgb, info = read_image(src)
    out = tmp_path / f"out{suffix}"
    write_image(out, rgb, info, bit_depth=bits)
    _, back = read_image(out)
    assert back.xmp is not None and b"(c) A. Photographer" in back.xmp
    # The pixels are written upright: the XMP says so, as the EXIF does.
    assert b'tiff:Orientation="1"' in back.xmp


def test_lens_blur_xmp_is_not_carried(tmp_path):
    """XMP that describes the photo's own depth map or original (Lens Blur) would make a
    result read as a Lens Blur file again: such a packet is left out."""
    src = tmp_path / "lensblur.jpg"
    xmp = _XMP.replace(b"<dc:rights>", b'<GDepth:Mime xmlns:GDepth="http://ns.google.com/photos/1.0/depthmap/">image/png</GDepth:Mime><dc:rights>')
    Image.new("RGB", (40, 30)).save(src, xmp=xmp)
    rgb, info = read_image(src)
    write_image(tmp_path / "out.jpg", rgb, info)
    assert "xmp" not in Image.open(tmp_path / "out.jpg").info


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("rewritten", [False, True], ids=["camera", "pillow-rewritten"])
def test_tiff_result_has_no_stale_interop_pointer(tmp_path, shared_data, bits, rewritten):
    """A TIFF result carried the EXIF Interop pointer as the photo's file offset, which
    points at nothing in the TIFF (Pillow: 'Truncated File Read' or garbage). EXIF that
    Pillow rewrote after reading the Interop IFD has a second pointer, in IFD0."""
    src = shared_data / "photos" / "exif-corpus" / "Canon_PowerShot_S40_1_.jpg"
    assert Image.open(src).getexif().get_ifd(0x8769).get(0xA005)  # the photo has one
    rgb, info = read_image(src)
    if rewritten:
        e = Image.Exif()
        e.load(info.exif)
        e.get_ifd(0xA005)
        info.exif = e.tobytes()
    write_image(tmp_path / "out.tif", rgb[:24, :32], info, bit_depth=bits)
    with open(tmp_path / "out.tif", "rb") as f:
        out = Image.Exif()
        out.load_from_fp(f)
        sub = out.get_ifd(0x8769)
    assert 0xA005 not in out and 0xA005 not in sub and sub.get(0x829D) == 2.8


def test_info_says_how_colour_is_kept(tmp_path, capsys, monkeypatch):
    p = tmp_path / "grey.jpg"
    Image.new("L", (40, 30), 128).save(p)
    assert "grey: results are grey" in _info(capsys, monkeypatch, p)
    q = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (40, 30), (10, 20, 30, 0)).save(q)
    assert "CMYK: converted to RGB; results are RGB" in _info(capsys, monkeypatch, q)
