"""A user trial of the aperture and focus inputs of `refocus refocus`, `render` and
`animate`: each test is a defect the trial found (it failed before its fix)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from PIL import Image

import refocus.aperture as ap
from refocus.aperture import ApertureConfig, kernel, load_aperture_image
from refocus.cli import main
from refocus.depth.focus import select_focus
from refocus.errors import RefocusError
from refocus.pipeline.options import build_aperture, build_config, parse_focus


def _run(capsys, *argv):
    with pytest.raises(SystemExit) as exc:
        main(list(map(str, argv)))
    return exc.value.code, capsys.readouterr().err


def _custom(img) -> ApertureConfig:
    return ApertureConfig(shape="custom", image=np.asarray(img, np.float32))


# --- custom aperture images ------------------------------------------------------------


@pytest.mark.parametrize("radius", [3.0, 10.0, 17.5])
def test_each_pixel_of_an_aperture_image_covers_its_square_of_the_frame(radius):
    # Bilinear sampling with zeros beyond the outer pixel centres lost half a pixel on
    # every side: a 1 x 1 white image gave a single-pixel kernel (no blur at all),
    # a 3 x 3 one a square of 2/3 of the radius asked for.
    full = kernel(_custom(np.ones((64, 64))), radius)
    for n in (1, 3):
        k = kernel(_custom(np.ones((n, n))), radius)
        np.testing.assert_allclose(k, full, atol=1e-6, err_msg=f"{n}x{n} white image")
    # A small drawing and the same drawing enlarged are the same aperture.
    cross = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], np.float32)
    np.testing.assert_allclose(kernel(_custom(cross), radius), kernel(_custom(np.kron(cross, np.ones((20, 20)))), radius), atol=1e-6)


def test_a_thin_line_in_a_large_aperture_image_is_not_missed():
    # Point samples 12 px apart across a 2000 px image missed a 1 px slit entirely:
    # the kernel fell back to a single pixel (no blur).
    img = np.zeros((2000, 2000), np.float32)
    img[200:1800, 1000] = 1.0
    k = kernel(_custom(img), 10.0)
    rows = np.nonzero(k.sum(axis=1) > 0)[0]
    cols = np.nonzero(k.sum(axis=0) > 1e-3)[0]
    assert rows.max() - rows.min() >= 14, "the slit is 80 % of the frame tall"
    assert cols.max() - cols.min() <= 1


def _grey_target() -> np.ndarray:
    yy, xx = np.mgrid[0:64, 0:64]
    r = np.hypot(xx - 31.5, yy - 31.5)
    return np.where(r < 10, 1.0, np.where(r < 28, 0.5, 0.0)).astype(np.float32)


def test_16_bit_and_float_aperture_images_keep_their_grey_levels(tmp_path):
    # A 16-bit 50 % grey was read as fully open (convert("L") clips), a float TIFF
    # in [0, 1] as almost black (0 or 1/255).
    g = _grey_target()
    Image.fromarray((g * 65535).astype(np.uint16)).save(tmp_path / "k16.png")
    Image.fromarray(g, "F").save(tmp_path / "kf.tif")
    # Cut to the box of the opening (pixels over 1 % of the brightest).
    rows = np.flatnonzero((g > 0.01 * g.max()).any(axis=1))
    cols = np.flatnonzero((g > 0.01 * g.max()).any(axis=0))
    want = g[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    for name in ("k16.png", "kf.tif"):
        np.testing.assert_allclose(load_aperture_image(tmp_path / name), want, atol=1e-3, err_msg=name)


def test_an_aperture_image_is_turned_upright_by_its_exif_orientation(tmp_path):
    img = np.zeros((40, 80), np.uint8)
    img[5:35, 5:20] = 255  # a bar on the left, stored sideways
    img[0, 0] = img[-1, -1] = 255  # marks at two corners: the opening's box is the frame
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to view"
    Image.fromarray(img).save(tmp_path / "k.jpg", exif=exif.tobytes(), quality=95)
    g = load_aperture_image(tmp_path / "k.jpg")
    assert g.shape == (80, 40), "upright, as every viewer shows it"
    assert g[:40].mean() > 4 * g[40:].mean(), "the bar is at the top once upright"


def test_a_shape_drawn_in_black_on_a_transparent_canvas_is_its_opacity(tmp_path):
    rgba = np.zeros((50, 50, 4), np.uint8)
    rgba[10:40, 20:30, 3] = 255  # black, opaque bar; transparent elsewhere
    Image.fromarray(rgba).save(tmp_path / "k.png")
    g = load_aperture_image(tmp_path / "k.png")
    assert g.shape == (30, 10) and g.min() == 1.0 and g.sum() == 300  # cut to the bar
    # Fully opaque black is still black, named as such.
    rgba[..., 3] = 255
    Image.fromarray(rgba).save(tmp_path / "k2.png")
    with pytest.raises(RefocusError, match="k2.png is empty or black"):
        load_aperture_image(tmp_path / "k2.png")


def test_a_large_aperture_image_is_identified_once_not_per_kernel():
    # Every kernel request hashed the whole image again (0.1 s for 4000 x 4000): a
    # cat's-eye render of the 640 x 689 demo took 40 s instead of 2.5 s.
    cfg = _custom(np.ones((2500, 2500), np.float32))
    cfg.key()
    t = time.perf_counter()
    for _ in range(20):
        cfg.key()
    assert time.perf_counter() - t < 0.05
    assert not cfg.image.flags.writeable, "the validated image is private and read-only, so its identity holds"


def test_an_aperture_given_by_path_only_is_read_once(tmp_path, monkeypatch):
    # A config sent to a batch worker carries the path only: the file was decoded
    # again for every kernel.
    Image.fromarray((_grey_target() * 255).astype(np.uint8)).save(tmp_path / "k.png")
    calls = []
    real = ap.load_aperture_image
    monkeypatch.setattr(ap, "load_aperture_image", lambda p: calls.append(p) or real(p))
    cfg = ApertureConfig(shape="custom", image_path=str(tmp_path / "k.png"))
    for r in (2.5, 4.0, 7.25, 11.0):
        kernel(cfg, r)
    assert len(calls) == 1


def test_a_cats_eye_that_clips_away_an_off_centre_shape_keeps_the_shape():
    # The fallback drew a single sharp pixel, so a blurred highlight near that corner
    # showed as a doubled, half-sharp spot between the kernel grid nodes.
    img = np.zeros((128, 128), np.float32)
    yy, xx = np.mgrid[0:128, 0:128]
    img[np.hypot(xx - 100, yy - 30) < 15] = 1.0
    cfg = _custom(img)
    off = ap.cats_eye_offset(1.0, 399, 0, 400, 300)  # the top-right corner
    k = kernel(cfg, 12.0, cats_eye_offset=off)
    assert (k > 0).sum() > 20
    np.testing.assert_allclose(k, kernel(cfg, 12.0), atol=1e-7)


def test_aperture_option_errors_name_the_option_and_the_problem(tmp_path):
    with pytest.raises(RefocusError, match="--aperture .* is a folder"):
        build_aperture(str(tmp_path))
    with pytest.raises(RefocusError, match="--aperture image not found: .*nothere.png"):
        build_aperture(str(tmp_path / "nothere.png"))
    Image.fromarray(np.full((9, 9), 255, np.uint8)).save(tmp_path / "ok.png")
    with pytest.raises(RefocusError, match="--blades"):  # refused with disc and polygon, was taken with an image
        build_aperture(str(tmp_path / "ok.png"), blades=2)
    assert build_aperture(str(tmp_path / "ok.png"), rotation=30.0).rotation_deg == 30.0
    (tmp_path / "k.png").write_text("not an image")
    with pytest.raises(RefocusError, match="cannot read aperture image k.png"):
        build_aperture(str(tmp_path / "k.png"))


# --- focus -------------------------------------------------------------------------------


def test_a_box_of_zero_area_is_named_as_such_not_as_outside_the_image():
    d = np.tile(np.linspace(0, 1, 80, dtype=np.float32), (60, 1))
    for box in ((10, 10, 10, 50), (10.5, 10, 10.5, 50), (5, 20, 30, 20)):
        with pytest.raises(RefocusError, match="has no area"):
            select_focus(d, box=box)
    with pytest.raises(RefocusError, match="does not overlap"):
        select_focus(d, box=(100, 100, 120, 120))
    assert select_focus(d, box=(50, 40, 30, 20)).focus_disparity == pytest.approx(select_focus(d, box=(30, 20, 50, 40)).focus_disparity)


def test_focus_option_messages_name_what_was_typed(tmp_path, capsys):
    with pytest.raises(RefocusError, match=r"or 4, a box X0,Y0,X1,Y1"):
        parse_focus("1,2,3")
    with pytest.raises(RefocusError, match="--focus-range"):  # was "invalid settings: ..."
        build_config(focus_range="0.2:1.5")
    with pytest.raises(RefocusError, match="--focus-range"):
        build_config(focus_range="-0.1:0.5")
    img = np.full((8, 8, 3), 128, np.uint8)
    Image.fromarray(img).save(tmp_path / "p.png")
    np.save(tmp_path / "d.npy", np.tile(np.linspace(0, 1, 8, dtype=np.float32), (8, 1)))
    code, err = _run(capsys, "render", tmp_path / "p.png", "--depth", tmp_path / "d.npy", "-o", tmp_path / "o.png",
                     "--focus-value", "nan", "-k", "2")
    assert code == 2 and "--focus-value" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o.png").exists()


def test_a_mask_whose_name_holds_a_comma_is_a_mask_and_an_input(tmp_path, monkeypatch):
    from refocus.pipeline.options import command_inputs

    monkeypatch.chdir(tmp_path)
    Image.fromarray(np.full((6, 8), 255, np.uint8)).save(tmp_path / "subject, v2.png")
    # Was read as a point ("--focus must be 2 numbers"), and not counted as an input,
    # so "-o 'subject, v2.png'" was not refused as writing over it.
    assert parse_focus("subject, v2.png") == {"focus_mask": "subject, v2.png"}
    assert "subject, v2.png" in [str(p) for p in command_inputs(None, focus="subject, v2.png") if p is not None]
    with pytest.raises(RefocusError, match="--focus mask not found"):
        parse_focus("other, v3.png")
    assert parse_focus("12,34") == {"focus_xy": (12.0, 34.0)}


def test_a_weighted_mask_reports_the_pixels_its_focus_came_from():
    d = np.tile(np.linspace(0, 1, 10, dtype=np.float32), (4, 1))
    w = np.zeros((4, 10, 3), np.float32)
    w[:, :3] = 1.0
    w[:, 3:6] = 0.3  # below the threshold: not part of the subject
    choice = select_focus(d, mask=w)
    assert choice.region.shape == d.shape
    assert choice.region.sum() == 12 and choice.focus_disparity == pytest.approx(float(np.median(d[:, :3])))


@pytest.mark.parametrize("value", [5.0, float("nan")])
def test_render_bokeh_checks_cats_eye_like_the_cli(value):
    # The Python API's cats_eye= skipped the range check (model_copy does not validate).
    from refocus.errors import RefocusError
    from refocus.pipeline.bokeh import render_bokeh

    img = np.full((20, 30, 3), 0.5, np.float32)
    d = np.tile(np.linspace(0, 1, 30, dtype=np.float32), (20, 1))
    with pytest.raises(RefocusError, match="--cats-eye"):
        render_bokeh(img, d, focus_disparity=0.5, strength=2, cats_eye=value)


def test_a_distance_end_of_a_focus_pull_on_relative_depth_names_the_pulls_options(tmp_path):
    # animate --from 1m on relative depth was refused as "--focus-value in metres".
    from refocus.errors import RefocusError
    from refocus.io import write_image
    from refocus.pipeline import RefocusConfig, prepare
    from refocus.pipeline.animate import focus_pull, parse_endpoint

    write_image(tmp_path / "p.png", np.full((20, 30, 3), 0.5, np.float32))
    np.save(tmp_path / "d.npy", np.tile(np.linspace(0, 1, 30, dtype=np.float32), (20, 1)))
    photo = prepare(tmp_path / "p.png", depth_path=str(tmp_path / "d.npy"))
    with pytest.raises(RefocusError, match="animate --from/--to"):
        focus_pull(photo, RefocusConfig(strength=2), parse_endpoint("1m"), parse_endpoint("0.5"), frames=2)


def test_a_shape_drawn_off_centre_on_a_larger_canvas_blurs_as_the_shape_alone(tmp_path):
    """Found 2026-12-07: the whole frame of an aperture image mapped onto the kernel,
    so a 31 px disc at the left of a 91 x 31 canvas moved every blurred region by
    10 px and blurred by a third of the radius asked for. Cut to its opening, it
    gives the kernel of the disc alone."""
    from refocus.aperture import aperture_from_spec, kernel

    y, x = np.mgrid[-15:16, -15:16]
    disc = ((x**2 + y**2) <= 225).astype(np.uint8) * 255
    Image.fromarray(disc).save(tmp_path / "disc.png")
    Image.fromarray(np.pad(disc, ((20, 5), (0, 60)))).save(tmp_path / "off.png")
    a = kernel(aperture_from_spec(str(tmp_path / "disc.png")), 12.0)
    b = kernel(aperture_from_spec(str(tmp_path / "off.png")), 12.0)
    np.testing.assert_allclose(b, a, atol=1e-7)
