"""Depth sources (file, network), edge-aware upsampling and focus selection."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import binary_dilation, gaussian_filter

from refocus.depth import DepthResult, get_depth
from refocus.depth.focus import auto_focus, focus_at_point, focus_in_box, focus_in_focus_region, select_focus
from refocus.depth.refine import _resize, upsample_to_guide
from refocus.errors import RefocusError
from refocus.io import write_image
from refocus.io.depthfile import write_pfm


def _disc_scene(h=96, w=128, r=26):
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:h, 0:w]
    inside = (xx - w * 0.45) ** 2 + (yy - h * 0.5) ** 2 < r**2
    img = np.empty((h, w, 3), np.float32)
    img[...] = (0.15, 0.3, 0.7)
    img[inside] = (0.85, 0.35, 0.2)
    img += rng.normal(0, 0.02, img.shape).astype(np.float32)
    disp = np.where(inside, 1.0, 0.2).astype(np.float32)
    return np.clip(img, 0, 1), disp, inside


def test_guided_upsampling_snaps_soft_low_res_depth_to_edges():
    img, disp, inside = _disc_scene()
    low = gaussian_filter(_resize(disp, (24, 32)), 1.0)  # phone-like: 4x smaller and soft
    plain = _resize(low, disp.shape)
    refined = upsample_to_guide(low, img)
    assert refined.shape == disp.shape and refined.dtype == np.float32
    assert refined.min() >= low.min() - 1e-6 and refined.max() <= low.max() + 1e-6
    band = binary_dilation(inside, iterations=6) & binary_dilation(~inside, iterations=6)
    err_plain = float(np.abs(plain - disp)[band].mean())
    err_ref = float(np.abs(refined - disp)[band].mean())
    assert err_ref < 0.5 * err_plain, (err_plain, err_ref)


def test_upsampling_handles_nan_constant_and_bad_shapes():
    img, disp, _ = _disc_scene()
    d = disp[::4, ::4].copy()
    d[0, 0] = np.nan
    assert np.isfinite(upsample_to_guide(d, img)).all()
    const = upsample_to_guide(np.full((5, 5), 3.0), img)
    assert const.shape == img.shape[:2] and np.allclose(const, 3.0)
    with pytest.raises(RefocusError):
        upsample_to_guide(np.zeros((0, 3)), img)
    with pytest.raises(RefocusError):
        upsample_to_guide(np.full((4, 4), np.nan), img)


def test_render_resample_uses_guided_upsampling():
    from refocus.depth.prepare import prepare_disparity

    img, disp, inside = _disc_scene()
    with pytest.warns(UserWarning, match="resampling"):
        out = prepare_disparity(disp[::4, ::4], shape=img.shape[:2], guide=img)
    assert out.shape == disp.shape


def test_focus_point_box_mask_value():
    img, disp, inside = _disc_scene()
    # A click 2 px inside the subject's outline focuses on the subject.
    ys, xs = np.nonzero(inside)
    x_edge = int(xs.max()) - 2
    y = int(np.median(ys[xs == xs.max()]))
    assert focus_at_point(disp, x_edge, y) == pytest.approx(1.0)
    f, region = focus_in_box(disp, (xs.min() - 8, ys.min() - 8, xs.max() + 8, ys.max() + 8))
    assert f == pytest.approx(1.0) and region[inside].mean() > 0.9
    assert select_focus(disp, mask=inside).focus_disparity == pytest.approx(1.0)
    assert select_focus(disp, value=0.3).focus_disparity == 0.3
    with pytest.raises(RefocusError, match="only one"):
        select_focus(disp, value=0.3, point=(1, 1))
    with pytest.raises(RefocusError, match="outside"):
        select_focus(disp, point=(1000, 1))


def test_auto_focus_prefers_near_central_subject_over_near_corner_speck():
    _, disp, inside = _disc_scene()
    d = disp.copy()
    d[:6, :6] = 1.5  # a small, nearer thing in a corner
    f, region = auto_focus(d)
    assert f == pytest.approx(1.0)
    assert region[inside].mean() > 0.8


def test_auto_focus_prefers_the_figure_over_a_foreground_cut_by_the_frame():
    """A portrait: a person in the middle distance, a nearer branch entering from the
    left edge (as in the bundled bokehme-21 photo). The subject is the person."""
    h, w = 300, 240
    d = np.full((h, w), 0.1, np.float32)  # far background
    yy, xx = np.mgrid[0:h, 0:w]
    person = ((xx - 130) ** 2 / 35.0**2 + (yy - 120) ** 2 / 45.0**2 <= 1) | ((abs(xx - 130) < 50) & (yy > 150))
    d[person] = 0.5
    branch = (xx < 70) & (yy > 0.6 * xx + 20)  # enters from the left and bottom edges
    d[branch] = 1.0
    f, region = auto_focus(d)
    assert f == pytest.approx(0.5, abs=0.05)
    assert region[person & ~branch].mean() > 0.7
    assert not region[branch].any()


def test_focus_from_defocus_map_finds_the_sharp_region():
    _, disp, inside = _disc_scene()
    defocus = np.where(inside, 8.0, 0.3).astype(np.float32)  # the background was in focus
    f, region = focus_in_focus_region(disp, defocus)
    assert f == pytest.approx(0.2)
    assert select_focus(disp, defocus_px=defocus).method == "defocus"


def test_depth_result_disparity_and_metric_focus():
    z = np.array([[1.0, 2.0], [4.0, 4.0]], np.float32)
    r = DepthResult(z, "depth", True, "test")
    d = r.disparity()
    assert d[0, 0] == 1.0 and d[1, 0] == 0.0  # nearest = 1
    assert r.focus_disparity_for_distance(2.0) == pytest.approx((0.5 - 0.25) / 0.75)
    rel = DepthResult(z, "depth", False, "rel")
    with pytest.raises(RefocusError, match="relative"):
        rel.focus_disparity_for_distance(2.0)
    # A metric K becomes K * disparity span for the normalised map.
    assert r.strength_for(100.0) == pytest.approx(75.0)


def test_get_depth_from_files(tmp_path):
    img, disp, _ = _disc_scene()
    photo = tmp_path / "p.png"
    write_image(photo, img)
    npy = tmp_path / "d.npy"
    np.save(npy, disp[::2, ::2])
    r = get_depth(photo, depth_path=npy)
    assert r.values.shape == disp.shape and r.kind == "disparity" and not r.metric
    assert r.source == "file d.npy" and r.raw_shape == (48, 64)
    assert any("resampled" in n for n in r.notes)
    pfm = tmp_path / "z.pfm"
    write_pfm(pfm, 1.0 / disp)
    r2 = get_depth(photo, depth_path=pfm, depth_kind="depth", refine=False)
    assert r2.metric and r2.kind == "depth"
    np.testing.assert_allclose(r2.disparity(), (disp - 0.2) / 0.8, atol=1e-5)
    with pytest.raises(RefocusError, match="not found"):
        get_depth(photo, depth_path=tmp_path / "missing.npy")
    np.save(tmp_path / "tall.npy", np.zeros((128, 96), np.float32))
    with pytest.raises(RefocusError, match="rotated"):
        get_depth(photo, depth_path=tmp_path / "tall.npy")
    with pytest.raises(RefocusError, match="depth kind"):
        get_depth(photo, depth_path=npy, depth_kind="distance")


def test_get_depth_nothing_available_says_what_to_do(tmp_path):
    img, _, _ = _disc_scene()
    photo = tmp_path / "p.png"
    write_image(photo, img)
    with pytest.raises(RefocusError, match="--depth FILE"):
        get_depth(photo, allow_estimate=False)


# --- the transformers source, on a tiny randomly initialised model -------------

@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    transformers = pytest.importorskip("transformers")
    import torch

    torch.manual_seed(0)
    out = {}
    for kind in ("relative", "metric"):
        bb = transformers.Dinov2Config(
            image_size=56, patch_size=14, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=32, out_indices=[1, 2], reshape_hidden_states=False,
        )
        cfg = transformers.DepthAnythingConfig(
            backbone_config=bb, reassemble_hidden_size=16, reassemble_factors=[2, 1], neck_hidden_sizes=[8, 16],
            fusion_hidden_size=8, head_hidden_size=4, depth_estimation_type=kind, max_depth=20,
        )
        d = tmp_path_factory.mktemp(f"tiny-depth-{kind}")
        transformers.DepthAnythingForDepthEstimation(cfg).save_pretrained(d)
        proc_cls = getattr(transformers, "DPTImageProcessorPil", None) or transformers.DPTImageProcessor
        proc_cls(size={"height": 56, "width": 56}, keep_aspect_ratio=True, ensure_multiple_of=14).save_pretrained(d)
        out[kind] = d
    return out


def test_network_depth_relative_model(tiny_models, tmp_path):
    from refocus.depth.estimate import estimate_depth_network

    img, _, _ = _disc_scene()
    raw = estimate_depth_network(img, tiny_models["relative"])
    assert raw.kind == "disparity" and not raw.metric and raw.model_type == "depth_anything"
    h, w = raw.values.shape
    assert w > h and abs((w / h) / (128 / 96) - 1) < 0.2  # not transposed
    photo = tmp_path / "p.png"
    write_image(photo, img)
    r = get_depth(photo, model=str(tiny_models["relative"]))
    assert r.values.shape == (96, 128) and r.kind == "disparity" and not r.metric
    assert "transformers" in r.source and "relative disparity" in r.source
    assert np.isfinite(r.values).all()
    # The whole map goes through unflipped: the refined map correlates with the raw one.
    up = _resize(raw.values, (96, 128))
    assert np.corrcoef(up.ravel(), r.values.ravel())[0, 1] > 0.8


def test_network_depth_metric_model_is_depth(tiny_models):
    from refocus.depth.estimate import estimate_depth_network

    img, _, _ = _disc_scene()
    raw = estimate_depth_network(img, tiny_models["metric"])
    assert raw.kind == "depth" and raw.metric and (raw.values > 0).all()


def test_explicit_model_that_does_not_load_is_an_error(tmp_path):
    pytest.importorskip("transformers")
    img, _, _ = _disc_scene()
    photo = tmp_path / "p.png"
    write_image(photo, img)
    with pytest.raises(RefocusError, match="cannot load depth model"):
        get_depth(photo, model=str(tmp_path / "no-such-model"))


def test_fallback_chain_ends_with_the_defocus_estimate(tmp_path, monkeypatch):
    """No file, nothing embedded, no downloaded network: the photo's own blur is used,
    with less blur meaning nearer (the documented assumption), and the choice is reported."""
    import refocus.deblur
    import refocus.depth.estimate as est

    img, _, _ = _disc_scene()
    photo = tmp_path / "p.png"
    write_image(photo, img)
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    blur_px = (np.hypot(xx - w / 2, yy - h / 2) / 10).astype(np.float32)  # sharp centre, blurrier outwards

    def no_network(*args, **kwargs):
        raise RefocusError("no depth network is downloaded")

    monkeypatch.setattr(est, "estimate_depth_network", no_network)
    monkeypatch.setattr(refocus.deblur, "deblur", lambda image, **kw: (image, blur_px))
    res = get_depth(photo)
    assert res.source == "defocus estimate" and not res.metric and res.kind == "disparity"
    assert any("network skipped" in n for n in res.notes)
    disp = res.disparity()
    assert disp[h // 2, w // 2] > disp[2, 2] + 0.5, "the sharp centre must come out nearer than the blurred corner"
    # Without estimates allowed, the chain stops and says what to do instead.
    with pytest.raises(RefocusError, match="--depth FILE"):
        get_depth(photo, allow_estimate=False)


# --- the default network, offline, and Depth Pro (issue 14) ---------------------

@pytest.fixture(scope="module")
def tiny_depth_pro(tmp_path_factory):
    """A random-weight Depth Pro with its field-of-view head (metric), saved locally."""
    import json

    transformers = pytest.importorskip("transformers")
    import torch

    torch.manual_seed(0)
    sub = {"model_type": "dinov2", "num_hidden_layers": 2, "hidden_size": 16, "num_attention_heads": 1, "patch_size": 4,
           "intermediate_size": 32}
    cfg = transformers.DepthProConfig(
        patch_size=16, fusion_hidden_size=16, intermediate_hook_ids=[1, 0], intermediate_feature_dims=[10, 8],
        scaled_images_ratios=[0.5, 1.0], scaled_images_overlap_ratios=[0.0, 0.2], scaled_images_feature_dims=[12, 12],
        use_fov_model=True, image_model_config=dict(sub), patch_model_config=dict(sub), fov_model_config=dict(sub),
    )
    d = tmp_path_factory.mktemp("tiny-depth-pro")
    transformers.DepthProForDepthEstimation(cfg).save_pretrained(d)
    # transformers' DepthProImageProcessor needs torchvision to be built; its config is plain JSON.
    (d / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "DepthProImageProcessor", "do_resize": True, "size": {"height": 64, "width": 64},
        "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": [0.5] * 3, "image_std": [0.5] * 3,
    }))
    return d


def test_depth_pro_gives_metric_depth(tiny_depth_pro, tmp_path):
    img, _, _ = _disc_scene()
    photo = tmp_path / "p.png"
    write_image(photo, img)
    r = get_depth(photo, model=str(tiny_depth_pro))
    assert r.metric and "depth_pro" in r.source and "metric" in r.source
    assert r.values.shape == (96, 128) and np.isfinite(r.values).all() and (r.metric_disparity() > 0).all()


def test_metric_depth_anything_through_the_pipeline_option(tiny_models):
    """--depth-model reaches get_depth from the pipeline's config (refocus, animate, batch, UI)."""
    from refocus.pipeline.config import RefocusConfig
    from refocus.pipeline.core import load_disparity

    img, _, _ = _disc_scene()
    notes: list[str] = []
    cfg = RefocusConfig(depth_model=str(tiny_models["metric"]))
    d, source, metric = load_disparity(img, None, cfg, notes)
    assert "depth_anything" in source and "metric depth" in source
    assert d.shape == (96, 128)


