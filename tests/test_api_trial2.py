"""The Python API's second trial: integer and 0..255 float images in and out, a file
path where pixels belong, render_bokeh's numbers, focus point and disparity shape,
settings given both as a config and as keywords, DeblurNet's output checked once.

Each odd input is either accepted as documented or refused with one RefocusError line
naming the argument -- never a numpy error from deep inside, and never a silently
wrong result (a white photo, a stretched depth map, a setting dropped).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import refocus
from refocus.errors import RefocusError
from refocus.io import as_float_rgb, read_image, write_image
from refocus.pipeline import RefocusConfig, Refocuser
from refocus.render import coc_map
from test_api_trial import _scene  # the same two-plane scene as the first API trial


def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


# -- 1. write_image: integer pixels by their type's range ------------------------------------


@pytest.mark.parametrize("dtype, suffix, bits", [(np.uint8, ".png", None), (np.uint16, ".png", 16), (np.uint8, ".tif", None),
                                                 (np.uint16, ".tif", 16)])
def test_write_image_scales_integer_pixels_by_their_range(tmp_path, dtype, suffix, bits):
    # uint8/uint16 pixels were taken as values in [0, 1] and clipped: a photo came out
    # pure black and white.
    full = np.iinfo(dtype).max
    pixels = (np.random.default_rng(0).random((32, 32, 3)) * full).astype(dtype)
    path = write_image(tmp_path / f"a{suffix}", pixels, bit_depth=bits)
    back, _ = read_image(path)
    np.testing.assert_array_equal(np.rint(back * full).astype(dtype), pixels)  # as_float_rgb's rule, on the way out


# -- 2. as_float_rgb: float images in 0..255, file paths ---------------------------------


def test_a_float_image_in_0_255_is_refused_naming_the_fix(tmp_path):
    # A notebook's img.astype(float) was clipped to a white photo without a word.
    img, disp = _scene()
    big = img.astype(np.float64) * 255
    for call in (lambda: as_float_rgb(big), lambda: refocus.render_bokeh(big, disp, strength=4),
                 lambda: refocus.refocus(big, strength=4, focus_value=0.0, deblur="never")):
        with pytest.raises(RefocusError, match=r"image has float values up to 25\d.*divide a 0\.\.255 image by 255") as exc:
            call()
        _one_line(exc)


def test_float_overshoot_is_one_rule_for_arrays_and_float_tiffs(tmp_path):
    # A float TIFF above 1 warned and was clipped while an array was clipped silently, and
    # a TIFF in 0..255 came out white with only that warning: now one rule for both.
    tifffile = pytest.importorskip("tifffile")
    img, _ = _scene()
    with pytest.warns(UserWarning, match=r"image: float values up to 1\.5 clipped to 1"):
        rgb, _ = as_float_rgb(img * 1.5)
    assert rgb.max() == 1.0
    tifffile.imwrite(tmp_path / "f255.tif", img * 255, photometric="rgb")
    with pytest.raises(RefocusError, match=r"f255\.tif has float values up to 25\d.*divide a 0\.\.255 image by 255") as exc:
        read_image(tmp_path / "f255.tif")
    _one_line(exc)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # float round-off just over 1 is not worth a warning
        as_float_rgb(np.nextafter(img, np.float32(2)))


@pytest.mark.parametrize("as_path", [str, Path])
def test_a_file_path_as_the_image_is_refused_with_the_read_image_hint(tmp_path, as_path):
    # "ValueError: could not convert string to float" from inside numpy.
    img, disp = _scene()
    p = as_path(write_image(tmp_path / "p.png", img))
    for call in (lambda: refocus.render_bokeh(p, disp, strength=4), lambda: refocus.deblur(p)):
        with pytest.raises(RefocusError, match=r"image must be an array of pixels, got the \w+ '.*p\.png'.*"
                                               r"refocus\.io\.read_image") as exc:
            call()
        _one_line(exc)


# -- 3. render_bokeh: its numbers are coc_map's, its focus point the pipeline's ---------------


def test_render_bokeh_checks_strength_with_coc_maps_rule():
    # None gave numpy's "ufunc 'isfinite' not supported"; "5" the same.
    img, disp = _scene()
    with pytest.raises(RefocusError, match=r"^strength must be a finite number >= 0, got None$"):
        refocus.render_bokeh(img, disp, strength=None)
    with pytest.raises(RefocusError, match=r"^strength must be a finite number >= 0, got 'big'$"):
        refocus.render_bokeh(img, disp, strength="big")
    np.testing.assert_array_equal(refocus.render_bokeh(img, disp, strength="5", focus_disparity=0.0),
                                  refocus.render_bokeh(img, disp, strength=5, focus_disparity=0.0))


def test_render_bokeh_takes_a_focus_band():
    # (0.3, 0.6) gave "The truth value of an array ... is ambiguous", though coc_map
    # takes focus bands.
    img, _ = _scene()
    disp = np.tile(np.linspace(0, 1, img.shape[1], dtype=np.float32), (img.shape[0], 1))
    out, coc = refocus.render_bokeh(img, disp, strength=6, focus_disparity=(0.6, 0.3), return_coc=True)
    np.testing.assert_array_equal(coc, coc_map(disp, (0.3, 0.6), 6))
    assert out.shape == img.shape and float(np.abs(coc[:, 30:36]).max()) == 0.0
    with pytest.raises(RefocusError, match="focus range must be two"):
        refocus.render_bokeh(img, disp, strength=6, focus_disparity=(0.1, 0.2, 0.3))


@pytest.mark.parametrize("xy", [(10,), (1, 2, 3), ("a", 3), (float("nan"), 3), 5])
def test_render_bokeh_checks_focus_xy_as_the_pipeline_does(xy):
    # (10,) gave "focus_at_point() missing 1 required positional argument: 'y'".
    img, disp = _scene()
    with pytest.raises(RefocusError, match=r"focus_xy|--focus X,Y") as exc:
        refocus.render_bokeh(img, disp, strength=4, focus_xy=xy)
    _one_line(exc)
    with pytest.raises(RefocusError, match=r"focus point \(500, 3\) is outside the 64x48 image"):
        refocus.render_bokeh(img, disp, strength=4, focus_xy=(500, 3))


# -- 4. render_bokeh: the depth rule's aspect check -----------------------------------------


def test_render_bokeh_refuses_a_disparity_of_another_aspect_ratio():
    # A 128x40 map was stretched onto a 128x128 photo with only a resampling warning;
    # every depth map given to a command is refused beyond 3 % (get_depth).
    rng = np.random.default_rng(1)
    img = rng.random((128, 128, 3)).astype(np.float32)
    with pytest.raises(RefocusError, match=r"^disparity is 128x40 but the photo is 128x128: different aspect ratio$"):
        refocus.render_bokeh(img, rng.random((40, 128)), strength=4)
    with pytest.raises(RefocusError, match=r"rotated by 90 degrees"):
        refocus.render_bokeh(img[:64], rng.random((128, 64)), strength=4)
    with pytest.warns(UserWarning, match="resampling the depth"):  # the same aspect ratio at another size
        out = refocus.render_bokeh(img, rng.random((64, 64)), strength=4)
    assert out.shape == img.shape


# -- 5. a config and keyword settings together ----------------------------------------------


def test_prepare_and_refocus_take_keyword_settings_over_a_config(tmp_path):
    # prepare(img, RefocusConfig(), depth_path=...) dropped depth_path without a word
    # (and Refocuser.prepare refused the keyword).
    img, disp = _scene()
    np.save(tmp_path / "d.npy", disp)
    from refocus.pipeline import prepare

    for photo in (prepare(img, RefocusConfig(), depth_path=tmp_path / "d.npy"),
                  Refocuser().prepare(img, RefocusConfig(strength=3), depth_path=tmp_path / "d.npy"),
                  Refocuser().prepare(img, {"strength": 3}, depth_path=tmp_path / "d.npy")):
        assert "d.npy" in photo.depth_source
        np.testing.assert_array_equal(photo.disparity, disp)
    res = Refocuser().refocus(img, RefocusConfig(strength=3, deblur="never"), depth_path=tmp_path / "d.npy", focus_value=0.0)
    assert "d.npy" in res.depth_source and res.strength == 3.0
    with pytest.raises(RefocusError, match="focus"):  # two focus settings, one each way
        prepare(img, RefocusConfig(focus_value=0.5), depth_path=tmp_path / "d.npy", focus_xy=(3, 3))


# -- 6. DeblurNet's output: the one check ----------------------------------------------------


@pytest.mark.parametrize("bad, match", [
    (lambda img: (img[:-1], None), r"the deblurrer returned shape \(47, 64, 3\) for an image of shape \(48, 64, 3\)"),
    (lambda img: (np.full_like(img, np.nan), None), "the deblurrer returned an image with NaN"),
    (lambda img: (img, np.zeros((3, 3))), "the deblurrer returned a defocus map of shape"),
])
def test_run_deblur_checks_deblurnets_output_with_checked_deblurred(monkeypatch, bad, match):
    # run_deblur had its own shape check and clip: NaN passed through, a wrong defocus map
    # reached the blur pooling.
    from refocus.pipeline.stages import run_deblur

    img, _ = _scene()
    monkeypatch.setattr(sys.modules["refocus.deblur"], "deblur", lambda image, device="cpu", progress=None: bad(image))
    with pytest.raises(RefocusError, match=match):
        run_deblur(img)


def test_run_deblur_scales_and_clips_as_checked_deblurred(monkeypatch):
    from refocus.pipeline.stages import run_deblur

    img, _ = _scene()
    monkeypatch.setattr(sys.modules["refocus.deblur"], "deblur",
                        lambda image, device="cpu", progress=None: ((image * 255).astype(np.uint8), None))
    aif, defocus = run_deblur(img)
    assert aif.dtype == np.float32 and defocus is None
    np.testing.assert_allclose(aif, img, atol=1 / 255)


# -- every public entry: a uint8 and a float64 photo agree with float32 ------------------------


@pytest.mark.filterwarnings("ignore:depth map is 32x24")  # a half-size map, so that the photo guides it
def test_public_entries_agree_for_uint8_float64_and_float32_photos(tmp_path):
    rng = np.random.default_rng(3)
    u8 = (np.kron(rng.random((12, 16, 3)), np.ones((4, 4, 1))) * 255).astype(np.uint8)
    f32 = u8.astype(np.float32) / np.float32(255)
    f64 = u8.astype(np.float64) / 255
    disp = np.zeros((24, 32), np.float32)  # half size: the photo guides its upsampling
    disp[:, 16:] = 1.0
    np.save(tmp_path / "d.npy", disp)
    cfg = RefocusConfig(depth_path=str(tmp_path / "d.npy"), strength=4, focus_value=0.0, deblur="never")
    from refocus.depth import get_depth

    def entries(photo):
        prepared = Refocuser().prepare(photo, cfg)
        return (
            refocus.refocus(photo, cfg).image,
            Refocuser().render(prepared, cfg)[0],
            get_depth(None, depth_path=tmp_path / "d.npy", image=photo).disparity(),
            refocus.render_bokeh(photo, disp, strength=4, focus_disparity=0.0),
        )

    want = entries(f32)
    for photo in (u8, f64):
        for got, ref in zip(entries(photo), want):
            np.testing.assert_allclose(got, ref, atol=1e-6)


def test_render_bokeh_refuses_two_focal_planes():
    # focus_xy was dropped without a word when focus_disparity was also given.
    import pytest

    from refocus import RefocusError, render_bokeh

    img = np.full((32, 32, 3), 0.5, np.float32)
    disp = np.tile(np.linspace(0, 1, 32, dtype=np.float32), (32, 1))
    with pytest.raises(RefocusError, match="not both"):
        render_bokeh(img, disp, strength=4, focus_disparity=0.2, focus_xy=(5, 5))


def test_as_float_rgb_cleans_non_finite_pixels_in_colour_and_alpha():
    """NaN -> 0, -inf -> 0, +inf -> 1, in colour and alpha (2026-12-07: done with
    fmax/fmin instead of nan_to_num and a clip, 0.12 -> 0.05 s at 12 MP)."""
    import warnings

    rgb = np.array([[[np.nan, np.inf, -np.inf], [0.25, 0.5, 0.75]]], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the out-of-range warning is tested elsewhere
        out, alpha = as_float_rgb(rgb)
    assert alpha is None and out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, [[[0.0, 1.0, 0.0], [0.25, 0.5, 0.75]]])
    rgba = np.array([[[0.2, 0.4, 0.6, np.nan], [0.2, 0.4, 0.6, np.inf], [0.2, 0.4, 0.6, -np.inf]]], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, alpha = as_float_rgb(rgba)
    np.testing.assert_array_equal(alpha, [[0.0, 1.0, 0.0]])
