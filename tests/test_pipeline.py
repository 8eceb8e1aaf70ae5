"""The composed pipeline: config, focus, skip/keep-sharp rules, intermediates, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from refocus.errors import RefocusError
from refocus.io import read_image, srgb_to_linear, linear_to_srgb, write_image
from refocus.pipeline import RefocusConfig, prepare, refocus, save_intermediates
from refocus.pipeline.core import keep_sharp_input


def _scene(h=96, w=128, seed=0):
    """A sharp textured scene: left half far (disparity 0), right half near (1)."""
    rng = np.random.default_rng(seed)
    img = rng.random((h // 4, w // 4, 3)).astype(np.float32)
    img = np.kron(img, np.ones((4, 4, 1), dtype=np.float32))  # crisp 4-px checks: plenty of edges
    disp = np.zeros((h, w), np.float32)
    disp[:, w // 2 :] = 1.0
    return img, disp


@pytest.fixture()
def scene_files(tmp_path):
    img, disp = _scene()
    write_image(tmp_path / "photo.png", img)
    np.save(tmp_path / "disp.npy", disp)
    return tmp_path / "photo.png", tmp_path / "disp.npy", img, disp


def test_config_rejects_two_focus_settings():
    with pytest.raises(RefocusError, match="only one focus"):
        RefocusConfig.build(focus_xy=(1, 2), focus_value=0.5)
    with pytest.raises(RefocusError, match="strength .-k. or an f-number"):
        RefocusConfig.build(strength=3, f_number=2.8)
    with pytest.raises(RefocusError, match="--focus-value"):
        RefocusConfig.build(focus_value=1.5)


def test_focus_point_selects_the_clicked_side(scene_files):
    photo, depth, img, disp = scene_files
    p = prepare(photo, depth_path=str(depth))
    assert p.focus_disparity(RefocusConfig(focus_xy=(100, 50))) == pytest.approx(1.0, abs=1e-3)
    assert p.focus_disparity(RefocusConfig(focus_xy=(10, 50))) == pytest.approx(0.0, abs=1e-3)
    assert p.focus_disparity(RefocusConfig(focus_value=0.3)) == pytest.approx(0.3)


def test_focused_side_is_the_input_and_the_other_side_is_blurred(scene_files):
    photo, depth, img, disp = scene_files
    r = refocus(photo, depth_path=str(depth), focus_xy=(100, 50), strength=6, highlight_gain=0)
    near, far = r.image[:, 72:], r.image[:, :56]
    # In focus and sharp in the input: the input pixels, exactly.
    assert np.abs(near - read_image(photo)[0][:, 72:]).max() < 1e-6
    # Out of focus: texture (local variance) strongly reduced.
    assert far.std() < 0.6 * img[:, :56].std()
    assert r.coc_px[:, :56].max() == pytest.approx(-6, abs=1e-3)
    assert not r.deblurred


def test_highlight_threshold_reaches_the_renderer(tmp_path):
    """Found 2026-12-07: `refocus render` had --highlight-threshold, but refocus,
    batch and animate did not, so lights a camera did not clip (fairy lights at
    0.8) could not become bright balls there. A small light at 0.85 (sRGB) is boosted
    with a threshold of 0.8 and not with the default 0.92."""
    img = np.full((64, 64, 3), 0.1, np.float32)
    img[31:33, 31:33] = 0.85
    photo, depth = tmp_path / "p.png", tmp_path / "d.npy"
    write_image(photo, img)
    np.save(depth, np.zeros((64, 64), np.float32))
    energy = {}
    for t in (None, 0.8):
        out = tmp_path / f"o{t}.png"
        extra = [] if t is None else ["--highlight-threshold", str(t)]
        res = _cli(["refocus", str(photo), "--depth", str(depth), "--focus-value", "1", "-k", "6", "--no-deblur",
                    "-o", str(out), *extra])
        assert res.exit_code == 0, res.output
        energy[t] = float(srgb_to_linear(read_image(out)[0]).sum())
    assert energy[0.8] > energy[None] * 1.005
    cfg = RefocusConfig.build(highlight_threshold=0.8)
    assert cfg.highlight_threshold == 0.8


def test_deblur_skipped_when_the_input_is_sharp_and_note_says_so(scene_files):
    photo, depth, *_ = scene_files
    r = refocus(photo, depth_path=str(depth), focus_value=1.0, strength=4)
    assert not r.deblurred
    assert any("deblurring skipped" in n for n in r.notes)


def test_input_blur_is_estimated_per_depth():
    img, disp = _scene(128, 192)
    from refocus.aperture import ApertureConfig, kernel
    from scipy.signal import fftconvolve

    lin = srgb_to_linear(img)
    k = kernel(ApertureConfig(), 4.0)
    blurred = linear_to_srgb(np.stack([fftconvolve(lin[..., c], k, mode="same") for c in range(3)], -1))
    mixed = img.copy()
    mixed[:, :96] = blurred[:, :96]  # far half blurred by a 4 px disc, near half sharp
    from refocus.pipeline.sharpness import input_blur_map

    b = input_blur_map(mixed, disp)
    assert np.median(b[:, 110:180]) < 1.0
    assert 2.0 < np.median(b[:, 10:80]) < 7.0


def test_needs_deblur_only_where_new_blur_is_smaller_than_the_input_blur(scene_files):
    photo, depth, *_ = scene_files
    p = prepare(photo, depth_path=str(depth))
    p.input_blur_px = np.where(p.disparity > 0.5, 0.0, 5.0).astype(np.float32)
    far_focus = np.where(p.disparity > 0.5, 8.0, 0.0).astype(np.float32)  # far must become sharp
    near_focus = np.where(p.disparity > 0.5, 0.0, -8.0).astype(np.float32)  # far gets blurrier
    assert p.needs_deblur(far_focus)
    assert not p.needs_deblur(near_focus)


def test_keep_sharp_input_never_worse_where_already_right():
    rng = np.random.default_rng(1)
    inp = (0.2 + 0.8 * rng.random((20, 20, 3))).astype(np.float32)
    # In focus the render agrees with the input up to its resampling (keep_sharp_input
    # puts the input back only where it does, KEEP_AGREE_SRGB: here by 0.002 in
    # linear light, at most 0.0023 in sRGB).
    rendered = inp + 0.002
    rendered[:, 10:] = 0.0
    coc = np.zeros((20, 20), np.float32)
    coc[:, 10:] = 5.0
    blur = np.zeros((20, 20), np.float32)
    blur[:5] = 3.0  # the input was blurred in the top rows: no keeping there
    out = keep_sharp_input(rendered, inp, coc, blur, 0.5)
    np.testing.assert_array_equal(out[5:, :10], inp[5:, :10])
    np.testing.assert_array_equal(out[:, 10:], rendered[:, 10:])
    np.testing.assert_array_equal(out[:5, :10], rendered[:5, :10])


def test_preview_copy_scales_focus_and_strength(scene_files):
    photo, depth, *_ = scene_files
    p = prepare(photo, depth_path=str(depth))
    small = p.resized(p.shape[0] * p.shape[1] // 4)
    assert small.scale == pytest.approx(0.5, abs=0.02)
    cfg = RefocusConfig(focus_xy=(100, 50), strength=10)
    assert small.focus_disparity(cfg) == pytest.approx(1.0, abs=1e-3)
    assert small.strength(cfg, 1.0) == pytest.approx(10 * small.scale)


def test_array_input_and_alpha_kept(tmp_path):
    img, disp = _scene()
    rgba = np.concatenate([img, np.linspace(0, 1, img.shape[1], dtype=np.float32)[None, :, None].repeat(img.shape[0], 0)], 2)
    np.save(tmp_path / "d.npy", disp)
    r = refocus(rgba, depth_path=str(tmp_path / "d.npy"), strength=3)
    assert r.image.shape == img.shape
    write_image(tmp_path / "o.png", r.image, r.info)
    back, info = read_image(tmp_path / "o.png")
    assert info.alpha is not None and np.abs(info.alpha - rgba[..., 3]).max() < 1 / 255 + 1e-6


def test_save_intermediates(scene_files, tmp_path):
    photo, depth, *_ = scene_files
    r = refocus(photo, depth_path=str(depth), focus_value=0.0, strength=4)
    files = {p.name for p in save_intermediates(r, tmp_path / "inter")}
    assert {"all_in_focus.png", "disparity.png", "coc.png", "coc_px.npy", "disparity.npy", "settings.json"} <= files
    coc = np.load(tmp_path / "inter" / "coc_px.npy")
    np.testing.assert_allclose(coc, r.coc_px)
    meta = json.loads((tmp_path / "inter" / "settings.json").read_text())
    assert meta["strength_px"] == 4 and meta["config"]["focus_value"] == 0.0


def test_coc_colours_distinguish_front_behind_focus():
    from refocus.pipeline.visual import BEHIND_RGB, FRONT_RGB, IN_FOCUS_RGB, coc_to_rgb

    rgb = coc_to_rgb(np.array([[5.0, -5.0, 0.0]], np.float32))
    np.testing.assert_allclose(rgb[0, 0], FRONT_RGB, atol=1e-6)
    np.testing.assert_allclose(rgb[0, 1], BEHIND_RGB, atol=1e-6)
    np.testing.assert_allclose(rgb[0, 2], IN_FOCUS_RGB, atol=1e-6)


runner = CliRunner()


def _cli(args):
    from refocus.cli import _register, app

    _register()
    return runner.invoke(app, args)


def test_cli_refocus_and_intermediates(scene_files, tmp_path):
    photo, depth, *_ = scene_files
    out = tmp_path / "out.jpg"
    res = _cli(["refocus", str(photo), "-o", str(out), "--depth", str(depth), "--focus", "100,50", "-k", "4",
                "--aperture", "polygon", "--blades", "5", "--save-intermediate", str(tmp_path / "i")])
    assert res.exit_code == 0, res.output
    assert out.exists() and (tmp_path / "i" / "coc.png").exists()
    assert read_image(out)[0].shape == (96, 128, 3)


@pytest.mark.parametrize("name", ["coc.png", "all_in_focus.png"])
def test_an_output_named_like_an_intermediate_beside_it_is_refused(scene_files, tmp_path, name):
    """Found 2026-12-07: -o DIR/coc.png --save-intermediate DIR wrote the result,
    then the CoC picture over it: exit 0, the refocused photo lost."""
    photo, depth, *_ = scene_files
    inter = tmp_path / "i"
    res = _cli(["refocus", str(photo), "-o", str(inter / name), "--depth", str(depth), "--focus", "100,50", "-k", "4",
                "--no-deblur", "--save-intermediate", str(inter)])
    assert res.exit_code != 0, res.output
    assert "written beside it" in str(res.exception) and not (inter / name).exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--focus", "1,2,3"], "--focus must be 2 numbers"),
        (["--blades", "40"], "blades"),
        (["--aperture", "hexagon"], "--aperture must be"),
        (["--strength", "-3"], "strength"),
        (["--focus", "5000,5"], "outside"),
    ],
)
def test_cli_bad_options_one_line(scene_files, tmp_path, args, message):
    photo, depth, *_ = scene_files
    res = _cli(["refocus", str(photo), "-o", str(tmp_path / "o.png"), "--depth", str(depth), *args])
    assert res.exit_code != 0
    assert message in str(res.exception) or message in res.output
    assert not (tmp_path / "o.png").exists()


def test_cli_f_number_end_to_end_matches_thin_lens(tmp_path):
    """A photo with EXIF (50 mm on a full-frame sensor) and a metric depth map: at f/2,
    focused on the 2 m plane, the 4 m plane gets the thin-lens blur, behind the focus."""
    from PIL import Image
    from PIL.TiffImagePlugin import IFDRational

    h, w = 200, 300
    rng = np.random.default_rng(3)
    img = Image.fromarray((rng.random((h, w, 3)) * 255).astype(np.uint8))
    ex = Image.Exif()
    sub = ex.get_ifd(0x8769)
    sub[0x829D] = IFDRational(28, 10)  # the photo's own f/2.8
    sub[0x920A] = IFDRational(50, 1)  # 50 mm
    sub[0xA405] = 50  # 35 mm equivalent 50 mm: a 36 mm wide sensor
    photo = tmp_path / "p.jpg"
    img.save(photo, exif=ex.tobytes(), quality=95)
    depth_m = np.where(np.arange(w)[None, :] < w // 2, 2.0, 4.0).astype(np.float32).repeat(h, axis=0)
    np.save(tmp_path / "z.npy", depth_m)

    cocs = {}
    for n in (2.0, 4.0):
        inter = tmp_path / f"i{n:g}"
        res = _cli(["refocus", str(photo), "-o", str(tmp_path / f"o{n:g}.png"), "--depth", str(tmp_path / "z.npy"),
                    "--depth-kind", "depth", "--focus", "60,100", "--f-number", f"{n:g}", "--no-deblur",
                    "--save-intermediate", str(inter)])
        assert res.exit_code == 0, res.output
        cocs[n] = np.load(inter / "coc_px.npy")
    # Thin lens: blur circle 0.3205 mm on the sensor at f/2 -> radius 0.3205 / 2 / 36 * 300 px.
    radius_px = 0.5 * (50.0**2 / (2.0 * (2000.0 - 50.0))) * (2000.0 / 4000.0) / 36.0 * w
    far = cocs[2.0][:, int(0.6 * w) :]
    near = cocs[2.0][:, : int(0.4 * w)]
    assert float(np.median(far)) == pytest.approx(-radius_px, rel=0.03)  # negative: behind the focus
    assert np.abs(near).max() < 0.05
    assert float(np.median(cocs[4.0][:, int(0.6 * w) :])) == pytest.approx(-radius_px / 2, rel=0.03)


@pytest.mark.parametrize("scene", ["any colour", "dark foliage"])
def test_keep_sharp_leaves_no_dotted_outline_where_the_coc_crosses_zero(rng, scene):
    """Issue 12, defect 5: along a depth edge whose CoC passes through 0 (a nearer
    side at +12 px, a farther one at -12 px, one column between them at 0), the
    keep-sharp step put the input's own pixels back on that column, a sharp dotted
    line through the blur. The render (covered by the blurred nearer side) stays.

    "dark foliage", found 2026-12-07 on bokehme-3 (focus value 0.5, K = 80,
    --no-deblur): the step compared render and input in linear light (0.05), which
    in the shadows is up to 0.25 as displayed, so dark sharp pixels were still put
    back: black dots in the blur (22,12,0 against the render's 53,47,37). Compared
    as displayed, the blend moves no pixel by more than KEEP_AGREE_SRGB."""
    from refocus.io.color import linear_to_srgb, srgb_to_linear
    from refocus.pipeline.core import KEEP_AGREE_SRGB, keep_sharp_input
    from refocus.render import RenderConfig, render_linear

    h, w = 64, 96
    # Dark foliage: sRGB values 0 .. 0.3, under 0.075 in linear light.
    top = 1.0 if scene == "any colour" else 0.3
    img = srgb_to_linear((top * rng.random((h, w, 3))).astype(np.float32))
    coc = np.full((h, w), -12.0, np.float32)
    coc[:, :47] = 12.0
    coc[:, 47] = 0.0
    blur = np.zeros((h, w), np.float32)
    rendered = render_linear(img, coc, RenderConfig(highlight_gain=0.0))
    for jit in (True, False):
        import refocus.render.backends.numba as jitmod

        saved = jitmod.kernels
        if not jit:
            jitmod.kernels = lambda: None
        try:
            out = keep_sharp_input(rendered, img, coc, blur, 0.5)
        finally:
            jitmod.kernels = saved
        # Where input and render happen to agree within 0.02 as displayed a partial
        # blend remains (harmless: at most 0.01 of change); the sharp noise itself
        # (up to ~0.8 from the render) never comes back.
        moved = np.abs(linear_to_srgb(out) - linear_to_srgb(rendered)).max()
        assert moved <= KEEP_AGREE_SRGB + 1e-5, (jit, moved)
        # In focus and agreeing with the render as displayed, the input is still put back.
        flat = keep_sharp_input(srgb_to_linear(linear_to_srgb(img) + 0.004), img, np.zeros((h, w), np.float32), blur, 0.5)
        np.testing.assert_allclose(flat, img, atol=1e-6)


def test_deblurnet_blur_map_is_pooled_per_depth_over_texture():
    """Issue 12, defect 3: DeblurNet's defocus map reads 3-4 px of blur in flat,
    textureless regions where the true CoC is ~0.2 px, and the pipeline trusted it.
    Pooled per disparity over textured pixels, the flat half reads what the textured
    half of the same depth reads; with the edge-based estimate as prior, never more."""
    from refocus.pipeline.sharpness import pool_blur_by_disparity

    rng = np.random.default_rng(3)
    h, w = 96, 128
    img = np.full((h, w, 3), 0.5, np.float32)
    img[:, : w // 2] = rng.random((h, w // 2, 1)).astype(np.float32)  # textured left half
    disp = np.zeros((h, w), np.float32)
    disp[h // 2 :] = 1.0  # two depths, each half textured and half flat
    raw = np.where(np.arange(w)[None, :] < w // 2, 0.2, 4.0).astype(np.float32) * np.ones((h, 1), np.float32)
    pooled = pool_blur_by_disparity(raw, disp, img)
    assert np.abs(pooled - 0.2).max() < 1e-6
    prior = np.full((h, w), 0.1, np.float32)
    prior[: h // 2] = np.nan  # no edge reading at the far depth
    both = pool_blur_by_disparity(raw, disp, img, prior_px=prior)
    assert np.allclose(both[h // 2 :], 0.1) and np.allclose(both[: h // 2], 0.2)


def test_all_in_focus_used_only_where_the_new_focus_needs_sharpening():
    """Issue 12, defect 4: where the input is at most ~1 px blurrier than asked, the
    input is kept with only the blur it lacks (sign(c) sqrt(c^2 - b^2)); DeblurNet's
    output takes over where more than ~2 px must be removed."""
    from refocus.pipeline.core import PreparedPhoto

    rng = np.random.default_rng(4)
    h, w = 8, 30
    img = rng.random((h, w, 3)).astype(np.float32)
    aif = rng.random((h, w, 3)).astype(np.float32)
    blur = np.zeros((h, w), np.float32)
    blur[:, 10:20] = 2.0  # 2 px blurred, asked for 1 px: nothing worth sharpening
    blur[:, 20:] = 6.0  # 6 px blurred, asked for 1 px: sharpen
    photo = PreparedPhoto(image=img, disparity=np.zeros((h, w), np.float32), input_blur_px=blur, all_in_focus=aif)
    coc = np.full((h, w), 1.0, np.float32)
    coc[:, :10] = 4.0
    base, coc_eff = photo.pipeline._sharpened_base(photo, coc)
    np.testing.assert_allclose(base[:, :20], photo.linear[:, :20], atol=1e-6)
    np.testing.assert_allclose(coc_eff[:, :10], 4.0, atol=1e-6)
    np.testing.assert_allclose(coc_eff[:, 10:20], 0.0, atol=1e-6)  # 1 < 2: no blur to add
    np.testing.assert_allclose(base[:, 20:], photo.aif_linear[:, 20:], atol=1e-6)
    np.testing.assert_allclose(coc_eff[:, 20:], 1.0, atol=1e-6)


def test_blur_within_the_estimates_precision_is_not_subtracted():
    """Issue 12 (real captures): the input-blur estimates are good to about +-1 px
    and read 0.8-1.4 px on sharp real photos; subtracting that left sub-pixel
    blurs undone (lytro1g-0002, R = 4, near -> far). Readings up to 1 px count as
    no blur, from 2 px fully."""
    from refocus.pipeline.core import subtractable_blur

    b = np.array([np.nan, 0.5, 1.0, 1.5, 2.0, 5.0], np.float32)
    np.testing.assert_allclose(subtractable_blur(b), [0.0, 0.0, 0.0, 0.75, 2.0, 5.0], atol=1e-6)


def test_one_deblur_decision_for_every_caller():
    """Issue 17: "does it need deblurring? -> DeblurNet -> render" was written out in
    refocus(), the UI, focus pulls and the benchmark; the Refocuser owns it, with
    the deblurrer a component that can be swapped."""
    from refocus.pipeline.core import PreparedPhoto
    from refocus.pipeline.refocuser import Refocuser

    h, w = 8, 8
    img = np.full((h, w, 3), 0.5, np.float32)
    calls = []

    def deblurrer(image, device="cpu"):
        calls.append(device)
        return image.copy(), np.full(image.shape[:2], 6.0, np.float32)

    pipeline = Refocuser(deblurrer=deblurrer)
    blurred = PreparedPhoto(image=img, disparity=np.zeros((h, w), np.float32), input_blur_px=np.full((h, w), 6.0, np.float32),
                            refocuser=pipeline)
    sharp_coc = [np.zeros((h, w), np.float32)]
    assert not blurred.use_all_in_focus(RefocusConfig(deblur="never"), sharp_coc)
    assert not blurred.use_all_in_focus(RefocusConfig(), sharp_coc, run=False) and not calls  # the UI never runs it
    assert blurred.use_all_in_focus(RefocusConfig(), sharp_coc) and calls == ["cpu"]
    assert blurred.use_all_in_focus(RefocusConfig(), sharp_coc, run=False)  # now it exists
    r = pipeline.render_focus(blurred, RefocusConfig(focus_value=0.0, strength=1.0))
    assert r.deblurred and calls == ["cpu"]  # once per photo
    sharp = PreparedPhoto(image=img, disparity=np.zeros((h, w), np.float32), input_blur_px=np.zeros((h, w), np.float32),
                          refocuser=pipeline)
    assert not sharp.use_all_in_focus(RefocusConfig(), [np.full((h, w), 5.0, np.float32)])
    assert any("deblurring skipped" in n for n in sharp.notes)


def test_refocuser_components_are_swappable(tmp_path):
    """A renderer of sRGB images that cannot add blur to a blurred input (as the
    generative BokehNet) is always given the all-in-focus image and the whole CoC,
    without the keep-sharp blend; a depth source and a blur estimate are plain
    callables too."""
    from refocus.pipeline.refocuser import Refocuser

    h, w = 12, 16
    img = np.random.default_rng(0).random((h, w, 3)).astype(np.float32)
    seen = {}

    class Renderer:
        linear_light = False
        adds_blur = False

        def check(self, cfg):
            seen["checked"] = True

        def __call__(self, image, coc_px, cfg):
            seen["base"], seen["coc"] = image, coc_px
            return 1.0 - image

    def depth(image, path, cfg, notes):
        notes.append("ramp depth")
        return np.tile(np.linspace(0, 1, image.shape[1], dtype=np.float32), (image.shape[0], 1)), "ramp", None

    aif = np.full_like(img, 0.25)
    pipeline = Refocuser(depth=depth, blur_estimate=lambda image, d: np.zeros(d.shape, np.float32),
                         deblurrer=lambda image, device="cpu": (aif, None), renderer=Renderer(), keep_sharp=None)
    res = pipeline.refocus(img, RefocusConfig(focus_value=0.5, strength=4.0))
    assert seen["checked"] and res.deblurred and res.depth_source == "ramp" and "ramp depth" in res.notes
    np.testing.assert_array_equal(seen["base"], aif)  # sRGB all-in-focus, not the input
    np.testing.assert_allclose(seen["coc"], 4.0 * (res.disparity - 0.5), atol=1e-6)  # the whole CoC, no residual
    np.testing.assert_allclose(res.image, 0.75, atol=1e-6)  # no keep-sharp blend back to the input
    never = pipeline.refocus(img, RefocusConfig(focus_value=0.5, strength=4.0, deblur="never"))
    assert not never.deblurred
    np.testing.assert_array_equal(seen["base"], img)


def test_focus_range_keeps_a_band_sharp(tmp_path, capsys):
    """Issue 14, item 5: `--focus-range A:B` keeps a band of disparity sharp, the CoC
    growing continuously from the band's ends outside it."""
    from refocus.cli import main
    from refocus.render import coc_map

    d = np.linspace(0, 1, 11, dtype=np.float32)
    c = coc_map(d, (0.7, 0.4), 10.0)
    np.testing.assert_allclose(c[4:8], 0.0, atol=1e-6)  # 0.4 .. 0.7 sharp
    np.testing.assert_allclose(c[8:], 10.0 * (d[8:] - 0.7), atol=1e-5)
    np.testing.assert_allclose(c[:4], 10.0 * (d[:4] - 0.4), atol=1e-5)
    with pytest.raises(RefocusError, match="one focus setting"):
        RefocusConfig.build(focus_range=(0.2, 0.5), focus_value=0.3)

    img, _ = _scene()
    disp = np.tile(np.linspace(0, 1, img.shape[1], dtype=np.float32), (img.shape[0], 1))  # a ramp: a band exists
    np.save(tmp_path / "d.npy", disp)
    write_image(tmp_path / "p.png", img)
    r = refocus(str(tmp_path / "p.png"), depth_path=str(tmp_path / "d.npy"), focus_range=(0.3, 0.6), strength=8)
    inside = (r.disparity >= 0.3) & (r.disparity <= 0.6)
    assert inside.any() and np.abs(r.coc_px[inside]).max() == 0.0 and np.abs(r.coc_px[~inside]).max() > 0
    with pytest.raises(SystemExit) as exc:
        main(["refocus", str(tmp_path / "p.png"), "--depth", str(tmp_path / "d.npy"), "--focus-range", "0.3:0.6", "-k", "8",
              "-o", str(tmp_path / "o.png")])
    assert exc.value.code == 0, capsys.readouterr().err
    assert (tmp_path / "o.png").is_file()


def test_srgb_encode_threads_are_the_callers():
    """Issue 17: io.color kept a thread pool of its own, started on first use; the
    caller now passes the threads (the renderer's), and the halves are bit-identical."""
    import threading

    from refocus.io.color import _SPLIT_SIZE, linear_to_srgb
    from refocus.render.threads import RenderThreads

    x = np.random.default_rng(1).random((_SPLIT_SIZE // 3 + 64, 3, 3)).astype(np.float32) * 1.2 - 0.1
    one = linear_to_srgb(x)
    assert not any(t.name.startswith("refocus-srgb") for t in threading.enumerate())
    threads = RenderThreads()
    two = linear_to_srgb(x, run_ranges=threads.run_ranges)
    threads.shutdown()
    np.testing.assert_array_equal(one, two)


def test_a_subject_blurred_past_the_edge_readings_is_deblurred_when_focused_on():
    """Regression (hci-antinous, refocus far -> near: the bust stayed as blurred as it
    came): a region blurred so much that no edge can be read has an unknown input
    blur (NaN); focusing on it must still run the deblurrer."""
    from scipy.signal import fftconvolve

    from refocus.aperture import ApertureConfig, kernel
    from refocus.pipeline.photo import PreparedPhoto
    from refocus.pipeline.refocuser import Refocuser

    sharp, disp = _scene(128, 192, seed=3)
    lin = srgb_to_linear(sharp)
    k = kernel(ApertureConfig(), 14.0)
    blurred = linear_to_srgb(np.stack([fftconvolve(lin[..., c], k, mode="same") for c in range(3)], -1))
    photo_img = sharp.copy()
    photo_img[:, :96] = np.clip(blurred[:, :96], 0, 1)  # far half blurred by a 14 px disc
    true_blur = np.where(disp > 0.5, 0.0, 14.0).astype(np.float32)

    calls = []

    def oracle_deblurrer(image, device="cpu"):
        calls.append(image.shape)
        return sharp, true_blur

    pipeline = Refocuser(deblurrer=oracle_deblurrer)
    b = pipeline.blur_estimate(photo_img, disp)
    assert np.isnan(b[:, :90]).all()  # the premise: no readable edge in the blurred half
    photo = PreparedPhoto(image=photo_img, disparity=disp, input_blur_px=b, refocuser=pipeline)
    r = pipeline.render_focus(photo, RefocusConfig(highlight_gain=0), focus_disparity=0.0, strength=8.0)
    assert r.deblurred and len(calls) == 1
    far = slice(8, 120), slice(8, 84)
    assert np.abs(r.image[far] - sharp[far]).mean() < 0.25 * np.abs(photo_img[far] - sharp[far]).mean()


def test_a_preview_blurs_a_region_of_unknown_input_blur_as_the_export_does():
    """Regression: the preview copy turned an unknown input blur (NaN) into 1e6 px,
    so the renderer subtracted it all and added no blur there, while the full-size
    export blurred it."""
    from refocus.pipeline.photo import PreparedPhoto
    from refocus.pipeline.refocuser import Refocuser

    img, disp = _scene(256, 384, seed=1)
    blur = np.where(disp > 0.5, 0.0, np.nan).astype(np.float32)  # the far half's blur unknown
    pipeline = Refocuser()
    photo = PreparedPhoto(image=img, disparity=disp, input_blur_px=blur, refocuser=pipeline)
    cfg = RefocusConfig(highlight_gain=0, deblur="never")
    small = photo.resized(photo.shape[0] * photo.shape[1] // 4)
    assert np.isnan(small.input_blur_px[:, :80]).all() and (small.input_blur_px[:, 110:] == 0).all()
    full = pipeline.render_focus(photo, cfg, 1.0, 8.0).image
    preview = pipeline.render_focus(small, cfg, 1.0, 8.0 * small.scale).image
    far_full, far_preview = full[16:-16, 16:160].std(), preview[8:-8, 8:80].std()
    assert far_full < 0.5 * img[:, :192].std()
    assert abs(far_preview - far_full) < 0.25 * far_full
