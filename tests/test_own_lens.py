"""The lens a photo states (Google Lens Blur: GFocus + GDepth + the original in GImage)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import test_depth_writers as W
from refocus.camera import strength_from_lens_blur
from refocus.depth.embedded import read_lens_blur
from refocus.errors import RefocusError
from refocus.pipeline import RefocusConfig, Refocuser

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "phone-depth"
MOTOROLA = SHARED / "motorola-lensblur-gdepth.jpg"

NEAR, FAR, FOCAL, BLUR = 1.0, 5.0, 2.0, 0.01


def test_strength_from_lens_blur():
    # radius = b * |z - z_f| / z = b * z_f * |1/z - 1/z_f|, b a fraction of the long side
    k = strength_from_lens_blur(0.01, 2.0, 400)
    assert k == pytest.approx(8.0)
    z = np.array([1.0, 2.0, 4.0, 1e9])
    radius = k * np.abs(1 / z - 1 / 2.0)
    np.testing.assert_allclose(radius, 0.01 * 400 * np.abs(z - 2.0) / z, rtol=1e-6)
    with pytest.raises(RefocusError):
        strength_from_lens_blur(-0.01, 2.0, 400)
    with pytest.raises(RefocusError):
        strength_from_lens_blur(0.01, 0.0, 400)


def _lens_blur_file(tmp_path, gfocus=True, original=True) -> tuple[Path, np.ndarray, np.ndarray]:
    """A 160x120 Lens Blur JPEG: depth a left-right ramp, the primary a flat grey
    (what it shows does not matter here), the original a texture."""
    rng = np.random.default_rng(0)
    h, w = 120, 160
    depth = np.tile(np.linspace(NEAR, FAR, w, dtype=np.float32), (h, 1))
    dn = W.encode_range(depth, "RangeInverse", NEAR, FAR, bits=16)
    buf = io.BytesIO()
    Image.fromarray(dn).save(buf, format="PNG")
    orig_rgb = (rng.random((h, w, 3)) * 255).astype(np.uint8)
    orig_jpeg = W.jpeg_bytes(orig_rgb)
    primary = np.full((h, w, 3), 128, np.uint8)
    focus = {"FocalDistance": FOCAL, "BlurAtInfinity": BLUR, "FocalPointX": 0.25, "FocalPointY": 0.5} if gfocus else None
    data = W.gdepth_jpeg(primary, buf.getvalue(), "RangeInverse", NEAR, FAR, gfocus=focus,
                         original_jpeg=orig_jpeg if original else None)
    path = tmp_path / "lensblur.jpg"
    path.write_bytes(data)
    decoded = np.asarray(Image.open(io.BytesIO(orig_jpeg)).convert("RGB"), np.float32) / 255
    return path, depth, decoded


def test_lens_blur_file_states_its_lens_and_original(tmp_path):
    path, depth, original = _lens_blur_file(tmp_path)
    lens = read_lens_blur(path.read_bytes())
    assert lens.focal_distance == pytest.approx(FOCAL)
    assert lens.blur_at_infinity == pytest.approx(BLUR)
    assert lens.focal_point == pytest.approx((0.25, 0.5))
    assert lens.original is not None

    photo = Refocuser().prepare(path, RefocusConfig(deblur="never"))
    own = photo.own_lens
    assert own is not None
    lo, hi = 1 / FAR, 1 / NEAR
    # the stated focal plane, in the map's own normalised disparity
    assert own.focus_disparity == pytest.approx((1 / FOCAL - lo) / (hi - lo), abs=1e-4)
    # K for that normalised disparity: b * z_f * long side * disparity span
    assert own.strength_px == pytest.approx(BLUR * FOCAL * 160 * (hi - lo), rel=1e-4)
    # the default strength is the stated lens; an explicit one still wins
    fd = photo.focus_disparity(RefocusConfig(focus_value=0.2))
    assert photo.strength(RefocusConfig(focus_value=0.2), fd) == pytest.approx(own.strength_px)
    assert photo.strength(RefocusConfig(focus_value=0.2, own_lens=True), fd) == pytest.approx(own.strength_px)
    assert photo.strength(RefocusConfig(focus_value=0.2, strength=3.0), fd) == pytest.approx(3.0)
    # the stored original is the all-in-focus image; the blur map is the stated lens's
    np.testing.assert_array_equal(photo.all_in_focus, original)
    expect = np.abs(photo.disparity - own.focus_disparity) * own.strength_px
    np.testing.assert_allclose(photo.input_blur_px, expect, atol=1e-4)
    assert any("it stores its original" in n for n in photo.notes)


def test_the_notes_say_whether_the_stored_original_was_used(tmp_path):
    """Regression (batch trial on the Motorola Lens Blur photo): at its own focus and lens
    the photo itself is rendered, yet the notes said both "rendering from the original it
    stores" and "deblurring skipped"."""
    path, _, _ = _lens_blur_file(tmp_path)
    r = Refocuser().refocus(path, RefocusConfig())
    assert not r.deblurred
    assert any("rendered from the photo itself, not its stored original" in n for n in r.notes)
    assert not any("deblurring skipped" in n or "rendering from the original" in n for n in r.notes)
    far = Refocuser().refocus(path, RefocusConfig(focus_value=1.0))
    assert far.deblurred and far.all_in_focus_source == "stored original"
    assert not any("rendered from the photo itself" in n for n in far.notes)


