"""A photographer's trial of what comes out of render/refocus/deblur/animate: alpha
edges, grey and 16-bit PNGs with their profile and EXIF, JPEG chroma, WebP
lossless, CMYK and grey profiles, the defocus map, video colour and GIF timing,
a Display P3 photo in a video, and the memory of a large write."""

from __future__ import annotations

import io
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

from refocus.cli import main
from refocus.io import ImageInfo, read_image, write_image
from refocus.io.image import as_float_rgb

H, W = 48, 64


def _run(capsys, *argv):
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in argv])
    return exc.value.code, capsys.readouterr().err


def _ramp_depth(tmp_path, h=H, w=W):
    p = tmp_path / "d.npy"
    np.save(p, np.tile(np.linspace(0, 1, w, dtype=np.float32), (h, 1)))
    return p


def _png_chunk(tag: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF)


def _with_chunks(png: bytes, before_idat: list[bytes] = (), before_iend: list[bytes] = ()) -> bytes:
    i = png.index(b"IDAT") - 4
    png = png[:i] + b"".join(before_idat) + png[i:]
    j = png.rindex(b"IEND") - 4
    return png[:j] + b"".join(before_iend) + png[j:]


def _png_color_type_and_depth(p) -> tuple[int, int]:
    head = Path(p).read_bytes()[:33]
    return head[25], head[24]


def _camera_exif(orientation: int = 1) -> bytes:
    e = Image.Exif()
    e[0x010F] = "Canon"
    e[0x0110] = "Canon EOS R5"
    e[0x0112] = orientation
    e.get_ifd(0x8769)[0x829D] = 2.8  # FNumber
    return e.tobytes()


def _srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _icc_of_space(space: bytes) -> bytes:
    b = bytearray(_srgb_icc())
    b[16:20] = space
    return bytes(b)


# -- alpha: the hidden colour under transparent pixels --------------------------------


def _cut_out(tmp_path, colour=(230, 180, 80)):
    yy, xx = np.mgrid[:H, :W]
    a = (((xx - 32) ** 2 + (yy - 24) ** 2) < 18 ** 2).astype(np.uint8) * 255
    rgba = np.zeros((H, W, 4), np.uint8)  # transparent black around the subject, as editors export
    rgba[a > 0, :3] = colour
    rgba[..., 3] = a
    p = tmp_path / "cut.png"
    Image.fromarray(rgba, "RGBA").save(p)
    return p, a


def test_a_blurred_cut_out_has_no_dark_fringe(tmp_path, capsys):
    """The colour under transparent pixels (black) was blurred into the subject's edge."""
    src, a = _cut_out(tmp_path)
    out = tmp_path / "o.png"
    code, err = _run(capsys, "render", src, "--depth", _ramp_depth(tmp_path), "-o", out, "--focus-value", "0", "-k", "8")
    assert code == 0, err
    res = np.asarray(Image.open(out)).astype(np.float32)
    assert res.shape == (H, W, 4) and np.array_equal(res[..., 3], a)  # the alpha kept as it was
    inside = a > 0
    # The subject is one colour: a blur of it alone stays that colour up to its edge.
    lum = res[..., :3].mean(axis=2)
    assert lum[inside].min() > 0.95 * np.mean((230, 180, 80)), lum[inside].min()


def test_only_fully_transparent_pixels_get_a_colour_from_their_neighbours(tmp_path):
    rgb = np.zeros((H, W, 3), np.float32)
    rgb[:, :20] = (0.2, 0.8, 0.4)
    alpha = np.zeros((H, W), np.float32)
    alpha[:, :20] = 1.0
    alpha[:, 18:20] = 0.5  # semi-transparent edge: its colour is its own
    rgb[:, 18:20] = (0.9, 0.1, 0.1)
    img = np.concatenate([rgb, alpha[..., None]], axis=2)
    p = tmp_path / "a.png"
    write_image(p, rgb, ImageInfo(alpha=alpha))
    for got, a in (read_image(p), as_float_rgb(img)):
        a = a if isinstance(a, np.ndarray) else a.alpha
        visible = a > 0
        np.testing.assert_allclose(got[visible], rgb[visible], atol=1 / 255)
        # the hidden pixels next to the subject carry its colour, not black
        assert got[:, 20:24].min(axis=(0, 1))[1] > 0.3