def _no_hub(monkeypatch, reachable=False):
    """The default model is not cached; the hub probe answers as asked; a real download fails the test."""
    import huggingface_hub

    import refocus.depth.estimate as est

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(est, "_CACHE", {})
    monkeypatch.setattr(est, "_cached_snapshot", lambda name: None)
    monkeypatch.setattr(est, "_UNREACHABLE", {})
    monkeypatch.setattr(est, "hub_reachable", lambda name, timeout_s=3.0: (reachable, "" if reachable else "Name or service not known"))

    def no_download(*a, **kw):
        raise AssertionError("must not download")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", no_download)
    return est


def test_default_is_the_depth_network_downloaded_on_first_use(tiny_models, tmp_path, monkeypatch):
    import huggingface_hub

    est = _no_hub(monkeypatch, reachable=True)
    fetched = []

    def fake_download(repo_id, **kw):
        fetched.append(repo_id)
        return str(tiny_models["relative"])

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download)
    img, _, _ = _disc_scene()
    photo = tmp_path / "p.png"
    write_image(photo, img)
    r = get_depth(photo)
    assert fetched == [est.DEFAULT_DEPTH_MODEL]
    assert est.DEFAULT_DEPTH_MODEL in r.source and "network" in r.source


def test_default_network_offline_says_so_in_one_line_and_falls_back(tmp_path, monkeypatch):
    import refocus.deblur

    est = _no_hub(monkeypatch, reachable=False)
    img, _, _ = _disc_scene()
    photo = tmp_path / "p.png"
    write_image(photo, img)
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    monkeypatch.setattr(refocus.deblur, "deblur", lambda image, **kw: (image, (xx / 10).astype(np.float32)))
    r = get_depth(photo)
    assert r.source == "defocus estimate"
    line = [n for n in r.notes if est.DEFAULT_DEPTH_MODEL in n]
    assert len(line) == 1 and "\n" not in line[0]
    assert "unreachable" in line[0] and "HF_HUB_OFFLINE" in line[0] and "--depth FILE" in line[0]
    # HF_HUB_OFFLINE: not even the probe runs.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(est, "hub_reachable", lambda *a, **k: pytest.fail("probed the hub although HF_HUB_OFFLINE=1"))
    r = get_depth(photo)
    assert r.source == "defocus estimate" and any("HF_HUB_OFFLINE is set" in n for n in r.notes)
    # An explicitly chosen model that cannot be had is an error, not a fallback.
    with pytest.raises(RefocusError, match="HF_HUB_OFFLINE"):
        get_depth(photo, model="apple/DepthPro-hf")


