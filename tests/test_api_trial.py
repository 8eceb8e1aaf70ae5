"""The Python API as a notebook uses it: the README's calls, odd inputs, own components.

Each odd input is either accepted as documented or refused with one RefocusError line
naming the argument (or the component) -- never a numpy/numba error from deep inside,
and never a silently wrong result.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import refocus
from refocus.errors import RefocusError
from refocus.pipeline import RefocusConfig, Refocuser
from refocus.render import RenderConfig, coc_map, render_linear

REPO = Path(__file__).resolve().parents[1]


def _scene(h=48, w=64, seed=0):
    """A textured photo, left half far (disparity 0), right half near (1)."""
    rng = np.random.default_rng(seed)
    img = np.kron(rng.random((h // 4, w // 4, 3)), np.ones((4, 4, 1))).astype(np.float32)
    disp = np.zeros((h, w), np.float32)
    disp[:, w // 2 :] = 1.0
    return img, disp


def _own_depth(img, path, cfg, notes):
    """A depth component: the scene's halves."""
    return _scene(*img.shape[:2])[1], "test", None


def _cfg(**kw):
    return RefocusConfig(**{"strength": 4.0, "focus_value": 0.0, "deblur": "never", **kw})


# -- the package's names -------------------------------------------------------------


def test_refocus_deblur_stays_callable_once_the_package_is_imported():
    # The pipeline imports refocus.deblur, which bound the package to the name: the
    # README's refocus.deblur(photo) then raised "'module' object is not callable".
    import refocus.deblur  # noqa: F401

    assert callable(refocus.deblur)
    import inspect

    assert "image" in inspect.signature(refocus.deblur).parameters  # what a notebook shows
    aif, defocus_px = refocus.deblur(_scene(16, 16)[0])
    assert aif.shape == (16, 16, 3) and defocus_px.shape == (16, 16)
    from refocus.deblur import deblur

    assert deblur is refocus.deblur.deblur


def test_bare_import_reaches_the_stage_packages():
    # `import refocus; refocus.io.write_image(...)` raised AttributeError in a fresh
    # interpreter unless something had imported refocus.io first.
    code = (
        "import refocus\n"
        "assert callable(refocus.io.write_image) and callable(refocus.io.read_image)\n"
        "assert callable(refocus.depth.get_depth) and refocus.pipeline.Refocuser\n"
        "assert callable(refocus.deblur) and callable(refocus.deblur)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(refocus.__file__).resolve().parents[1])}
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]


def test_readme_python_block_runs(tmp_path, monkeypatch):
    """The README's "From Python" block, as written, on a small photo with its disparity."""
    from refocus.io import write_image

    text = (REPO / "README.md").read_text()
    block = re.search(r"From Python:\s*```python\n(.*?)```", text, re.S).group(1)
    img, disp = _scene(48, 64)
    write_image(tmp_path / "photo.jpg", img)
    np.save(tmp_path / "photo-disparity.npy", disp)
    monkeypatch.chdir(tmp_path)
    ns = {"image": img, "disparity": disp, "photo": img, "my_net": lambda image: image}
    exec(compile(block.replace("(490, 413)", "(48, 20)"), "README.md", "exec"), ns)
    assert ns["out"].shape == img.shape and ns["out"].dtype == np.float32
    assert ns["aif"].shape == img.shape and ns["defocus_px"].shape == img.shape[:2]
    assert ns["result"].image.shape == img.shape and (tmp_path / "out.jpg").is_file()
    assert ns["r"].image.shape == img.shape


# -- settings --------------------------------------------------------------------------


def test_refocus_config_errors_are_one_line_refocus_errors():
    # RefocusConfig(...) raised pydantic's multi-line ValidationError; only .build() was one line.
    with pytest.raises(RefocusError, match=r"strength.*greater than or equal to 0"):
        RefocusConfig(strength=-1)
    with pytest.raises(RefocusError, match="focus-value"):
        RefocusConfig(focus_value=float("nan"))


