"""The focal plane from a mask image (`--focus MASK.png`) and from a distance in metres
(`--focus-value 2.5m`), with their refusals."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from refocus.errors import RefocusError
from refocus.io import write_image
from refocus.pipeline import RefocusConfig, refocus
from refocus.pipeline.options import parse_focus, parse_focus_value


def _scene(tmp_path, h=64, w=160):
    """A textured photo over distances 1 .. 5 m from left to right (float .npy, metres)."""
    rng = np.random.default_rng(0)
    img = np.kron(rng.random((h // 4, w // 4, 3)).astype(np.float32), np.ones((4, 4, 1), np.float32))
    depth_m = np.tile(np.linspace(1.0, 5.0, w, dtype=np.float32), (h, 1))
    write_image(tmp_path / "p.png", img)
    np.save(tmp_path / "z.npy", depth_m)
    np.save(tmp_path / "d.npy", (1.0 / depth_m).astype(np.float32))  # relative disparity
    return tmp_path / "p.png", depth_m


def test_focus_value_syntax():
    assert parse_focus_value("0.25") == {"focus_value": 0.25}
    assert parse_focus_value(0.5) == {"focus_value": 0.5}
    assert parse_focus_value("2.5m") == {"focus_distance_m": 2.5}
    assert parse_focus_value(" 3 M ") == {"focus_distance_m": 3.0}
    for bad in ("1.5", "-0.1", "nan", "0m", "-2m", "infm", "am", "m", "two"):
        with pytest.raises(RefocusError, match="--focus-value"):
            parse_focus_value(bad)
    with pytest.raises(RefocusError, match="one focus setting"):
        RefocusConfig.build(focus_distance_m=2.0, focus_xy=(3, 4))
    assert RefocusConfig.build(focus_distance_m=2.5).focus_description() == "distance 2.5 m"


def test_focus_at_a_distance_in_metres_is_sharp_at_that_distance(tmp_path):
    photo, depth_m = _scene(tmp_path)
    r = refocus(str(photo), depth_path=str(tmp_path / "z.npy"), depth_kind="depth", focus_distance_m=2.0, strength=8, deblur="never")
    lo, hi = 1 / 5.0, 1 / 1.0
    assert r.focus_disparity == pytest.approx((1 / 2.0 - lo) / (hi - lo), abs=1e-4)
    col = int(np.argmin(np.abs(depth_m[0] - 2.0)))
    assert np.abs(r.coc_px[:, col]).max() < 0.1
    assert (r.coc_px[depth_m < 1.9] > 0).all() and (r.coc_px[depth_m > 2.1] < 0).all()
    # The same plane as a point clicked at that distance.
    r_pt = refocus(str(photo), depth_path=str(tmp_path / "z.npy"), depth_kind="depth", focus_xy=(col, 30), strength=8, deblur="never")
    assert r_pt.focus_disparity == pytest.approx(r.focus_disparity, abs=0.01)
    # Nearer than everything is a real lens setting: the whole scene is behind it.
    r_near = refocus(str(photo), depth_path=str(tmp_path / "z.npy"), depth_kind="depth", focus_distance_m=0.5, strength=8, deblur="never")
    assert (r_near.coc_px < 0).all()


def test_focus_in_metres_on_relative_depth_is_one_line_exit_2(tmp_path, capsys):
    from refocus.cli import main

    photo, _ = _scene(tmp_path)
    with pytest.raises(RefocusError, match="needs metric depth"):
        refocus(str(photo), depth_path=str(tmp_path / "d.npy"), focus_distance_m=2.0, strength=8, deblur="never")
    for args in (["--focus-value", "2m"], ["--focus-value", "2"]):
        with pytest.raises(SystemExit) as exc:
            main(["refocus", str(photo), "--depth", str(tmp_path / "d.npy"), *args, "-o", str(tmp_path / "o.png")])
        err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
        assert exc.value.code == 2 and len(err) == 1 and err[0].startswith("error:"), err
    assert not (tmp_path / "o.png").exists()


def test_a_focus_pull_between_distances(tmp_path):
    from refocus.pipeline import prepare
    from refocus.pipeline.animate import focus_pull, parse_endpoint

    photo, _ = _scene(tmp_path)
    cfg = RefocusConfig.build(depth_path=str(tmp_path / "z.npy"), depth_kind="depth", strength=6, deblur="never", quality="fast")
    p = prepare(str(photo), cfg)
    _, fds = focus_pull(p, cfg, parse_endpoint("1.5m"), parse_endpoint("4m"), frames=3)
    lo, hi = 1 / 5.0, 1 / 1.0
    assert fds[0] == pytest.approx((1 / 1.5 - lo) / (hi - lo), abs=1e-4)
    assert fds[-1] == pytest.approx((1 / 4.0 - lo) / (hi - lo), abs=1e-4)
    with pytest.raises(RefocusError, match="focus end"):
        parse_endpoint("4 metres")


def test_a_mask_sets_the_focus_at_its_subject(tmp_path):
    """White marks the subject; so does opacity in a cut-out with alpha; the mask may be
    smaller than the photo (same aspect ratio)."""
    photo, depth_m = _scene(tmp_path)
    m = np.zeros((32, 80), np.uint8)
    m[8:24, 50:60] = 255  # columns 100..119 of the photo: 3.5 .. 4.0 m
    Image.fromarray(m).save(tmp_path / "mask.png")
    rgba = np.zeros((32, 80, 4), np.uint8)
    rgba[..., :3] = 255  # white everywhere: the alpha must decide, not the colour
    rgba[8:24, 50:60, 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "cutout.png")
    kw = dict(depth_path=str(tmp_path / "z.npy"), depth_kind="depth", strength=8, deblur="never")
    expect = refocus(str(photo), focus_box=(100, 16, 119, 47), **kw).focus_disparity
    for mask in ("mask.png", "cutout.png"):
        r = refocus(str(photo), focus_mask=str(tmp_path / mask), **kw)
        assert r.focus_disparity == pytest.approx(expect, abs=0.01), mask
        assert np.abs(r.coc_px[:, 100:120]).max() < 0.6


def test_bad_masks_are_one_line_errors(tmp_path, capsys):
    from refocus.cli import main

    photo, _ = _scene(tmp_path)
    Image.fromarray(np.zeros((32, 80), np.uint8)).save(tmp_path / "empty.png")
    Image.fromarray(np.full((50, 50), 255, np.uint8)).save(tmp_path / "square.png")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    kw = dict(depth_path=str(tmp_path / "z.npy"), depth_kind="depth", strength=8, deblur="never")
    with pytest.raises(RefocusError, match="marks nothing"):
        refocus(str(photo), focus_mask=str(tmp_path / "empty.png"), **kw)
    with pytest.raises(RefocusError, match="aspect ratio"):
        refocus(str(photo), focus_mask=str(tmp_path / "square.png"), **kw)
    with pytest.raises(RefocusError, match="mask not found"):
        parse_focus(str(tmp_path / "missing.png"))
    with pytest.raises(RefocusError, match="a mask image or auto"):
        parse_focus("12")
    for mask in ("empty.png", "square.png", "broken.png", "missing.png"):
        with pytest.raises(SystemExit) as exc:
            main(["refocus", str(photo), "--depth", str(tmp_path / "z.npy"), "--focus", str(tmp_path / mask), "-k", "8",
                  "--no-deblur", "-o", str(tmp_path / "o.png")])
        err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
        assert exc.value.code == 2 and len(err) == 1 and err[0].startswith("error:"), (mask, err)
    assert not (tmp_path / "o.png").exists()


def test_the_mask_is_an_input_never_overwritten(tmp_path, capsys):
    from refocus.cli import main

    photo, _ = _scene(tmp_path)
    m = np.zeros((64, 160), np.uint8)
    m[10:30, 20:40] = 255
    Image.fromarray(m).save(tmp_path / "mask.png")
    before = (tmp_path / "mask.png").read_bytes()
    with pytest.raises(SystemExit) as exc:
        main(["refocus", str(photo), "--depth", str(tmp_path / "z.npy"), "--focus", str(tmp_path / "mask.png"), "-k", "8",
              "--no-deblur", "-o", str(tmp_path / "mask.png")])
    assert exc.value.code == 2
    assert (tmp_path / "mask.png").read_bytes() == before
    with pytest.raises(SystemExit) as exc:
        main(["refocus", str(photo), "--depth", str(tmp_path / "z.npy"), "--focus", str(tmp_path / "mask.png"), "-k", "8",
              "--no-deblur", "-o", str(tmp_path / "o.png")])
    assert exc.value.code == 0, capsys.readouterr().err
    assert (tmp_path / "o.png").is_file()


def _metric_photo_with_exif(tmp_path):
    """A 240 x 160 JPEG from a 6 mm lens (26 mm in 35 mm terms) over distances 1 .. 5 m."""
    from PIL.TiffImagePlugin import IFDRational

    rng = np.random.default_rng(1)
    img = (np.kron(rng.random((40, 60, 3)), np.ones((4, 4, 1))) * 255).astype(np.uint8)
    ex = Image.Exif()
    sub = ex.get_ifd(0x8769)
    sub[0x829D] = IFDRational(18, 10)
    sub[0x920A] = IFDRational(6, 1)
    sub[0xA405] = 26
    Image.fromarray(img).save(tmp_path / "cam.jpg", exif=ex.tobytes(), quality=95)
    np.save(tmp_path / "z.npy", np.tile(np.linspace(1.0, 5.0, 240, dtype=np.float32), (160, 1)))
    return tmp_path / "cam.jpg", tmp_path / "z.npy"


def test_f_number_works_on_a_preview_copy(tmp_path):
    """Regression: the UI's previews and `animate --max-size` render a resized copy,
    which dropped the photo's EXIF, so --f-number (the UI's f-number modes) always
    failed with "needs the focal length and sensor size from EXIF"."""
    from refocus.pipeline import prepare

    photo, zfile = _metric_photo_with_exif(tmp_path)
    cfg = RefocusConfig.build(depth_path=str(zfile), depth_kind="depth", f_number=1.4, full_frame=True, focus_distance_m=2.0,
                              deblur="never")
    full = prepare(str(photo), cfg)
    small = full.resized(full.shape[0] * full.shape[1] // 4)
    assert small.scale == pytest.approx(0.5, abs=0.01)
    fd = full.focus_disparity(cfg)
    assert small.focus_disparity(cfg) == pytest.approx(fd)
    k_full = full.strength(cfg, fd)
    assert k_full > 0 and small.strength(cfg, fd) == pytest.approx(k_full * small.scale, rel=1e-6)


def test_a_focus_pull_at_an_f_number_at_reduced_size(tmp_path, capsys):
    from refocus.cli import main

    photo, zfile = _metric_photo_with_exif(tmp_path)
    out = tmp_path / "pull.gif"
    with pytest.raises(SystemExit) as exc:
        main(["animate", str(photo), "--depth", str(zfile), "--depth-kind", "depth", "--from", "1.5m", "--to", "4m",
              "--frames", "3", "--max-size", "120", "--f-number", "2", "--no-deblur", "-o", str(out)])
    assert exc.value.code == 0, capsys.readouterr().err
    assert out.is_file()


def test_a_point_on_the_photos_last_row_focuses_a_reduced_copy(tmp_path):
    """animate --max-size 20 on a 1600x900 photo refused --from 800,880: one rounded
    scale factor put the photo's last rows outside the 20x11 copy."""
    from refocus.pipeline import Refocuser

    rng = np.random.default_rng(0)
    img = rng.random((90, 160, 3)).astype(np.float32)
    disp = np.zeros((90, 160), np.float32)
    disp[60:] = 1.0  # the bottom third is near
    write_image(tmp_path / "p.png", img)
    np.save(tmp_path / "p-disparity.npy", disp)
    photo = Refocuser().prepare(tmp_path / "p.png", RefocusConfig(strength=2, deblur="never"))
    small = photo.resized(226)  # what animate --max-size 20 asks of a 16:9 photo
    assert small.shape == (11, 20)  # 11.3 rows rounded down, 20.04 columns
    for y in (88, 89.9):
        cfg = RefocusConfig(strength=2, focus_xy=(80, y), deblur="never")
        assert small.focus_disparity(cfg) == pytest.approx(1.0, abs=0.05)
    with pytest.raises(RefocusError, match=r"outside the 160x90 image"):
        small.focus_disparity(RefocusConfig(strength=2, focus_xy=(80, 90), deblur="never"))