def test_an_unreachable_hub_is_probed_once_for_a_batch(monkeypatch):
    """Regression: each photo without depth probed the hub again, and a network that
    drops packets costs the probe's whole timeout each time (a folder of 100 photos:
    5 minutes of waiting). A failure is remembered for HUB_RETRY_AFTER_S."""
    import time

    from refocus.depth.estimate import ModelUnavailable, resolve_model

    est = _no_hub(monkeypatch)
    probes = []
    monkeypatch.setattr(est, "hub_reachable", lambda name, timeout_s=3.0: probes.append(name) or (False, "timed out"))
    for _ in range(3):
        with pytest.raises(ModelUnavailable, match="timed out"):
            resolve_model(est.DEFAULT_DEPTH_MODEL)
    assert len(probes) == 1
    now = time.monotonic()
    monkeypatch.setattr(time, "monotonic", lambda: now + est.HUB_RETRY_AFTER_S + 1)
    with pytest.raises(ModelUnavailable):
        resolve_model(est.DEFAULT_DEPTH_MODEL)
    assert len(probes) == 2


def test_hub_probe_gives_up_within_its_timeout():
    """A host that accepts the connection and never answers: one try, no retries."""
    import socket
    import time

    from refocus.depth.estimate import hub_reachable

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    try:
        t0 = time.perf_counter()
        import os

        old = os.environ.get("HF_ENDPOINT")
        os.environ["HF_ENDPOINT"] = f"http://127.0.0.1:{srv.getsockname()[1]}"
        try:
            ok, why = hub_reachable("depth-anything/Depth-Anything-V2-Small-hf", timeout_s=0.5)
        finally:
            os.environ.pop("HF_ENDPOINT") if old is None else os.environ.__setitem__("HF_ENDPOINT", old)
        assert not ok and why
        assert time.perf_counter() - t0 < 2.0
    finally:
        srv.close()