def test_refocus_config_takes_pathlib_paths_and_aperture_names(tmp_path):
    # depth_path=Path(...) was refused ("Input should be a valid string"), and
    # aperture="polygon", which render_bokeh takes, was refused by the pipeline.
    cfg = RefocusConfig(depth_path=tmp_path / "d.npy", focus_mask=tmp_path / "m.png", aperture="polygon")
    assert cfg.depth_path == str(tmp_path / "d.npy") and cfg.focus_mask == str(tmp_path / "m.png")
    assert cfg.aperture.shape == "polygon"
    with pytest.raises(RefocusError, match="aperture"):
        RefocusConfig(aperture="no-such-shape.png")


def test_refocus_with_pathlib_depth_path(tmp_path):
    img, disp = _scene()
    np.save(tmp_path / "d.npy", disp)
    res = refocus.refocus(img, depth_path=tmp_path / "d.npy", strength=4, focus_value=0.0, deblur="never")
    assert res.image.shape == img.shape


# -- the renderer's entry points ------------------------------------------------------------


@pytest.mark.parametrize(
    "focus, strength, match",
    [
        (float("nan"), 4.0, "focus_disparity must be a finite number"),
        (None, 4.0, "focus_disparity must be a finite number"),
        (0.5, None, "strength must be a finite number >= 0"),
        (0.5, "big", "strength must be a finite number >= 0"),
        ((0.1, 0.2, 0.3), 4.0, "focus range must be two"),
    ],
)
def test_coc_map_refuses_what_is_not_a_number(focus, strength, match):
    # A NaN or None focus gave an all-NaN CoC map; a None strength a numpy TypeError;
    # a three-number band an unpacking ValueError.
    with pytest.raises(RefocusError, match=match):
        coc_map(np.zeros((4, 4), np.float32), focus, strength)


def test_render_linear_refuses_nan_pixels():
    # NaN pixels spread over their blur: the whole result came back NaN.
    img, disp = _scene()
    img[5, 5, 0] = np.nan
    coc = coc_map(disp, 0.0, 4.0)
    with pytest.raises(RefocusError, match="image_linear contains NaN"):
        render_linear(img, coc)
    torch = pytest.importorskip("torch")
    with pytest.raises(RefocusError, match="image_linear contains NaN"):
        render_linear(torch.from_numpy(img), torch.from_numpy(coc))


def test_render_linear_refuses_integer_pixels_and_a_dict_config():
    # uint8 pixels were rendered as radiance 0..255 (every pixel a "clipped highlight");
    # a dict config gave AttributeError: 'dict' object has no attribute 'device'.
    img, disp = _scene()
    coc = coc_map(disp, 0.0, 4.0)
    with pytest.raises(RefocusError, match="image_linear must be a float array"):
        render_linear((img * 255).astype(np.uint8), coc)
    with pytest.raises(RefocusError, match="config must be a RenderConfig"):
        render_linear(img, coc, {"quality": "fast"})
    assert render_linear(img.astype(np.float64), coc, RenderConfig(quality="fast")).dtype == np.float32


# -- the depth stage --------------------------------------------------------------------


def test_get_depth_reads_a_uint8_photo_as_srgb(tmp_path):
    # The photo guides the edge alignment; a uint8 one was used as 0..255 floats and
    # aligned the edges differently from the same photo as float.
    from refocus.depth import get_depth

    rng = np.random.default_rng(3)
    img = np.kron(rng.random((16, 16, 3)), np.ones((4, 4, 1))).astype(np.float32)
    img8 = np.round(img * 255).astype(np.uint8)
    small = np.kron(rng.random((8, 8)), np.ones((4, 4))).astype(np.float32)
    np.save(tmp_path / "d.npy", small)
    as_float = get_depth(None, image=img8.astype(np.float32) / 255, depth_path=tmp_path / "d.npy", refine=True).disparity()
    as_uint8 = get_depth(None, image=img8, depth_path=tmp_path / "d.npy", refine=True).disparity()
    np.testing.assert_array_equal(as_uint8, as_float)


def test_get_depth_refuses_bad_image_and_depth_path(tmp_path):
    from refocus.depth import get_depth

    img, disp = _scene()
    np.save(tmp_path / "d.npy", disp)
    with pytest.raises(RefocusError, match="image must be H x W x 3"):
        get_depth(None, image=img.ravel(), depth_path=tmp_path / "d.npy")
    with pytest.raises(RefocusError, match="depth_path must be a file path"):
        get_depth(None, image=img, depth_path=disp)


