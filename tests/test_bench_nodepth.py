"""The refocus benchmark's no-depth track: the pipeline given the photo alone, depth and
lens read from its own blur (what a photo without depth gets offline). Before, no method
ran on that track, so the offline fallback was never measured on a real capture."""

from __future__ import annotations

import numpy as np
import pytest

from refocus.bench import methods as mreg
from refocus.bench.lightfield import click_point, lightfield_cases, load_lightfield
from refocus.bench.metrics import crop_border, psnr
from refocus.errors import RefocusError


def test_click_point_lands_inside_the_focal_plane_near_its_middle():
    d = np.zeros((80, 120), np.float32)
    d[20:60, 70:110] = 1.0  # a near card
    d[5, 5] = 1.0  # a stray pixel at the near disparity: not where anyone clicks
    x, y = click_point(d, 1.0)
    assert 20 + 7 <= y < 60 - 7 and 70 + 7 <= x < 110 - 7  # its whole window on the card
    assert abs(x - 89.5) <= 2 and abs(y - 39.5) <= 2
    x, y = click_point(d, 0.0)
    assert d[y, x] == 0.0


def test_no_depth_cases_say_where_to_click(shared_data):
    lf = load_lightfield(shared_data / "lightfields" / "hci-antinous", half=True)
    for case in lightfield_cases(lf, "refocus", with_depth=False):
        assert case.disparity is None
        x, y = case.meta["focus_xy"]
        span = float(np.ptp(lf.disparity))
        assert abs(lf.disparity[y, x] - case.focus_disparity) <= 0.02 * span + 1e-6


def test_own_blur_method_runs_on_the_no_depth_track_only(shared_data):
    """On antinous refocused at the far wall with R = 4, the offline fallback brings the
    blurred bust forward: measured 28.67 -> 31.01 dB (2026-12-07); asked: +1 dB. On the
    track with depth it does not run, and a photo in focus everywhere is refused."""
    mreg.load_plugins()
    (method,) = mreg.methods_for("refocus", ["pipeline-own-blur"])
    lf = load_lightfield(shared_data / "lightfields" / "hci-antinous", half=True)
    (case,) = lightfield_cases(lf, "refocus", radii=(4,), refocus_pairs=(("far", "near"),), with_depth=False)
    out = method.fn(case)
    before = psnr(crop_border(case.input, case.crop_px), crop_border(case.target, case.crop_px))
    after = psnr(crop_border(out, case.crop_px), crop_border(case.target, case.crop_px))
    assert after > before + 1.0, (before, after)
    (with_depth,) = lightfield_cases(lf, "refocus", radii=(4,), refocus_pairs=(("far", "near"),))
    with pytest.raises(mreg.MethodUnavailable):
        method.fn(with_depth)
    sharp = lightfield_cases(lf, "refocus", radii=(4,), refocus_pairs=(("far", "near"),), with_depth=False)[0]
    sharp.input = np.random.default_rng(0).random(sharp.input.shape).astype(np.float32)  # sharp everywhere
    with pytest.raises(mreg.MethodUnavailable, match="in focus everywhere"):
        method.fn(sharp)


def test_blur_depth_component_refuses_a_sharp_photo_in_one_line():
    from refocus.pipeline import stages
    from refocus.pipeline.config import RefocusConfig

    rng = np.random.default_rng(0)
    img = rng.random((96, 128, 3)).astype(np.float32)
    with pytest.raises(RefocusError) as exc:
        stages.load_disparity_from_blur(img, None, RefocusConfig(), [])
    assert "in focus everywhere" in str(exc.value) and "\n" not in str(exc.value)


def test_coinciding_focus_planes_give_no_duplicate_or_empty_cases():
    """Found 2026-12-07: a light field of a flat scene (disparity 1.0 everywhere) gave
    near and far bokeh/deblur cases that were one case counted twice, and a near ->
    far refocus that refocused nowhere and scored 100 dB for the input."""
    from refocus.bench.lightfield import LightField

    rng = np.random.default_rng(0)
    views = np.repeat(np.repeat(rng.random((1, 1, 32, 32, 3)).astype(np.float32), 5, 0), 5, 1)
    lf = LightField(views_linear=views, disparity=np.ones((32, 32), np.float32), name="wall")
    notes: list[str] = []
    bokeh = lightfield_cases(lf, "bokeh", radii=(2,), notes=notes)
    assert [c.name for c in bokeh] == ["R2-near"]
    assert lightfield_cases(lf, "refocus", radii=(2,), notes=notes) == []
    assert any("far focus plane is the near one" in n for n in notes)
    assert any("near -> far refocuses nowhere" in n for n in notes)