def _camera_photos(tmp_path):
    from skimage import data

    cam = np.stack([data.camera()[::2, ::2] / 255.0] * 3, -1).astype(np.float32)
    h, w = cam.shape[:2]
    blurred = cam.copy()
    for sigma, x0 in ((1.5, w // 3), (3.0, w // 2), (5.0, 2 * w // 3)):
        b = np.stack([gaussian_filter(cam[..., c], sigma) for c in range(3)], -1)
        blurred[:, x0:] = b[:, x0:]
    return cam, blurred


def test_all_in_focus_photo_is_refused_by_the_blur_fallback(tmp_path):
    """Issue 14: no network and a sharp photo: its blur measures texture, not distance."""
    sharp, blurred = _camera_photos(tmp_path)
    for name, img in (("sharp.png", sharp), ("blurred.png", blurred)):
        write_image(tmp_path / name, img)
    with pytest.raises(RefocusError, match="in focus everywhere") as exc:
        get_depth(tmp_path / "sharp.png")
    msg = str(exc.value)
    assert "\n" not in msg and "--depth FILE" in msg and "HF_HUB_OFFLINE" in msg and "Depth-Anything-V2-Small" in msg
    # A photo with real defocus keeps the fallback.
    r = get_depth(tmp_path / "blurred.png")
    assert r.source == "defocus estimate"
    d = r.disparity()
    assert d[:, : d.shape[1] // 4].mean() > d[:, -d.shape[1] // 4 :].mean() + 0.3  # sharp side nearer


def test_all_in_focus_cli_exits_2_with_one_line(tmp_path, capsys):
    from refocus.cli import main

    sharp, _ = _camera_photos(tmp_path)
    write_image(tmp_path / "sharp.png", sharp)
    with pytest.raises(SystemExit) as exc:
        main(["depth", str(tmp_path / "sharp.png"), "-o", str(tmp_path / "d.npy")])
    out = capsys.readouterr()
    assert exc.value.code == 2
    err = [ln for ln in (out.out + out.err).splitlines() if ln.strip()]
    assert len(err) == 1 and "in focus everywhere" in err[0] and "--depth FILE" in err[0], err


def test_iphone_heic_depth_is_metric_from_its_representation_info(shared_data):
    """Issue 14 item 2: the pug HEIC's depth is uniform disparity from d_min 1.498 to
    d_max 4.383, in 1/m (Apple's FloatMin/MaxValue; distances 0.23 .. 0.67 m): the map
    becomes disparity in 1/m between those ends (changed 2026-12-07: they were read as
    distances in metres, ~6x too far)."""
    photo = shared_data / "phone-depth" / "iphone13pro-pug.heic"
    if not photo.exists():
        pytest.skip("iphone13pro-pug.heic not in the shared data")
    r = get_depth(photo, neighbour=False)
    assert r.source == "iPhone HEIC auxiliary depth" and r.kind == "disparity" and r.metric
    lo, hi = r.disparity_range()
    assert lo == pytest.approx(1.498046875, rel=1e-3) and hi == pytest.approx(4.3828125, rel=1e-3)
    assert r.focus_disparity_for_distance(0.4) == pytest.approx((2.5 - lo) / (hi - lo), rel=1e-6)


def test_fast_median_bins_agree_with_the_full_resolution_filter():
    """The median's coefficients are computed on a 2x smaller grid (fast guided filter,
    for the 12 MP depth stage's speed); its bins must stay those of the exact filter
    nearly everywhere, and at most one bin off where a coefficient's smoothing tips
    an edge pixel."""
    from refocus.depth.refine import _median_upper_bound

    rng = np.random.default_rng(3)
    h, w = 240, 320
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.empty((h, w, 3), np.float32)
    img[...] = (0.2, 0.35, 0.6)
    disp = 0.2 + 0.3 * xx / w  # a slanted background
    for cx, cy, r, col, dv in ((90, 120, 50, (0.85, 0.4, 0.2), 0.9), (230, 80, 35, (0.3, 0.7, 0.3), 0.7)):
        inside = (xx - cx) ** 2 + (yy - cy) ** 2 < r**2
        img[inside] = col
        disp[inside] = dv
    img = np.clip(img + rng.normal(0, 0.02, img.shape).astype(np.float32), 0, 1)
    pn = gaussian_filter(disp, 2.0)
    pn = (pn - pn.min()) / (pn.max() - pn.min())
    exact = _median_upper_bound(img, pn, 8, 1e-3, 32, subsample=1)
    fast = _median_upper_bound(img, pn, 8, 1e-3, 32, subsample=2)
    bins_off = np.abs(np.round((fast - exact) * 32))
    assert (bins_off > 0).mean() < 0.01, (bins_off > 0).mean()
    assert (bins_off > 1).mean() < 0.0005, (bins_off > 1).mean()


def test_upsampling_tolerates_nan_inf_and_out_of_range_guides():
    img, disp, _ = _disc_scene()
    bad = img.copy()
    bad[0, 0] = (np.nan, np.inf, -np.inf)
    bad[1, 1] = (1.5, -0.5, 2.0)
    out = upsample_to_guide(disp[::4, ::4], bad)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, upsample_to_guide(disp[::4, ::4], np.clip(np.nan_to_num(bad, nan=0.0), 0, 1)))


def test_a_depth_read_from_blur_comes_with_the_blur_along_it(tmp_path):
    """Real capture (exif-corpus Epson PhotoPC 3000Z, no depth, no network): the depth
    came from DeblurNet's defocus map, the input blur from independent edge readings
    per disparity bin, and the two disagreed (5.5 px read where the depth put the
    largest blur); the renders switched between re-blurring and keeping the input in
    grey blotches over a dark background. Now the blur is taken along that depth: one
    lens, in focus at the nearest disparity, blur falling as disparity rises."""
    from refocus.pipeline import RefocusConfig, Refocuser

    _, blurred = _camera_photos(tmp_path)
    photo = Refocuser().prepare(blurred, RefocusConfig(deblur="never"))
    assert photo.depth_source == "defocus estimate"
    b, d = photo.input_blur_px, photo.disparity
    assert np.isfinite(b).all()
    assert np.corrcoef(b.ravel(), d.ravel())[0, 1] < -0.99
    assert float(b[d > 0.99].max()) < 0.5 and float(b.max()) > 2.0


@pytest.mark.parametrize("name, defocused", [("Olympus_PEN_E-P3.jpg", True), ("HTC_One.jpg", False)])
def test_the_blur_fallback_decides_on_the_photo_not_its_size(shared_data, name, defocused):
    """Regression: read at the photo's own size, the decision depended on it. The
    Olympus PEN photo (a blurred thumb and background, 1.2 MP) was refused as in focus
    everywhere (accepted at 0.5 MP), and the HTC One fern (in focus, 4 MP) was accepted:
    at that size DeblurNet reads the phone's own softness as blur."""
    from refocus.depth.estimate import AllInFocus, estimate_depth_from_defocus
    from refocus.io import read_image

    path = shared_data / "photos" / "exif-corpus" / name
    if not path.is_file():
        pytest.skip(f"{path} not found")
    img = read_image(path)[0]
    if defocused:
        d = estimate_depth_from_defocus(img)
        assert d.shape == img.shape[:2]
        h, w = d.shape
        # the blurred thumb (left edge) reads farther (lower) than the sharp box
        assert np.median(d[h // 3 : 2 * h // 3, : w // 40]) < np.median(d[h // 3 : 2 * h // 3, w // 3 : 2 * w // 3]) - 3
    else:
        with pytest.raises(AllInFocus):
            estimate_depth_from_defocus(img)


def test_a_depth_model_name_that_is_no_folder_is_refused_in_one_line(tmp_path, monkeypatch):
    """Found 2026-12-07 through the UI's "Depth network" box: a 300-character name
    raised OSError (File name too long), /etc/passwd reached the hub client's own
    "Repo id must be in the form ..." text, and ~/models/x was not expanded."""
    from refocus.depth.estimate import resolve_model

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(RefocusError, match="File name too long"):
        resolve_model("x" * 300)
    a_file = tmp_path / "weights.bin"
    a_file.write_bytes(b"0")
    with pytest.raises(RefocusError, match="it is a file"):
        resolve_model(str(a_file))
    (tmp_path / "models" / "depth").mkdir(parents=True)
    assert resolve_model("~/models/depth") == str(tmp_path / "models" / "depth")


def _backlit_edge(h=64, w=96, step_at=48, depth_offset_px=2, soft_px=6):
    """A bright subject (left) against a dark background (right), the colour edge at
    ``step_at``; its disparity rises over ``soft_px`` px, ``depth_offset_px`` outside the
    colour edge, as a monocular network's map does (bokehme-13)."""
    rng = np.random.default_rng(3)
    img = np.empty((h, w, 3), np.float32)
    img[:, :step_at] = (0.9, 0.75, 0.4)
    img[:, step_at:] = (0.15, 0.25, 0.3)
    img = np.clip(img + rng.normal(0, 0.01, img.shape), 0, 1).astype(np.float32)
    x = np.arange(w, dtype=np.float32)
    centre = step_at + depth_offset_px
    ramp = np.clip((centre + soft_px / 2 - x) / soft_px, 0, 1)  # 1 on the subject's side
    disp = np.tile(0.2 + 0.6 * ramp, (h, 1)).astype(np.float32)
    return img, disp, step_at


def test_snap_puts_a_soft_offset_depth_step_at_the_colour_edge():
    """The glow around a backlit subject (bokehme-13): the map's soft step lies 2 px
    outside the colour edge, so bright subject pixels got a middle CoC and spread over
    the blurred background. Each pixel of the step takes one side's value, by colour."""
    from refocus.depth.refine import snap_transitions

    img, disp, edge = _backlit_edge()
    out = snap_transitions(disp, img)
    assert out.dtype == np.float32 and out.shape == disp.shape
    assert out.min() >= disp.min() and out.max() <= disp.max()
    np.testing.assert_allclose(out[:, :edge], 0.8, atol=1e-6)  # every subject pixel: the subject's
    np.testing.assert_allclose(out[:, edge:], 0.2, atol=1e-6)  # every background pixel: the background's
    before = np.abs(disp[:, edge - 3 : edge + 3] - np.where(np.arange(edge - 3, edge + 3) < edge, 0.8, 0.2)).max()
    assert before > 0.2  # the map was wrong there


def test_snap_leaves_slopes_narrow_planes_and_flat_colour_alone():
    from refocus.depth.refine import snap_transitions

    rng = np.random.default_rng(0)
    img = rng.random((40, 120, 3)).astype(np.float32)
    ramp = np.tile(np.linspace(0.0, 1.0, 120, dtype=np.float32), (40, 1))  # a ground plane
    np.testing.assert_array_equal(snap_transitions(ramp, img), ramp)
    stairs = np.tile(np.repeat(np.arange(20, dtype=np.float32) / 19, 6), (40, 1))  # 6 px planes, steep as a whole
    out = snap_transitions(stairs, img)
    np.testing.assert_array_equal(out, stairs)  # each step is 1 px: no pixel lies between two sides
    pole = np.full((40, 120), 0.0, np.float32)
    pole[:, 50:70] = 1.0
    pole[:, 58:62] = 0.5  # a pole between the wall and a nearer plane, 4 px wide
    out = snap_transitions(pole, img)
    np.testing.assert_array_equal(out[:, 58:62], 0.5)
    flat = np.full((40, 120), 0.3, np.float32)
    np.testing.assert_array_equal(snap_transitions(flat, img), flat)


def test_upsampled_map_is_snapped_at_the_photo_size_too():
    """A network's map (518 px) upsampled to a large photo keeps a soft step a few px
    wide after the weighted median (the clamp's bound is bilinear from the working
    resolution): upsample_to_guide settles it; snap=False is the former result."""
    img, disp, edge = _backlit_edge(h=120, w=1600, step_at=800, depth_offset_px=0, soft_px=2)
    low = _resize(disp, (12, 160))
    soft = upsample_to_guide(low, img, snap=False, work_pixels=20_000)
    snapped = upsample_to_guide(low, img, work_pixels=20_000)
    mid = lambda m: int(((m > 0.3) & (m < 0.7))[:, edge - 20 : edge + 20].sum())  # noqa: E731
    assert mid(soft) > 120  # at least one column of middle values on every row
    assert mid(snapped) == 0
    assert snapped[:, : edge - 1].min() > 0.7 and snapped[:, edge + 1 :].max() < 0.3