def test_working_copy_scales_the_stated_lens(tmp_path):
    path, _, _ = _lens_blur_file(tmp_path)
    photo = Refocuser().prepare(path, RefocusConfig(deblur="never"), work_pixels=80 * 60)
    assert photo.scale == pytest.approx(0.5)
    fd = photo.focus_disparity(RefocusConfig(focus_value=0.2))
    assert photo.strength(RefocusConfig(), fd) == pytest.approx(photo.own_lens.strength_px * 0.5)
    assert photo.all_in_focus.shape == photo.image.shape


def test_without_gfocus_there_is_no_own_lens(tmp_path):
    path, _, _ = _lens_blur_file(tmp_path, gfocus=False)
    assert read_lens_blur(path.read_bytes()) is None
    photo = Refocuser().prepare(path, RefocusConfig(deblur="never"))
    assert photo.own_lens is None and photo.all_in_focus is None
    fd = photo.focus_disparity(RefocusConfig(focus_value=0.2))
    assert photo.strength(RefocusConfig(), fd) == pytest.approx(0.015 * 160)
    with pytest.raises(RefocusError, match="states its lens"):
        photo.strength(RefocusConfig(own_lens=True), fd)

    def depth_must_not_run(*args):
        raise AssertionError("the depth stage ran before the missing lens was reported")

    with pytest.raises(RefocusError, match="states its lens"):
        Refocuser(depth=depth_must_not_run).prepare(path, RefocusConfig(own_lens=True))


def test_strength_auto_on_the_cli(tmp_path, capsys):
    from refocus.cli import main

    path, _, _ = _lens_blur_file(tmp_path)
    k = BLUR * FOCAL * 160 * (1 / NEAR - 1 / FAR)  # 2.56 px
    out = tmp_path / "a.png"
    with pytest.raises(SystemExit) as e:
        main(["refocus", str(path), "-o", str(out), "--focus-value", "0.2", "-k", "auto", "--no-deblur"])
    captured = capsys.readouterr()
    assert e.value.code == 0, captured.err
    assert f"strength {k:.1f} px" in captured.out + captured.err and out.exists()
    (tmp_path / "plain").mkdir()
    plain, _, _ = _lens_blur_file(tmp_path / "plain", gfocus=False)
    for k_arg, message in (("auto", "states its lens"), ("abc", "takes a number of pixels or 'auto'")):
        with pytest.raises(SystemExit) as e:
            main(["refocus", str(plain), "-o", str(tmp_path / "b.png"), "--focus-value", "0.2", "-k", k_arg])
        err = capsys.readouterr().err
        assert e.value.code == 2 and message in err and "Traceback" not in err, err
    assert not (tmp_path / "b.png").exists()


def test_info_reports_the_stated_lens(tmp_path):
    from typer.testing import CliRunner

    from refocus.cli import _register, app

    _register()
    path, _, _ = _lens_blur_file(tmp_path)
    res = CliRunner().invoke(app, ["info", str(path)], env={"COLUMNS": "300"})
    assert res.exit_code == 0, res.output
    assert "Google Lens Blur: focal plane at depth 2" in res.output
    assert "blur at infinity 1.6 px" in res.output  # 0.01 of the 160 px long side
    assert "stored: renders start from it" in res.output


