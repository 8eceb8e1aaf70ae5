"""``refocus depth`` and ``refocus info`` end to end (through the real entry point)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

import test_depth_writers as W
from refocus.cli import main


def _run(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out = capsys.readouterr()
    return exc.value.code, out.out + out.err


def _gdepth_photo(tmp_path, units: str | None = "m"):
    """A GDepth JPEG whose depth grows to the right (the left is near)."""
    rng = np.random.default_rng(3)
    rgb = (rng.random((40, 60, 3)) * 255).astype(np.uint8)
    yy, xx = np.mgrid[0:20, 0:30]
    depth = (1.0 + xx / 29.0).astype(np.float32)
    png = W.png_bytes(W.encode_range(depth, "RangeInverse", 1.0, 2.0))
    p = tmp_path / "lensblur.jpg"
    p.write_bytes(W.gdepth_jpeg(rgb, png, "RangeInverse", 1.0, 2.0, units=units, chunk=400))
    return p


def test_depth_command_writes_three_files_and_names_the_source(tmp_path, capsys):
    photo = _gdepth_photo(tmp_path)
    out = tmp_path / "d.npy"
    code, text = _run(["depth", str(photo), "-o", str(out), "--no-estimate"], capsys)
    assert code in (0, None), text
    d = np.load(out)
    assert d.shape == (40, 60) and d.dtype == np.float32
    assert d[:, 0].mean() < d[:, -1].mean()  # metric distance grows to the right
    assert 0.99 < d.min() and d.max() < 2.01
    assert "GDepth XMP" in text and "metric depth" in text
    png = np.asarray(Image.open(tmp_path / "d-disparity.png"))
    assert png.dtype == np.uint16 and png[:, 0].mean() > png[:, -1].mean()  # white = near
    assert Image.open(tmp_path / "d-preview.png").size == (60, 40)


def test_depth_command_errors_are_one_line(tmp_path, capsys):
    photo = tmp_path / "plain.png"
    Image.new("RGB", (30, 20)).save(photo)
    code, text = _run(["depth", str(photo), "-o", str(tmp_path / "x.npy"), "--no-estimate"], capsys)
    assert code == 2 and text.startswith("error: no depth") and text.count("\n") == 1
    code, text = _run(["depth", str(photo), "-o", str(tmp_path / "x.jpg"), "--depth", str(photo)], capsys)
    assert code == 2 and "error:" in text and "Traceback" not in text
    # The sidecar PNG must never overwrite the input photo.
    victim = tmp_path / "y-disparity.png"
    Image.new("RGB", (30, 20), (10, 20, 30)).save(victim)
    before = victim.read_bytes()
    dmap = tmp_path / "dm.npy"
    np.save(dmap, np.ones((20, 30), np.float32))
    code, text = _run(["depth", str(victim), "-o", str(tmp_path / "y.npy"), "--depth", str(dmap)], capsys)
    assert code == 2 and "refusing to overwrite" in text
    assert victim.read_bytes() == before


def test_info_command(tmp_path, capsys):
    p = tmp_path / "cam.jpg"
    img = Image.new("RGB", (60, 40))
    ex = Image.Exif()
    ex[0x010F] = "Google"
    ex[0x0110] = "Pixel 8"
    sub = ex.get_ifd(0x8769)
    sub[0x829D] = IFDRational(168, 100)
    sub[0x920A] = IFDRational(690, 100)
    sub[0xA405] = 25
    sub[0x9206] = IFDRational(12, 10)
    img.save(p, exif=ex.tobytes())
    code, text = _run(["info", str(p)], capsys)
    assert code in (0, None), text
    for s in ("60x40", "Pixel 8", "f/1.68", "6.9 mm", "25 mm in 35 mm terms", "1.2 m", "embedded depth", "none", "px·m"):
        assert s in text, s
    code, text = _run(["info", str(_gdepth_photo(tmp_path))], capsys)
    assert "GDepth XMP (RangeInverse): metric depth, 30x20" in text
    assert "missing f-number" in text


def _soft_map_photo(tmp_path, depth_offset_px=2):
    """A bright subject (left) on a dark background and, beside it as PHOTO-disparity.npy,
    a map at the photo's size whose step is soft and ``depth_offset_px`` outside the
    colour edge (negative: inside the subject)."""
    from test_depth import _backlit_edge

    img, disp, edge = _backlit_edge(h=48, w=96, depth_offset_px=depth_offset_px)
    photo = tmp_path / "p.png"
    Image.fromarray((img * 255 + 0.5).astype(np.uint8)).save(photo)
    np.save(tmp_path / "p-disparity.npy", disp)
    return photo, disp, edge


def test_align_depth_snaps_a_map_at_the_photos_size(tmp_path, capsys):
    """A map at the photo's size is the user's word and used as it is; --align-depth
    aligns it too (weighted median and the snap of soft steps), for a map whose outline
    is soft or off the subject's (the glow of bokehme-13)."""
    photo, disp, edge = _soft_map_photo(tmp_path)
    as_is, aligned = tmp_path / "as-is.npy", tmp_path / "aligned.npy"
    code, text = _run(["depth", str(photo), "-o", str(as_is), "--no-estimate"], capsys)
    assert code in (0, None), text
    np.testing.assert_array_equal(np.load(as_is), disp)
    code, text = _run(["depth", str(photo), "-o", str(aligned), "--no-estimate", "--align-depth"], capsys)
    assert code in (0, None), text
    d = np.load(aligned)
    assert d[:, : edge - 1].min() > 0.75 and d[:, edge + 1 :].max() < 0.25, d[0, edge - 4 : edge + 6]
    code, text = _run(["depth", str(photo), "-o", str(tmp_path / "x.npy"), "--align-depth", "--no-refine"], capsys)
    assert code == 2 and "not both" in text and "Traceback" not in text


def test_refocus_align_depth_reaches_the_depth_stage(tmp_path):
    from refocus.pipeline import stages
    from refocus.pipeline.options import build_config

    photo, disp, edge = _soft_map_photo(tmp_path)
    from refocus.io import read_image

    img, _ = read_image(photo)
    for align, soft in ((False, True), (True, False)):
        cfg = build_config(strength=10, focus_value=0.8, align_depth=align)
        notes: list[str] = []
        d = stages.load_disparity(img, photo, cfg, notes)[0]
        middle = int(((d > 0.2) & (d < 0.8)).sum())
        assert (middle > 0) == soft, (align, middle)


def test_render_align_depth(tmp_path, capsys):
    """`refocus render` has --align-depth too: the soft step around the bright subject
    no longer spreads it over the blurred background (the step inside the subject: its
    bright outline had a middle depth)."""
    photo, disp, edge = _soft_map_photo(tmp_path, depth_offset_px=-2)
    outs = {}
    for flag in ([], ["--align-depth"]):
        out = tmp_path / f"r{len(flag)}.png"
        code, text = _run(["render", str(photo), "--depth", str(tmp_path / "p-disparity.npy"), "-o", str(out),
                           "-k", "20", "--focus-value", "1", "--highlight-gain", "0"] + flag, capsys)
        assert code in (0, None), text
        outs[len(flag)] = np.asarray(Image.open(out), np.float32).mean(axis=2)
    background = slice(edge + 2, edge + 6)  # dark, blurred, next to the bright subject
    assert outs[1][:, background].mean() < outs[0][:, background].mean() - 2, (outs[0][:, background].mean(), outs[1][:, background].mean())