# -- own components -------------------------------------------------------------------


@pytest.mark.parametrize(
    "deblurrer, match",
    [
        (lambda im, dev: im, "deblurrer must return \\(all_in_focus, defocus_px or None\\)"),
        (lambda im, dev: (np.full_like(im, np.nan), None), "deblurrer returned an image with NaN"),
        (lambda im, dev: (im, np.ones((3, 3), np.float32)), "deblurrer returned a defocus map of shape \\(3, 3\\)"),
        (lambda im, dev: (im[:-1], None), "deblurrer returned shape \\(47, 64, 3\\)"),
    ],
)
def test_own_deblurrer_output_is_checked(deblurrer, match):
    # Before: an unpacking ValueError, a silently NaN photo, a defocus map silently dropped.
    img, _ = _scene()
    pipeline = Refocuser(depth=_own_depth, deblurrer=deblurrer)
    with pytest.raises(RefocusError, match=match):
        pipeline.refocus(img, _cfg(deblur="always"))


def test_own_deblurrer_uint8_output_is_scaled():
    # A uint8 all-in-focus image was clipped to [0, 1]: a white photo.
    img, _ = _scene()
    as_float = Refocuser(depth=_own_depth, deblurrer=lambda im, dev: (im, None)).refocus(img, _cfg(deblur="always"))
    as_uint8 = Refocuser(depth=_own_depth, deblurrer=lambda im, dev: (np.round(im * 255).astype(np.uint8), None)).refocus(
        img, _cfg(deblur="always")
    )
    assert as_uint8.deblurred
    np.testing.assert_allclose(as_uint8.image, as_float.image, atol=3e-3)


@pytest.mark.parametrize(
    "renderer, match",
    [
        (lambda base, coc, cfg: base[:-1], "renderer returned shape \\(47, 64, 3\\)"),
        (lambda base, coc, cfg: None, "renderer returned None"),
    ],
)
def test_own_renderer_output_is_checked(renderer, match):
    # A cropped render came back as the result; None failed in numba's typing.
    img, _ = _scene()
    with pytest.raises(RefocusError, match=match):
        Refocuser(depth=_own_depth, renderer=renderer).refocus(img, _cfg())


@pytest.mark.parametrize(
    "depth, match",
    [
        (lambda im, p, cfg, notes: (np.zeros((3, 3), np.float32), "x", None), "depth component returned a disparity of shape"),
        (lambda im, p, cfg, notes: (np.zeros(im.shape[:2], np.float32), "x"), "depth component must return"),
        (lambda im, p, cfg, notes: (np.full(im.shape[:2], 200.0), "x", None), "normalised to \\[0, 1\\]"),
    ],
)
def test_own_depth_output_is_checked(depth, match):
    # Before: an IndexError in the blur estimate, an unpacking ValueError, and a raw
    # 0..200 map rendered with radii capped at twice the diagonal.
    img, _ = _scene()
    with pytest.raises(RefocusError, match=match):
        Refocuser(depth=depth).refocus(img, _cfg())


def test_own_blur_estimate_output_is_checked():
    img, _ = _scene()
    with pytest.raises(RefocusError, match="blur_estimate component returned shape"):
        Refocuser(depth=_own_depth, blur_estimate=lambda im, d: np.zeros(3)).refocus(img, _cfg())


def test_render_focus_takes_none_or_a_dict_and_checks_its_overrides():
    # cfg None or a dict gave AttributeError: 'NoneType' object has no attribute 'focus_range';
    # a NaN focus_disparity override said only "CoC map contains NaN".
    img, _ = _scene()
    pipeline = Refocuser(depth=_own_depth)
    photo = pipeline.prepare(img)
    a = pipeline.render_focus(photo, None, focus_disparity=0.0, strength=3.0)
    b = pipeline.render_focus(photo, {"deblur": "auto"}, focus_disparity=0.0, strength=3.0)
    np.testing.assert_array_equal(a.image, b.image)
    with pytest.raises(RefocusError, match="focus_disparity must be a finite number"):
        pipeline.render_focus(photo, _cfg(), focus_disparity=float("nan"))
    with pytest.raises(RefocusError, match="cfg must be a RefocusConfig"):
        pipeline.render_focus(photo, "fast")