# -- grey and 16 bits ------------------------------------------------------------------


def test_a_16_bit_grey_alpha_png_stays_grey_16_bit_with_alpha(tmp_path, capsys):
    import imagecodecs
    import tifffile

    y, x = np.mgrid[:H, :W]
    g = (x * 1000 + y * 7 + 3).astype(np.uint16)
    a = np.full((H, W), 65535, np.uint16)
    a[:, :8] = 0
    src = tmp_path / "la16.png"
    src.write_bytes(imagecodecs.png_encode(np.dstack([g, a])))
    rgb, info = read_image(src)
    assert info.grayscale and info.bit_depth == 16 and info.alpha is not None
    depth = _ramp_depth(tmp_path)
    out = tmp_path / "o.png"
    code, err = _run(capsys, "render", src, "--depth", depth, "-o", out, "--focus-value", "0", "-k", "0")
    assert code == 0, err
    assert _png_color_type_and_depth(out) == (4, 16)  # grey + alpha, 16 bits
    back = imagecodecs.png_decode(out.read_bytes())
    np.testing.assert_array_equal(back[..., 1], a)
    assert np.abs(back[:, 8:, 0].astype(int) - g[:, 8:]).max() <= 1
    tif = tmp_path / "o.tif"
    code, err = _run(capsys, "render", src, "--depth", depth, "-o", tif, "--focus-value", "0", "-k", "0")
    assert code == 0, err
    assert tifffile.imread(tif).shape == (H, W, 2)
    _, tinfo = read_image(tif)  # refocus reads its own 16-bit grey + alpha TIFF
    assert tinfo.grayscale and tinfo.bit_depth == 16 and tinfo.alpha is not None


def test_a_16_bit_png_keeps_its_profile_and_exif_and_is_turned_upright(tmp_path, capsys):
    import imagecodecs

    stored = np.zeros((W, H, 3), np.uint16)  # stored on its side: orientation 6 turns it upright, H x W
    stored[..., 0] = np.arange(H, dtype=np.uint16)[None, :] * 1000 + 5
    icc = _srgb_icc()
    iccp = _png_chunk(b"iCCP", b"sRGB IEC61966-2.1\0\0" + zlib.compress(icc))
    exif = _png_chunk(b"eXIf", _camera_exif(orientation=6)[6:])
    src = tmp_path / "p16.png"
    src.write_bytes(_with_chunks(imagecodecs.png_encode(stored), [iccp], [exif]))
    rgb, info = read_image(src)
    assert rgb.shape == (H, W, 3) and info.bit_depth == 16
    assert info.icc_profile == icc and info.exif
    for ext in (".png", ".tif"):
        out = tmp_path / f"o{ext}"
        code, err = _run(capsys, "render", src, "--depth", _ramp_depth(tmp_path), "-o", out, "--focus-value", "0", "-k", "0")
        assert code == 0, err
        im = Image.open(out)
        im.load()
        assert im.size == (W, H)
        assert im.info.get("icc_profile") == icc
        e = im.getexif()
        assert e.get(0x0110) == "Canon EOS R5" and float(e.get_ifd(0x8769)[0x829D]) == 2.8
        assert e.get(0x0112) == 1
        _, oinfo = read_image(out)
        assert oinfo.bit_depth == 16
        code, err = _run(capsys, "info", out)
        assert code == 0, err


