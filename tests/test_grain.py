"""The photo's grain restored where the new blur averaged it away (refocus.render.grain)."""

import numpy as np
import pytest
from PIL import Image

from refocus.render.grain import add_grain, estimate_noise, kept_variance


def _hh_sigma(a: np.ndarray) -> float:
    """The finest diagonal detail's standard deviation (white noise: its sigma)."""
    d = (a[0::2, 0::2] - a[0::2, 1::2] - a[1::2, 0::2] + a[1::2, 1::2]) * 0.5
    return float(np.std(d))


def _noisy(shape=(256, 256), sigma=0.01, seed=0, base=None):
    """8-bit grey-ish ramps with luminance noise (the three channels' noise the same)."""
    rng = np.random.default_rng(seed)
    h, w = shape
    if base is None:
        ramp = np.linspace(0.2, 0.8, w, dtype=np.float32)[None, :, None]
        base = np.broadcast_to(ramp * np.array([1.0, 0.9, 0.8], np.float32), (h, w, 3))
    img = base + rng.standard_normal((h, w, 1)).astype(np.float32) * sigma
    return np.round(np.clip(img, 0, 1) * 255).astype(np.float32) / 255


@pytest.mark.parametrize("sigma", [0.004, 0.01, 0.02])
def test_noise_is_measured_within_ten_percent(sigma):
    model = estimate_noise(_noisy(sigma=sigma))
    assert model.luma.size > 1  # levels of brightness
    quantised = np.hypot(sigma, 1 / 255 / np.sqrt(12))  # 8 bits add their own
    np.testing.assert_allclose(model.sigma(), quantised, rtol=0.1)
    # Luminance noise: the channels move together.
    cov = model.factor[0] @ model.factor[0].T
    corr = cov[0, 1] / np.sqrt(cov[0, 0] * cov[1, 1])
    assert corr > 0.9


def test_texture_and_clipped_areas_do_not_count_as_noise():
    """Half the photo a strong fine texture, a quarter clipped white: the noise read is
    the flat part's."""
    from skimage import data

    base = np.full((256, 256, 3), 0.4, np.float32)
    base[:, :128] = data.camera()[::2, 64:192, None].astype(np.float32) / 255  # grass, a coat, a tripod
    img = _noisy(sigma=0.006, base=base, seed=2)
    img[:64, 128:] = 1.0  # clipped: no noise there
    # The camera photo's dark coat has some grain of its own: 0.0077 read in the
    # darkest level (counting its texture as noise read 0.02 to 0.1).
    np.testing.assert_allclose(estimate_noise(img).sigma(), np.hypot(0.006, 1 / 255 / np.sqrt(12)), rtol=0.3)


def test_a_clean_or_tiny_photo_has_no_noise_to_add():
    flat = np.full((64, 64, 3), 0.5, np.float32)
    assert not estimate_noise(flat).factor.any()
    assert not estimate_noise(np.full((3, 3, 3), 0.5, np.float32)).factor.any()
    out = add_grain(flat, np.full((64, 64), 20.0, np.float32), estimate_noise(flat))
    np.testing.assert_array_equal(out, flat)


def test_grain_fills_blurred_areas_and_leaves_sharp_ones():
    sigma = 0.01
    model = estimate_noise(_noisy(sigma=sigma))
    smooth = np.full((200, 200, 3), 0.5, np.float32)
    coc = np.zeros((200, 200), np.float32)
    coc[:, 100:] = -20.0
    out = add_grain(smooth, coc, model, seed=3)
    np.testing.assert_array_equal(out[:, :100], smooth[:, :100])
    assert _hh_sigma(out[:, 100:, 1]) == pytest.approx(sigma * np.sqrt(1 - kept_variance(20.0)), rel=0.1)
    np.testing.assert_array_equal(add_grain(smooth, coc, model, seed=3), out)  # the same seed, the same grain
    assert not np.array_equal(add_grain(smooth, coc, model, seed=4), out)
    assert kept_variance(0.0) == 1.0 and kept_variance(-10.0) == pytest.approx(1 / (1 + np.pi * 100))


