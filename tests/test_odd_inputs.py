"""Photos in less common shapes: 16-bit and float TIFFs with metadata, animations,
multi-page files. Each is read as the user sees it, or a warning says what was not."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image, ImageOps

from refocus.io import read_image, write_image


def _exif(orientation: int = 1) -> Image.Exif:
    e = Image.Exif()
    e[0x010F] = "Canon"
    e[0x0112] = orientation
    e.get_ifd(0x8769)[0x829D] = 2.8  # FNumber
    return e


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_a_16_bit_or_float_tiff_keeps_its_exif_and_icc_into_the_output(tmp_path, dtype):
    # They were read by tifffile without their metadata: every output lost the camera's
    # EXIF (f-number...) and the colour profile.
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    x = np.random.default_rng(0).random((30, 40, 3))
    data = (x * 65535).astype(np.uint16) if dtype == np.uint16 else x.astype(np.float32)
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, data, photometric="rgb", extratags=[(34675, "B", len(icc), icc, True)], description=None)
    # Add the EXIF through Pillow's view of the same header (tifffile cannot write an EXIF IFD).
    rgb, info = read_image(src)
    assert info.icc_profile == icc
    write_image(tmp_path / "mid.tif", rgb, info.__class__(bit_depth=16, exif=_exif().tobytes(), icc_profile=icc))
    rgb, info = read_image(tmp_path / "mid.tif")
    assert info.exif is not None and info.icc_profile == icc
    write_image(tmp_path / "out.jpg", rgb, info)
    with Image.open(tmp_path / "out.jpg") as im:
        assert im.getexif().get_ifd(0x8769).get(0x829D) == 2.8 and im.info.get("icc_profile") == icc


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_a_16_bit_tiff_is_turned_upright_like_any_other_photo(tmp_path, orientation):
    # The tifffile path ignored the EXIF orientation: a portrait 16-bit TIFF came out on its side.
    a = (np.random.default_rng(1).random((20, 30, 3)) * 255).astype(np.uint8)
    tifffile.imwrite(tmp_path / "o16.tif", a.astype(np.uint16) * 257, photometric="rgb",
                     extratags=[(274, "H", 1, orientation, True)])
    rgb, _ = read_image(tmp_path / "o16.tif")
    im = Image.fromarray(a)
    e = im.getexif()
    e[0x0112] = orientation
    im.save(tmp_path / "o8.png", exif=e.tobytes())
    want = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "o8.png"))).astype(np.float32) / 255
    assert rgb.shape == want.shape
    np.testing.assert_allclose(rgb, want, atol=1e-4)


def test_float_values_above_one_are_clipped_with_a_warning(tmp_path):
    tifffile.imwrite(tmp_path / "hdr.tif", np.full((10, 12, 3), 3.0, np.float32), photometric="rgb")
    with pytest.warns(UserWarning, match=r"hdr.tif: float values up to 3 clipped to 1"):
        rgb, _ = read_image(tmp_path / "hdr.tif")
    assert rgb.max() == 1.0


@pytest.mark.parametrize("suffix", [".gif", ".webp", ".tif"])
def test_an_animation_or_multi_page_file_says_only_its_first_frame_is_used(tmp_path, suffix):
    frames = [Image.fromarray(np.full((12, 16, 3), v, np.uint8)) for v in (40, 120, 200)]
    path = tmp_path / f"anim{suffix}"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    with pytest.warns(UserWarning, match="holds 3 frames.*the first is used"):
        rgb, _ = read_image(path)
    assert abs(float(rgb.mean()) - 40 / 255) < 0.02


def test_a_single_frame_photo_gives_no_warning(tmp_path, recwarn):
    Image.fromarray(np.full((12, 16, 3), 90, np.uint8)).save(tmp_path / "one.gif")
    read_image(tmp_path / "one.gif")
    assert not [w for w in recwarn if "frames" in str(w.message)]


def test_a_multi_picture_jpeg_is_not_called_an_animation(tmp_path, recwarn):
    # iPhone and camera JPEGs store depth and gain maps as MPO "frames": reading one
    # warned that only its first frame was used.
    first = Image.fromarray(np.full((12, 16, 3), 90, np.uint8))
    first.save(tmp_path / "iphone.jpg", format="MPO", save_all=True, append_images=[Image.new("L", (8, 6), 128)])
    with Image.open(tmp_path / "iphone.jpg") as im:
        assert im.format == "MPO" and im.n_frames == 2
    read_image(tmp_path / "iphone.jpg")
    assert not [w for w in recwarn if "frames" in str(w.message)]


@pytest.mark.parametrize("kind", ["cmyk", "palette", "miniswhite"])
def test_a_cmyk_palette_or_white_is_zero_tiff_reads_as_its_colours(tmp_path, kind):
    """Found 2026-12-07: the TIFF reader took tifffile's samples whatever their colour
    model: a CMYK TIFF came out fully transparent (K read as alpha), a palette one as
    grey palette indices, a white-is-zero grey one inverted."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:40, 0:60]
    rgb = np.stack([x * 4, y * 6, (rng.random((40, 60)) * 255)], -1).astype(np.uint8)
    path = tmp_path / f"{kind}.tif"
    if kind == "cmyk":
        Image.fromarray(rgb).convert("CMYK").save(path)
        want = np.asarray(Image.fromarray(rgb).convert("CMYK").convert("RGB"), np.float32) / 255
    elif kind == "palette":
        pal = Image.fromarray(rgb).convert("P")
        pal.save(path)
        want = np.asarray(pal.convert("RGB"), np.float32) / 255
    else:
        tifffile.imwrite(path, 255 - rgb[..., 0], photometric="miniswhite")
        want = np.repeat(rgb[..., :1], 3, -1).astype(np.float32) / 255
    got, info = read_image(path)
    assert info.alpha is None
    np.testing.assert_allclose(got, want, atol=1 / 255 + 1e-6)


def test_a_truncated_grid_heic_is_refused_not_painted_green(tmp_path):
    """Found 2026-12-07: libheif decodes a grid HEIC (an iPhone's) with tiles missing
    without an error and paints them green: half of the iPhone pug HEIC read as a
    whole photo, its lower third solid green, and was refocused (exit 0)."""
    pillow_heif = pytest.importorskip("pillow_heif")
    from refocus.errors import RefocusError

    saved = pillow_heif.options.GRID_TILE_SIZE
    pillow_heif.options.GRID_TILE_SIZE = 64
    try:
        rgb = (np.random.default_rng(0).random((256, 256, 3)) * 255).astype(np.uint8)
        Image.fromarray(rgb).save(tmp_path / "whole.heic", quality=90)
    finally:
        pillow_heif.options.GRID_TILE_SIZE = saved
    data = (tmp_path / "whole.heic").read_bytes()
    (tmp_path / "half.heic").write_bytes(data[: len(data) * 6 // 10])
    assert read_image(tmp_path / "whole.heic")[0].shape == (256, 256, 3)
    with pytest.raises(RefocusError, match="half.heic: the file is truncated or damaged"):
        read_image(tmp_path / "half.heic")
