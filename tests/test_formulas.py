"""The CoC and K formulas are each written once (issue 17): the bench's and the
synthetic generators' numbers are the ones the renderer's and the lens module's
formulas give, bit for bit where the operations are the same."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from refocus.bench.methods import Case
from refocus.bench.scenes import CameraParams, generate_pairs, make_scene
from refocus.render import coc_map, signed_coc_px


def test_coc_map_is_the_elementwise_formula():
    d = np.random.default_rng(0).random((16, 20)).astype(np.float32)
    for f, k in ((0.3, 12.0), (0.0, 0.5), (0.91, 37.25)):
        expected = (np.float32(k) * (d - np.float32(f))).astype(np.float32)
        assert np.array_equal(coc_map(d, f, k), expected)
        assert np.array_equal(signed_coc_px(d, np.float32(f), np.float32(k)), expected)
    # A focus band: the plane formula with the disparity clipped to the band as focus.
    band = coc_map(d, (0.6, 0.2), 8.0)
    assert np.array_equal(band, (np.float32(8.0) * (d - np.clip(d, np.float32(0.2), np.float32(0.6)))))


def test_case_coc_px_is_coc_map():
    d = np.random.default_rng(1).random((8, 9)).astype(np.float32)
    img = np.zeros((8, 9, 3), np.float32)
    case = Case("bokeh", "x", "c", img, img, disparity=d, strength=5.5, focus_disparity=0.4)
    assert np.array_equal(case.coc_px(), coc_map(d, 0.4, 5.5))
    assert np.array_equal(case.coc_px(0.7), coc_map(d, 0.7, 5.5))


def test_generate_pairs_coc_is_coc_map_per_item():
    out = generate_pairs(3, (24, 28), generator=torch.Generator().manual_seed(3), max_coc_px=(2.0, 6.0))
    for i in range(3):
        d = out["disparity"][i, 0].numpy()
        want = coc_map(d, float(out["focus_disparity"][i]), float(out["K"][i]))
        assert np.array_equal(out["coc_px"][i, 0].numpy(), want)


def test_make_scene_coc_is_coc_map():
    s = make_scene(seed=2, size=(32, 40))
    assert np.array_equal(s.coc_px, coc_map(s.disparity, s.focus_disparity, s.K))


def _old_camera_params(K, focus_disparity, width_px, f=85.0, sw=36.0, near_m=0.5, far_m=20.0):
    """CameraParams's own thin-lens algebra before it used refocus.camera.lens (kept
    here as the reference the shared formula must reproduce)."""
    inv_near, inv_far = 1.0 / near_m, 1.0 / far_m
    zf_mm = 1000.0 / (inv_far + focus_disparity * (inv_near - inv_far))
    ppm = width_px / sw
    span_per_mm = (inv_near - inv_far) / 1000.0
    n = f * f * span_per_mm * ppm / (2.0 * max(K, 1e-9) * (1.0 - f / zf_mm)) if K > 0 else math.inf
    return n, zf_mm / 1000.0, ppm


def _old_strength(f, n, zf_m, near_m, far_m, ppm):
    zf_mm = zf_m * 1000.0
    span_per_mm = (1.0 / near_m - 1.0 / far_m) / 1000.0
    return f * f / (2.0 * n * (1.0 - f / zf_mm)) * span_per_mm * ppm


@pytest.mark.parametrize(
    "K,focus,width,kw",
    [
        (20.0, 0.3, 1024, {}),
        (4.0, 0.0, 256, {}),
        (48.0, 0.95, 4000, {"focal_length_mm": 35.0, "sensor_width_mm": 23.5}),
        (12.5, 0.5, 640, {"focal_length_mm": 200.0, "near_m": 2.0, "far_m": 100.0}),
    ],
)
def test_camera_params_match_the_old_formula(K, focus, width, kw):
    cam = CameraParams.from_strength(K, focus, width, **kw)
    f, sw = kw.get("focal_length_mm", 85.0), kw.get("sensor_width_mm", 36.0)
    near_m, far_m = kw.get("near_m", 0.5), kw.get("far_m", 20.0)
    n, zf_m, ppm = _old_camera_params(K, focus, width, f, sw, near_m, far_m)
    assert cam.f_number == pytest.approx(n, rel=1e-9)
    assert cam.focus_distance_m == zf_m and cam.pixels_per_mm == ppm
    assert cam.strength_px() == pytest.approx(_old_strength(f, n, zf_m, near_m, far_m, ppm), rel=1e-9)
    assert cam.strength_px() == pytest.approx(K, rel=1e-9)


def test_scenes_camera_unchanged():
    for seed in (0, 5, 11):
        s = make_scene(seed=seed, size=(32, 40))
        n, zf_m, ppm = _old_camera_params(s.K, s.focus_disparity, 40)
        assert s.camera.f_number == pytest.approx(n, rel=1e-9)
        assert s.camera.focus_distance_m == zf_m