@pytest.mark.skipif(not MOTOROLA.exists(), reason="needs ../shared/data/phone-depth (real Lens Blur file)")
def test_real_lens_blur_file():
    """The Motorola XT912's Lens Blur JPEG: its stated focal plane is the depth under its
    stated focal point, and our renderer re-blurring the stored original with the
    stated lens matches the photo Lens Blur rendered better than with that blur read as
    a fraction of the short side (the other plausible reading) or 1.3 times larger."""
    from refocus.render import RenderConfig, render_linear

    data = MOTOROLA.read_bytes()
    lens = read_lens_blur(data)
    assert lens.focal_distance == pytest.approx(26.517597)
    assert lens.blur_at_infinity == pytest.approx(0.00796752)
    photo = Refocuser().prepare(MOTOROLA, RefocusConfig(deblur="never"))
    own = photo.own_lens
    h, w = photo.shape
    x, y = lens.focal_point
    assert photo.disparity[int(y * h), int(x * w)] == pytest.approx(own.focus_disparity, abs=0.01)
    assert photo.all_in_focus is not None and photo.all_in_focus.shape == photo.image.shape

    s = 4  # a quarter of the size keeps it fast; blur scales with it
    small = lambda a: np.asarray(Image.fromarray((a * 255 + 0.5).astype(np.uint8)).resize((w // s, h // s), Image.LANCZOS), np.float32) / 255  # noqa: E731
    prim, orig = small(photo.image), small(photo.all_in_focus)
    disp = np.asarray(Image.fromarray(photo.disparity).resize((w // s, h // s), Image.BILINEAR), np.float32)

    def psnr_for(factor):
        coc = (own.strength_px / s * factor * (disp - own.focus_disparity)).astype(np.float32)
        # Lens Blur blends sRGB values, so the comparison does too.
        out = np.clip(np.asarray(render_linear(orig, coc, RenderConfig(highlight_gain=0.0)), np.float32), 0, 1)
        return -10 * np.log10(np.mean((out - prim)[8:-8, 8:-8] ** 2))

    stated = psnr_for(1.0)
    assert stated > psnr_for(w / h) + 1.0  # the short side: 0.75 times the blur
    assert stated > psnr_for(1.3) + 0.5
    assert stated > 38.0


def test_ui_blur_mode_own_lens(tmp_path):
    from refocus.ui.app import OWN_LENS_MODE, _config

    cfg = _config((40, 30), OWN_LENS_MODE, 8, 2.8, "disc", 6, 0, 0, None, 0.0, device="cpu")
    assert cfg.own_lens and cfg.strength is None and cfg.f_number is None
    path, _, _ = _lens_blur_file(tmp_path)
    photo = Refocuser().prepare(path, RefocusConfig(deblur="never"))
    assert photo.strength(cfg, 0.5) == pytest.approx(photo.own_lens.strength_px)


def test_bench_lensblur_cases(tmp_path):
    """`refocus bench quality --data lensblur:DIR`: the rendered photo -> the stored original."""
    from refocus.bench.quality import build_cases, parse_data

    path, _, original = _lens_blur_file(tmp_path)
    _lens_blur_file(tmp_path / "plain" if (tmp_path / "plain").mkdir() is None else tmp_path, gfocus=False)
    assert parse_data(f"lensblur:{tmp_path}") == [f"lensblur:{tmp_path}"]
    cases, notes = build_cases(["deblur"], [f"lensblur:{tmp_path}"])
    assert [c.name for c in cases] == ["lensblur"] and not notes
    c = cases[0]
    assert c.task == "deblur" and c.dataset == f"lensblur:{tmp_path.name}" and c.meta["file"] == str(path)
    np.testing.assert_array_equal(c.target, original)
    assert c.strength == pytest.approx(BLUR * FOCAL * 160 * (1 / NEAR - 1 / FAR), rel=1e-4)
    quick, _ = build_cases(["deblur"], [f"lensblur:{tmp_path}"], quick=True)
    assert quick[0].input.shape == (30, 40, 3)
    none, notes = build_cases(["deblur"], [f"lensblur:{tmp_path / 'plain'}"])
    assert not none and "not a Lens Blur JPEG" in notes[0] and "no Lens Blur JPEG" in notes[-1]


def test_bench_lensblur_refocus_cases(tmp_path):
    """`--task refocus --data lensblur:DIR`: the rendered photo -> the original refocused
    behind its subject with the file's lens (sharp at the new plane, blurred away from it)."""
    from refocus.bench.quality import LENSBLUR_REFOCUS_PERCENTILES, build_cases
    from refocus.render import coc_map

    _, _, original = _lens_blur_file(tmp_path)
    cases, notes = build_cases(["refocus"], [f"lensblur:{tmp_path}"])
    assert not notes and [c.name for c in cases] == [f"lensblur-to-{n}" for n in LENSBLUR_REFOCUS_PERCENTILES]
    for c, pct in zip(cases, LENSBLUR_REFOCUS_PERCENTILES.values()):
        assert c.task == "refocus" and c.focus_disparity == pytest.approx(np.percentile(c.disparity, pct))
        coc = np.abs(coc_map(c.disparity, c.focus_disparity, c.strength))
        inner = np.zeros(coc.shape, bool)
        inner[8:-8, 8:-8] = True
        sharp, blurred = inner & (coc < 0.3), inner & (coc > 1.5)  # K is 2.6 px here
        assert sharp.sum() > 50 and blurred.sum() > 50
        changed = np.abs(c.target - original).mean(axis=-1)
        assert changed[blurred].mean() > 0.08  # uniform noise loses its texture
        assert changed[sharp].mean() < 0.25 * changed[blurred].mean()
    assert build_cases(["bokeh"], [f"lensblur:{tmp_path}"])[0] == []


def test_result_says_the_all_in_focus_image_is_the_stored_original(tmp_path):
    from refocus.pipeline import refocus

    path, _, _ = _lens_blur_file(tmp_path)
    # Focus far from the stated plane with a smaller K: sharper than the photo somewhere.
    res = refocus(path, focus_value=0.0, strength=1.0)
    assert res.deblurred and res.all_in_focus_source == "stored original"
    plain = refocus(path, focus_value=0.0, strength=1.0, deblur="never")
    assert not plain.deblurred and plain.all_in_focus_source == ""


def test_without_a_focus_a_lens_blur_photo_keeps_its_own_focal_plane(tmp_path):
    """Auto focus guessed another plane than the one the file states (the Motorola photo:
    0.944 against its own 0.930), so the default render did not keep the photo's look;
    a focus the user gives still wins."""
    path, _, _ = _lens_blur_file(tmp_path)
    photo = Refocuser().prepare(path, RefocusConfig(deblur="never"))
    assert photo.focus_disparity(RefocusConfig()) == pytest.approx(photo.own_lens.focus_disparity)
    assert photo.focus_disparity(RefocusConfig(focus_value=0.2)) == pytest.approx(0.2)
    fd_click = photo.focus_disparity(RefocusConfig(focus_xy=(150, 60)))
    assert fd_click != pytest.approx(photo.own_lens.focus_disparity, abs=0.05)


def test_the_motorola_lens_blur_photo_refocuses_at_its_own_plane_by_default(shared_data):
    path = shared_data / "phone-depth" / "motorola-lensblur-gdepth.jpg"
    photo = Refocuser().prepare(path, RefocusConfig(deblur="never"))
    assert photo.focus_disparity(RefocusConfig()) == pytest.approx(photo.own_lens.focus_disparity)


def test_a_turned_lens_blur_photo_keeps_its_stored_original_and_upright_focal_point(tmp_path):
    """Found 2026-12-07: with an EXIF orientation (6: a portrait shot), the stored
    original was refused as "does not match the photo" and the photo was deblurred
    instead, and `info` gave the focal point in the stored frame (30 %, 53 % where
    upright it is 47 %, 30 %). The original is stored as the sensor saw it, like the
    photo's pixels: turned as they are, it stands in for the photo."""
    from refocus.io.image import apply_orientation, upright_fraction

    path, _, original = _lens_blur_file(tmp_path)
    data = path.read_bytes()
    ex = Image.Exif()
    ex[0x0112] = 6
    payload = ex.tobytes()
    if not payload.startswith(b"Exif\x00\x00"):
        payload = b"Exif\x00\x00" + payload
    app1 = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    turned = tmp_path / "turned.jpg"
    turned.write_bytes(data[:2] + app1 + data[2:])
    photo = Refocuser().prepare(turned, RefocusConfig(deblur="never"))
    assert photo.image.shape[:2] == (160, 120)
    own = photo.own_lens
    assert own.original is not None
    np.testing.assert_allclose(own.original, apply_orientation(original, 6), atol=1e-6)
    assert own.focal_point == pytest.approx((0.5, 0.25))
    # upright_fraction turns a point as apply_orientation turns the pixels
    marked = np.zeros((4, 6))
    marked[1, 4] = 1  # x = 4.5 / 6, y = 1.5 / 4 as fractions of pixel centres
    for o in range(1, 9):
        up = apply_orientation(marked, o)
        r, c = np.argwhere(up == 1)[0]
        assert upright_fraction(4.5 / 6, 1.5 / 4, o) == pytest.approx(((c + 0.5) / up.shape[1], (r + 0.5) / up.shape[0])), o


def test_a_lens_blur_depth_png_with_a_damaged_chunk_is_refused(tmp_path):
    """Found 2026-12-07: bytes of a Lens Blur JPEG's XMP overwritten gave a depth map
    of stripes and noise (values 18.8-633 where the intact map spans 24.8-334),
    used with only a note that the XMP checksum does not match. The embedded PNG's
    own chunk checksums show the damage."""
    from refocus.depth.embedded import read_gdepth

    h, w = 40, 60
    depth = np.tile(np.linspace(NEAR, FAR, w, dtype=np.float32), (h, 1))
    buf = io.BytesIO()
    Image.fromarray(W.encode_range(depth, "RangeInverse", NEAR, FAR, bits=16)).save(buf, format="PNG")
    png = bytearray(buf.getvalue())
    intact = W.gdepth_jpeg(np.full((h, w, 3), 128, np.uint8), bytes(png), "RangeInverse", NEAR, FAR)
    assert read_gdepth(intact) is not None
    i = png.find(b"IDAT") + 20
    png[i] ^= 0x55
    damaged = W.gdepth_jpeg(np.full((h, w, 3), 128, np.uint8), bytes(png), "RangeInverse", NEAR, FAR)
    with pytest.raises(RefocusError, match="damaged"):
        read_gdepth(damaged)


def test_bench_lensblur_finds_upper_case_jpeg_names(tmp_path):
    """Found 2026-12-07: `--data lensblur:DIR` globbed "*.jp*g", so a camera's
    MOTO.JPG was passed over without a word ("no Lens Blur JPEG ... found")."""
    from refocus.bench.quality import build_cases

    path, _, _ = _lens_blur_file(tmp_path)
    path.rename(tmp_path / "MOTO.JPG")
    cases, notes = build_cases(["deblur"], [f"lensblur:{tmp_path}"])
    assert len(cases) == 1 and not notes


def test_bench_lensblur_says_a_plain_jpeg_is_not_a_lens_blur_file(tmp_path):
    """Found 2026-12-07: a camera JPEG in a lensblur:DIR folder went through the whole
    depth stage and was skipped with advice to pass --depth, which bench does not take."""
    from refocus.bench.quality import build_cases

    _lens_blur_file(tmp_path)
    rng = np.random.default_rng(3)
    Image.fromarray((rng.random((30, 40, 3)) * 255).astype(np.uint8)).save(tmp_path / "camera.jpg")
    cases, notes = build_cases(["deblur"], [f"lensblur:{tmp_path}"])
    assert len(cases) == 1
    assert notes == ["lensblur: camera.jpg: not a Lens Blur JPEG (no GFocus lens in its XMP); skipped"]


def test_bench_lensblur_folders_are_separate_datasets(tmp_path):
    """Found 2026-12-07: two lensblur:DIR sources were pooled into one "lensblur" row,
    and a case's meta named no file."""
    from refocus.bench.quality import build_cases

    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        _lens_blur_file(tmp_path / sub)
    cases, _ = build_cases(["deblur"], [f"lensblur:{tmp_path / 'a'}", f"lensblur:{tmp_path / 'b'}"])
    assert sorted(c.dataset for c in cases) == ["lensblur:a", "lensblur:b"]