def _two_planes(tmp_path, sigma=0.015):
    """A noisy photo (left half near, right half far) and its disparity beside it."""
    rng = np.random.default_rng(5)
    h, w = 160, 240
    base = np.empty((h, w, 3), np.float32)
    base[:] = (0.35 + 0.3 * rng.random((h // 16, w // 16, 3))).repeat(16, 0).repeat(16, 1)
    img = _noisy((h, w), sigma=sigma, base=base, seed=6)
    photo = tmp_path / "p.png"
    Image.fromarray((img * 255 + 0.5).astype(np.uint8)).save(photo)
    disp = np.zeros((h, w), np.float32)
    disp[:, : w // 2] = 1.0
    np.save(tmp_path / "p-disparity.npy", disp)
    return photo, img


def test_refocus_grain_keeps_the_photos_noise_in_the_blurred_half(tmp_path):
    from refocus.pipeline import refocus

    photo, img = _two_planes(tmp_path)
    kw = dict(focus_value=1.0, strength=12.0, deblur="never")
    plain = refocus(photo, **kw).image
    grainy = refocus(photo, **kw, grain=True).image
    far = (slice(8, -8), slice(140, -8))  # blurred by 12 px, away from the step
    photo_sigma = _hh_sigma(img[far][..., 1])
    assert _hh_sigma(plain[far][..., 1]) < 0.3 * photo_sigma
    assert _hh_sigma(grainy[far][..., 1]) == pytest.approx(photo_sigma, rel=0.2)
    near = (slice(None), slice(0, 100))
    np.testing.assert_array_equal(grainy[near], plain[near])
    np.testing.assert_array_equal(refocus(photo, **kw, grain=True).image, grainy)


def test_grain_option_on_the_command_line(tmp_path, capsys):
    from refocus.cli import main
    from refocus.io import read_image

    photo, img = _two_planes(tmp_path)
    outs = {}
    for cmd, extra in (("refocus", ["--focus-value", "1", "--no-deblur"]),
                       ("render", ["--focus-value", "1", "--depth", str(tmp_path / "p-disparity.npy")])):
        for flag in ([], ["--grain"]):
            out = tmp_path / f"{cmd}{len(flag)}.png"
            with pytest.raises(SystemExit) as exc:
                main([cmd, str(photo), "-o", str(out), "-k", "12", *extra, *flag])
            assert exc.value.code in (0, None), capsys.readouterr().err
            outs[cmd, bool(flag)] = read_image(out)[0][8:-8, 140:-8, 1]
        assert _hh_sigma(outs[cmd, True]) > 2 * _hh_sigma(outs[cmd, False]), cmd


def test_info_reports_the_grain(tmp_path, capsys):
    """`refocus info` says how grainy the photo is, so a user knows what --grain keeps."""
    import re

    from refocus.cli import main

    for name, img, expect in (("noisy.png", _noisy(sigma=0.01), 2.55), ("flat.png", np.full((64, 64, 3), 0.5, np.float32), None)):
        Image.fromarray((img * 255 + 0.5).astype(np.uint8)).save(tmp_path / name)
        with pytest.raises(SystemExit) as exc:
            main(["info", str(tmp_path / name)])
        assert (exc.value.code or 0) == 0
        out = " ".join(capsys.readouterr().out.split())
        if expect is None:
            assert "grain none measurable" in out, out
        else:
            lo, hi = (float(v) for v in re.search(r"grain ([\d.]+)–([\d.]+)/255", out).groups())
            assert 0.85 * expect < lo <= hi < 1.15 * expect, out


def test_each_frame_of_a_focus_pull_has_its_own_grain(tmp_path):
    """A camera's noise changes from frame to frame; grain fixed to the pixels would
    look like dirt on the lens as the focus moves."""
    from refocus.pipeline import RefocusConfig, Refocuser
    from refocus.pipeline.animate import focus_pull

    photo_path, _ = _two_planes(tmp_path)
    cfg = RefocusConfig(strength=12.0, deblur="never", grain=True)
    photo = Refocuser().prepare(photo_path, cfg)
    frames, fds = focus_pull(photo, cfg, {"focus_value": 1.0}, {"focus_value": 0.9}, frames=3, ease=False)
    far = (slice(8, -8), slice(140, -8), 1)
    assert len(set(np.round(fds, 6))) == 3
    # Independent grain: the finest detail of a frame-to-frame difference is about
    # sqrt(2) times a frame's (the same grain would cancel).
    grain = _hh_sigma(frames[0][far])
    assert _hh_sigma(frames[1][far] - frames[0][far]) > 1.2 * grain