def test_a_png_exif_chunk_after_the_pixels_is_kept(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(np.zeros((4, 5, 3), np.uint8)).save(buf, "PNG")
    p = tmp_path / "late.png"
    p.write_bytes(_with_chunks(buf.getvalue(), before_iend=[_png_chunk(b"eXIf", _camera_exif()[6:])]))
    _, info = read_image(p)
    assert info.exif is not None
    write_image(tmp_path / "o.jpg", np.zeros((4, 5, 3), np.float32), info)
    assert Image.open(tmp_path / "o.jpg").getexif().get(0x0110) == "Canon EOS R5"


# -- JPEG, WebP, profiles ------------------------------------------------------------------


def test_jpeg_keeps_full_resolution_colour_at_high_quality(tmp_path):
    """4:2:0 smeared a saturated edge (a purple collar on grey fur) by a pixel or two."""
    from PIL import JpegImagePlugin

    img = np.full((64, 64, 3), 0.5, np.float32)
    img[:, 31:] = (0.45, 0.2, 0.75)
    out = write_image(tmp_path / "o.jpg", img)
    im = Image.open(out)
    assert JpegImagePlugin.get_sampling(im) == 0  # 4:4:4
    got = np.asarray(im.convert("RGB")).astype(np.float32) / 255
    # the grey column next to the edge stays grey (chroma did not bleed into it)
    col = got[:, 30]
    assert np.abs(col - col.mean(axis=1, keepdims=True)).max() < 0.03


def test_a_lossless_webp_stays_lossless(tmp_path, capsys):
    rng = np.random.default_rng(0)
    rgb = (rng.random((H, W, 3)) * 255).astype(np.uint8)
    depth = _ramp_depth(tmp_path)
    for lossless in (True, False):
        src = tmp_path / f"in-{lossless}.webp"
        Image.fromarray(rgb).save(src, lossless=lossless, quality=90)
        out = tmp_path / f"out-{lossless}.webp"
        code, err = _run(capsys, "render", src, "--depth", depth, "-o", out, "--focus-value", "0", "-k", "0")
        assert code == 0, err
        assert (b"VP8L" in out.read_bytes()[:64]) == lossless
    src_rgb, _ = read_image(tmp_path / "in-True.webp")
    out_rgb, _ = read_image(tmp_path / "out-True.webp")
    assert np.abs(src_rgb - out_rgb).max() < 1.5 / 255  # k 0: the photo itself, not re-compressed


def test_a_cmyk_profile_is_not_put_on_rgb_pixels(tmp_path, capsys):
    rgb = np.full((H, W, 3), (200, 40, 90), np.uint8)
    src = tmp_path / "cmyk.jpg"
    Image.fromarray(rgb).convert("CMYK").save(src, quality=95, icc_profile=_icc_of_space(b"CMYK"))
    _, info = read_image(src)
    assert info.icc_profile is None
    for ext in (".jpg", ".png", ".tif", ".webp"):
        out = tmp_path / f"o{ext}"
        code, err = _run(capsys, "render", src, "--depth", _ramp_depth(tmp_path), "-o", out, "--focus-value", "0", "-k", "0")
        assert code == 0, err
        im = Image.open(out)
        assert im.mode == "RGB" and not im.info.get("icc_profile")


def test_a_grey_profile_is_kept_on_grey_and_dropped_on_colour_output(tmp_path):
    g = np.full((8, 8, 3), 0.4, np.float32)
    info = ImageInfo(mode="L", icc_profile=_icc_of_space(b"GRAY"))
    assert Image.open(write_image(tmp_path / "g.png", g, info)).info.get("icc_profile") == info.icc_profile
    assert not Image.open(write_image(tmp_path / "g.webp", g, info)).info.get("icc_profile")  # WebP: RGB
    rgb_info = ImageInfo(mode="RGB", icc_profile=_srgb_icc())
    assert not Image.open(write_image(tmp_path / "c.png", g, rgb_info, grayscale=True)).info.get("icc_profile")


def test_an_alpha_photo_written_as_jpeg_is_flattened_over_white(tmp_path):
    src, a = _cut_out(tmp_path)
    rgb, info = read_image(src)
    got = np.asarray(Image.open(write_image(tmp_path / "o.jpg", rgb, info)).convert("RGB")).astype(int)
    assert got[0, 0].min() >= 250  # a corner: transparent, shown as white
    assert np.abs(got[24, 32] - (230, 180, 80)).max() <= 4


def test_a_heic_stating_display_p3_as_cicp_keeps_it_in_the_output(tmp_path, capsys):
    """Without an ICC profile (many Android phones) the colour space is in the HEIC's
    nclx box; it was dropped, and a P3 photo was shown as sRGB: duller."""
    pillow_heif = pytest.importorskip("pillow_heif")
    pillow_heif.register_heif_opener()
    src = tmp_path / "p3.heic"
    Image.fromarray(np.full((H, W, 3), (200, 60, 60), np.uint8)).save(
        src, quality=95, color_primaries=12, transfer_characteristics=13, matrix_coefficients=6, full_range_flag=1)
    assert "icc_profile" not in Image.open(src).info
    out = tmp_path / "o.jpg"
    code, err = _run(capsys, "render", src, "--depth", _ramp_depth(tmp_path), "-o", out, "--focus-value", "0", "-k", "0")
    assert code == 0, err
    im = Image.open(out)
    icc = im.info.get("icc_profile")
    assert icc
    srgb = ImageCms.profileToProfile(im.convert("RGB"), ImageCms.ImageCmsProfile(io.BytesIO(icc)), ImageCms.createProfile("sRGB"))
    r, g, _ = np.asarray(srgb)[H // 2, W // 2].astype(int)
    assert r > 212 and g < 55  # P3's red, more saturated than the same numbers in sRGB
    # sRGB stated as CICP needs no profile
    plain = tmp_path / "srgb.heic"
    Image.fromarray(np.full((H, W, 3), 128, np.uint8)).save(plain, quality=95, color_primaries=1, transfer_characteristics=13)
    assert read_image(plain)[1].icc_profile is None


def test_the_p3_profile_made_from_cicp_matches_apples(shared_data):
    import pillow_heif

    from refocus.io.color import icc_from_nclx

    pillow_heif.register_heif_opener()
    apple = Image.open(shared_data / "phone-depth" / "iphone13pro-pug.heic").info["icc_profile"]
    nclx = {"color_primaries": 12, "transfer_characteristics": 13, "color_primary_red_x": 0.68, "color_primary_red_y": 0.32,
            "color_primary_green_x": 0.265, "color_primary_green_y": 0.69, "color_primary_blue_x": 0.15,
            "color_primary_blue_y": 0.06, "color_primary_white_x": 0.3127, "color_primary_white_y": 0.329}
    img = Image.fromarray((np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8))
    srgb = ImageCms.createProfile("sRGB")
    ours = np.asarray(ImageCms.profileToProfile(img, ImageCms.ImageCmsProfile(io.BytesIO(icc_from_nclx(nclx))), srgb))
    theirs = np.asarray(ImageCms.profileToProfile(img, ImageCms.ImageCmsProfile(io.BytesIO(apple)), srgb))
    assert np.abs(ours.astype(int) - theirs).max() <= 1


# -- deblur's defocus map --------------------------------------------------------------


def test_the_defocus_map_is_one_grey_channel(tmp_path):
    import imagecodecs

    from refocus.cli.cmd_deblur import write_defocus_map

    d = np.tile(np.linspace(0, 6, W, dtype=np.float32), (H, 1))
    write_defocus_map(tmp_path / "m.png", d)
    assert _png_color_type_and_depth(tmp_path / "m.png") == (0, 16)
    back = imagecodecs.png_decode((tmp_path / "m.png").read_bytes()).astype(np.float32) / 65535 * 6
    assert np.abs(back - d).max() < 1e-3
    write_defocus_map(tmp_path / "m.jpg", d)
    assert Image.open(tmp_path / "m.jpg").mode == "L"


# -- video and GIF -------------------------------------------------------------------


def _ffmpeg():
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    return imageio_ffmpeg.get_ffmpeg_exe()


@pytest.mark.parametrize("suffix", [".mp4", ".webm"])
def test_video_colours_are_bt709_and_tagged(tmp_path, suffix):
    """Untagged BT.601 video was shown by players with the HD (BT.709) matrix: red as
    255,23,0 and green darkened to 215."""
    from refocus.pipeline.animate import write_animation

    ff = _ffmpeg()
    frame = np.zeros((720, 1280, 3), np.float32)
    frame[:, :640] = (1, 0, 0)
    frame[:, 640:] = (0, 1, 0)
    out = write_animation(tmp_path / f"v{suffix}", [frame, frame], fps=12)
    probe = subprocess.run([ff, "-hide_banner", "-i", str(out)], capture_output=True, text=True).stderr
    assert "bt709/bt709/iec61966-2-1" in probe, probe
    raw = subprocess.run([ff, "-v", "error", "-i", str(out), "-vf", "scale=in_color_matrix=bt709:in_range=tv,format=rgb24",
                          "-frames:v", "1", "-f", "rawvideo", "-"], capture_output=True).stdout
    got = np.frombuffer(raw, np.uint8).reshape(720, 1280, 3).astype(int)
    assert np.abs(got[360, 300] - (255, 0, 0)).max() <= 4
    assert np.abs(got[360, 1000] - (0, 255, 0)).max() <= 4


def test_gif_keeps_the_frame_rate(tmp_path, recwarn):
    from refocus.pipeline.animate import write_animation

    frames = [np.full((6, 8, 3), i / 30, np.float32) for i in range(24)]

    def durations(p):
        im = Image.open(p)
        out = []
        for k in range(im.n_frames):
            im.seek(k)
            out.append(im.info["duration"])
        return out

    d = durations(write_animation(tmp_path / "a.gif", frames, fps=12))
    assert len(d) == 24 and sum(d) == 2000  # 83.3 ms a frame, not 80
    d = durations(write_animation(tmp_path / "b.gif", frames, fps=60))
    assert min(d) >= 20 and sum(d) == 400  # browsers show a 10 ms delay as 100 ms
    assert any("at most 50 frames a second" in str(w.message) for w in recwarn)


def _animate(capsys, tmp_path, src, out):
    code, err = _run(capsys, "animate", src, "--from", "0", "--to", "1", "--frames", "2", "-k", "2", "--no-deblur",
                     "--depth", _ramp_depth(tmp_path), "-o", out, "--quality", "fast")
    assert code == 0, err
    import imageio.v3 as iio

    return iio.imread(out, index=None)


def test_a_display_p3_photo_is_shown_in_srgb_in_a_video(tmp_path, capsys, shared_data):
    """Video and GIF carry no profile: P3 values written as they are look duller."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    p3 = Image.open(shared_data / "phone-depth" / "iphone13pro-pug.heic").info["icc_profile"]
    src = tmp_path / "p3.png"
    Image.fromarray(np.full((H, W, 3), (204, 76, 76), np.uint8)).save(src, icc_profile=p3)
    want = np.asarray(ImageCms.profileToProfile(Image.open(src).convert("RGB"), ImageCms.ImageCmsProfile(io.BytesIO(p3)),
                                                ImageCms.createProfile("sRGB")))[0, 0].astype(int)
    assert want[0] > 215  # P3's red is redder than sRGB's: the sRGB value is more saturated
    frames = _animate(capsys, tmp_path, src, tmp_path / "p3.mp4")
    assert np.abs(frames[-1][H // 2, W // 2].astype(int) - want).max() <= 4


def test_an_alpha_photo_in_a_video_is_shown_over_white(tmp_path, capsys):
    src, a = _cut_out(tmp_path)
    frames = _animate(capsys, tmp_path, src, tmp_path / "cut.mp4")
    assert frames.shape[0] == 2
    assert frames[-1][1, 1].min() >= 245  # transparent corner: white, not the black the file hides there


# -- a large write -------------------------------------------------------------------------


@pytest.mark.parametrize("ext, bits", [(".jpg", None), (".png", None), (".png", 16), (".tif", 16)])
def test_writing_does_not_copy_the_image_three_times(tmp_path, ext, bits):
    import tracemalloc

    img = np.random.default_rng(0).random((1000, 1500, 3), dtype=np.float32)
    tracemalloc.start()
    try:
        write_image(tmp_path / f"big{ext}", img, bit_depth=bits)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1.0 * img.nbytes, f"peak {peak / img.nbytes:.2f} x the image"
    back, _ = read_image(tmp_path / f"big{ext}")
    assert back.shape == img.shape
