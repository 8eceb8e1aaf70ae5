"""What a result keeps of its input: grayscale stays grayscale, and the EXIF says the
f-number the result was rendered for (issue 13 items 13 and 14)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

from refocus.cli import main

H, W = 48, 64


def _run(capsys, *argv):
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in argv])
    return exc.value.code, capsys.readouterr().err


def _gray():
    y, x = np.mgrid[0:H, 0:W]
    return ((x * 4 + y * 2) % 256).astype(np.uint8)


@pytest.fixture()
def depth(tmp_path):
    p = tmp_path / "d.npy"
    np.save(p, np.tile(np.linspace(0, 1, W, dtype=np.float32), (H, 1)))
    return p


@pytest.mark.parametrize(
    "name, save, mode",
    [
        ("g.png", lambda p: Image.fromarray(_gray()).save(p), "L"),
        ("g16.png", lambda p: Image.fromarray(_gray().astype(np.uint16) * 257).save(p), "I;16"),
        ("g.jpg", lambda p: Image.fromarray(_gray()).save(p, quality=95), "L"),
        ("g.tif", lambda p: __import__("tifffile").imwrite(p, _gray()), "L"),
    ],
)
@pytest.mark.parametrize("cmd", ["refocus", "render"])
def test_grayscale_input_gives_grayscale_output(tmp_path, capsys, depth, name, save, mode, cmd):
    src = tmp_path / name
    save(src)
    out = tmp_path / ("out" + src.suffix)
    extra = ["--no-deblur"] if cmd == "refocus" else ["--focus-value", "0.5"]
    code, err = _run(capsys, cmd, src, "--depth", depth, "-o", out, "-k", "3", *extra)
    assert code in (0, None), err
    with Image.open(out) as o:
        assert o.mode == mode


def test_color_input_stays_rgb(tmp_path, capsys, depth):
    src = tmp_path / "c.png"
    Image.fromarray(np.dstack([_gray(), _gray()[::-1], _gray()[:, ::-1]])).save(src)
    code, err = _run(capsys, "refocus", src, "--depth", depth, "-o", tmp_path / "o.png", "-k", "3", "--no-deblur")
    assert code in (0, None), err
    with Image.open(tmp_path / "o.png") as o:
        assert o.mode == "RGB"


def test_exif_f_number_is_the_simulated_one_and_the_original_is_kept(tmp_path, capsys):
    rng = np.random.default_rng(3)
    ex = Image.Exif()
    sub = ex.get_ifd(0x8769)
    sub[0x829D] = IFDRational(4, 1)  # taken at f/4
    sub[0x920A] = IFDRational(50, 1)
    sub[0xA405] = 50
    photo = tmp_path / "p.jpg"
    Image.fromarray((rng.random((H, W, 3)) * 255).astype(np.uint8)).save(photo, exif=ex.tobytes(), quality=95)
    np.save(tmp_path / "z.npy", np.where(np.arange(W)[None, :] < W // 2, 2.0, 4.0).astype(np.float32).repeat(H, axis=0))
    out = tmp_path / "o.jpg"
    code, err = _run(capsys, "refocus", photo, "-o", out, "--depth", tmp_path / "z.npy", "--depth-kind", "depth",
                     "--focus", "10,20", "--f-number", "1.8", "--no-deblur")
    assert code in (0, None), err
    from refocus.camera import read_camera_info

    assert read_camera_info(out).f_number == pytest.approx(1.8)
    with Image.open(out) as o:
        exif = o.getexif().get_ifd(0x8769)
    comment = exif[0x9286].decode("ascii", "replace")
    assert "f/1.8" in comment and "taken at f/4" in comment
    assert float(exif[0x920A]) == 50  # the rest of the EXIF is kept
    # A strength instead of an f-number leaves the EXIF as it was.
    code, err = _run(capsys, "refocus", photo, "-o", tmp_path / "k.jpg", "--depth", tmp_path / "z.npy", "-k", "3", "--no-deblur")
    assert code in (0, None), err
    assert read_camera_info(tmp_path / "k.jpg").f_number == pytest.approx(4.0)


def test_ui_export_writes_the_simulated_f_number():
    from refocus.io import ImageInfo
    from refocus.pipeline import RefocusConfig
    from refocus.pipeline.core import output_info

    ex = Image.Exif()
    ex.get_ifd(0x8769)[0x829D] = IFDRational(4, 1)
    info = ImageInfo(exif=ex.tobytes())
    assert output_info(info, RefocusConfig(strength=3)) is info
    new = output_info(info, RefocusConfig(f_number=2.0))
    e = Image.Exif()
    e.load(new.exif)
    assert float(e.get_ifd(0x8769)[0x829D]) == 2.0 and info.exif == ex.tobytes()


def test_full_frame_equivalent_f_number(tmp_path, capsys):
    """--full-frame reads --f-number as a full-frame equivalent (what phone portrait
    modes mean): K grows by the crop factor, EXIF FNumber stays the lens's own and
    UserComment says what was rendered."""
    from refocus.camera import read_camera_info
    from refocus.pipeline import RefocusConfig, refocus
    from refocus.errors import RefocusError

    rng = np.random.default_rng(4)
    ex = Image.Exif()
    sub = ex.get_ifd(0x8769)
    sub[0x829D] = IFDRational(18, 10)  # taken at f/1.8
    sub[0x920A] = IFDRational(6, 1)  # 6 mm lens ...
    sub[0xA405] = 26  # ... of 26 mm in 35 mm terms: a phone, crop factor 26 / 6
    photo = tmp_path / "p.jpg"
    Image.fromarray((rng.random((H, W, 3)) * 255).astype(np.uint8)).save(photo, exif=ex.tobytes(), quality=95)
    z = tmp_path / "z.npy"
    np.save(z, np.where(np.arange(W)[None, :] < W // 2, 1.0, 3.0).astype(np.float32).repeat(H, axis=0))
    common = dict(depth_path=str(z), depth_kind="depth", focus_xy=(10, 20), f_number=1.8, deblur="never")
    own = refocus(str(photo), **common)
    ff = refocus(str(photo), **common, full_frame=True)
    crop = 26 / 6
    # Thin lens: K scales by the crop factor up to (1 - f/z) terms (f = 26 mm, z = 1 m).
    assert ff.strength / own.strength == pytest.approx(crop, rel=0.03)
    out = tmp_path / "o.jpg"
    code, err = _run(capsys, "refocus", photo, "-o", out, "--depth", z, "--depth-kind", "depth",
                     "--focus", "10,20", "--f-number", "1.8", "--full-frame", "--no-deblur")
    assert code in (0, None), err
    assert read_camera_info(out).f_number == pytest.approx(1.8)  # the lens's own, as taken
    with Image.open(out) as o:
        comment = o.getexif().get_ifd(0x8769)[0x9286].decode("ascii", "replace")
    assert "f/1.8 full-frame equivalent" in comment
    with pytest.raises(RefocusError, match="full-frame"):
        RefocusConfig.build(strength=3, full_frame=True)


@pytest.mark.parametrize("bits", [8, 16])
def test_tiff_output_keeps_exif_and_icc_like_the_other_formats(tmp_path, capsys, bits):
    """A TIFF result carried only baseline tags plus tifffile's shape JSON: the camera
    EXIF, the f-number note and the ICC profile were dropped (PNG/JPEG/WebP kept them)."""
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    ex = Image.Exif()
    ex[0x010F], ex[0x0110], ex[0x0112] = "Acme", "Phone 9", 3  # Make, Model, Orientation (180)
    sub = ex.get_ifd(0x8769)
    sub[0x829D] = IFDRational(4, 1)  # FNumber: taken at f/4
    sub[0x829A] = IFDRational(1, 125)  # ExposureTime
    sub[0x920A] = IFDRational(50, 1)  # FocalLength
    sub[0xA405] = 50  # FocalLengthIn35mmFilm
    sub[0xA434] = "Acme 50mm"  # LensModel
    rng = np.random.default_rng(5)
    photo = tmp_path / "p.jpg"
    Image.fromarray((rng.random((H, W, 3)) * 255).astype(np.uint8)).save(
        photo, exif=ex.tobytes(), icc_profile=icc, quality=95)
    np.save(tmp_path / "z.npy", np.where(np.arange(W)[None, :] < W // 2, 2.0, 4.0).astype(np.float32).repeat(H, axis=0))
    out = tmp_path / "o.tif"
    code, err = _run(capsys, "refocus", photo, "-o", out, "--depth", tmp_path / "z.npy", "--depth-kind", "depth",
                     "--focus", "10,20", "--f-number", "1.8", "--no-deblur", "--bit-depth", bits)
    assert code in (0, None), err

    import tifffile

    with tifffile.TiffFile(out) as tif:
        page = tif.pages[0]
        assert page.shape == (H, W, 3) and page.dtype == (np.uint16 if bits == 16 else np.uint8)
        tags = page.tags
        assert tags["InterColorProfile"].value == icc
        assert tags["Make"].value == "Acme" and tags["Model"].value == "Phone 9"
        assert tags["Orientation"].value == 1  # the pixels are written upright
        assert "ImageDescription" not in tags  # no tifffile '{"shape": ...}' JSON
        assert "Software" not in tags  # the photo had none; not 'tifffile.py'
        exif = tags["ExifTag"].value
        assert exif["FNumber"] == (9, 5)  # the simulated f/1.8
        assert exif["ExposureTime"] == (1, 125)
        assert exif["LensModel"] == "Acme 50mm"
        assert "taken at f/4" in exif["UserComment"]
    # Pillow (what read_camera_info and other programs use) sees the same.
    with Image.open(out) as o:
        assert o.info.get("icc_profile") == icc
        sub = o.getexif().get_ifd(0x8769)
        assert float(sub[0x829D]) == pytest.approx(1.8)
        assert sub[0xA434] == "Acme 50mm"


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("gray", [False, True])
@pytest.mark.parametrize("with_alpha", [False, True])
def test_tiff_pixels_and_alpha_round_trip(tmp_path, bits, gray, with_alpha):
    """The TIFF writers (Pillow's for its modes, its IFD writer for 16-bit colour or
    grey + alpha) store the pixels, the bit depth and the alpha channel exactly."""
    import tifffile

    from refocus.io import ImageInfo, write_image

    rng = np.random.default_rng(bits + 2 * gray + 4 * with_alpha)
    dtype = np.uint16 if bits == 16 else np.uint8
    q = np.iinfo(dtype).max
    want = rng.integers(0, q + 1, (H, W, 1 if gray else 3), dtype=dtype)
    alpha = rng.integers(0, q + 1, (H, W), dtype=dtype) if with_alpha else None
    info = ImageInfo(bit_depth=bits, alpha=None if alpha is None else alpha.astype(np.float32) / q)
    img = np.broadcast_to(want, (H, W, 3)).astype(np.float32) / q
    out = write_image(tmp_path / "o.tif", img, info, bit_depth=bits, grayscale=gray)
    if alpha is not None:
        want = np.concatenate([want, alpha[..., None]], axis=2)
    with tifffile.TiffFile(out) as tif:
        page = tif.pages[0]
        assert page.photometric == (tifffile.PHOTOMETRIC.MINISBLACK if gray else tifffile.PHOTOMETRIC.RGB)
        assert tuple(page.extrasamples) == ((tifffile.EXTRASAMPLE.UNASSALPHA,) if with_alpha else ())
        got = page.asarray()
    np.testing.assert_array_equal(got.reshape(want.shape), want)
