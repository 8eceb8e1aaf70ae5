import json

import numpy as np
import pytest

from refocus.bench import methods as mreg
from refocus.bench.paired import find_pairs, paired_cases
from refocus.errors import RefocusError
from refocus.io import write_image
from refocus.io.depthfile import write_pfm


def two_plane_lightfield(folder, size=64, grid=5):
    """A 5x5 light field: a textured square (disparity +1, near) over a textured wall (-1)."""
    rng = np.random.default_rng(3)
    wall = rng.random((size, size, 3)).astype(np.float32) * 0.8 + 0.1
    card = np.zeros_like(wall)
    card[..., 0] = 0.9
    card[::4] = 0.2
    mask = np.zeros((size, size), bool)
    q = size // 4
    mask[q : 3 * q, q : 3 * q] = True
    c = (grid - 1) // 2
    folder.mkdir(parents=True)
    for v in range(grid):
        for u in range(grid):
            du, dv = u - c, v - c
            # A point seen at x in the centre view is at x - d*du here (np.roll(a, k)[x] = a[x - k]).
            bg = np.roll(wall, (dv, du), axis=(0, 1))
            m = np.roll(mask, (-dv, -du), axis=(0, 1))
            fg = np.roll(card, (-dv, -du), axis=(0, 1))
            view = np.where(m[..., None], fg, bg)
            write_image(folder / f"input_Cam{v * grid + u:03d}.png", view, bit_depth=16)
    write_pfm(folder / "gt_disp_lowres.pfm", np.where(mask, 1.0, -1.0).astype(np.float32))
    return folder


def test_gaussian_blur_by_coc():
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(0)
    img = rng.random((32, 32, 3)).astype(np.float32)
    np.testing.assert_array_equal(mreg.gaussian_blur_by_coc(img, np.zeros((32, 32), np.float32)), img)
    out = mreg.gaussian_blur_by_coc(img, np.full((32, 32), -3.0, np.float32))  # sigma 1.5 (sign ignored)
    np.testing.assert_allclose(out, gaussian_filter(img, (1.5, 1.5, 0), mode="nearest"), atol=1e-5)
    # Between stack levels the two neighbours are interpolated.
    mid = mreg.gaussian_blur_by_coc(img, np.full((32, 32), 2.25, np.float32), sigma_step=0.25)
    lo = gaussian_filter(img, (1.0, 1.0, 0), mode="nearest")
    hi = gaussian_filter(img, (1.25, 1.25, 0), mode="nearest")
    np.testing.assert_allclose(mid, 0.5 * lo + 0.5 * hi, atol=1e-5)


def test_paired_loader(tmp_path):
    rng = np.random.default_rng(1)
    root = tmp_path / "dpdd"
    for sub in ("inputC", "target"):
        (root / sub).mkdir(parents=True)
    imgs = {}
    for name in ("a", "b"):
        x, y = rng.random((20, 24, 3)), rng.random((20, 24, 3))
        write_image(root / "inputC" / f"{name}.png", x)
        write_image(root / "target" / f"{name}.png", y)
        imgs[name] = (x, y)
    write_image(root / "inputC" / "orphan.png", rng.random((20, 24, 3)))
    pairs = find_pairs(root)
    assert [p[0] for p in pairs] == ["a", "b"]
    cases = paired_cases(root)
    assert [c.task for c in cases] == ["deblur", "deblur"] and cases[0].disparity is None
    np.testing.assert_allclose(cases[1].input, imgs["b"][0], atol=1 / 255)
    np.testing.assert_allclose(cases[1].target, imgs["b"][1], atol=1 / 255)
    assert paired_cases(root, limit=1, max_side=10)[0].input.shape == (10, 10, 3)
    # source/ + target/ layout, names matched regardless of extension.
    other = tmp_path / "other"
    (other / "source").mkdir(parents=True)
    (other / "target").mkdir()
    write_image(other / "source" / "x.png", rng.random((8, 8, 3)))
    write_image(other / "target" / "x.jpg", rng.random((8, 8, 3)))
    assert [p[0] for p in find_pairs(other)] == ["x"]
    with pytest.raises(RefocusError, match="inputC"):
        find_pairs(tmp_path)
    write_image(other / "source" / "y.png", rng.random((8, 8, 3)))
    write_image(other / "target" / "y.png", rng.random((9, 8, 3)))
    with pytest.raises(RefocusError, match="y.png"):
        paired_cases(other)


def test_registry_skips_and_failures(tmp_path):
    from refocus.bench.quality import run_quality

    lf = two_plane_lightfield(tmp_path / "lf")

    def unavailable(case):
        raise mreg.MethodUnavailable("weights missing")

    def broken(case):
        raise ValueError("boom")

    def wrong_size(case):
        return case.input[:10]

    mreg.register("deblur", "test-unavailable", unavailable)
    mreg.register("deblur", "test-broken", broken)
    mreg.register("deblur", "test-wrong-size", wrong_size)
    mreg.register("deblur", "test-oracle", lambda case: case.target)
    try:
        names = ["input", "test-unavailable", "test-broken", "test-wrong-size", "test-oracle"]
        run = run_quality(["deblur"], [f"lightfield:{lf}"], methods=names, quick=True, lpips_weights=None)
    finally:
        for n in ("test-unavailable", "test-broken", "test-wrong-size", "test-oracle"):
            mreg._REGISTRY["deblur"].pop(n)
    notes = "\n".join(run.notes)
    assert "test-unavailable skipped (weights missing)" in notes
    assert "test-broken failed (ValueError: boom)" in notes
    assert "test-wrong-size returned shape" in notes
    scored = run.cases[0]["results"]
    assert set(scored) == {"input", "test-oracle"}
    assert scored["test-oracle"]["psnr"] == 100.0
    assert scored["input"]["psnr"] < 40
    with pytest.raises(RefocusError, match="unknown method"):
        run_quality(["deblur"], [f"lightfield:{lf}"], methods=["nope"], quick=True)


def test_option_parsing():
    from refocus.bench.quality import parse_data, parse_tasks

    assert parse_tasks("all") == ["bokeh", "deblur", "refocus"]
    assert parse_data("all") == ["lightfield", "lytro1g", "synthetic"]
    assert parse_data("lytro1g,lightfield") == ["lytro1g", "lightfield"]
    with pytest.raises(RefocusError, match="unknown task"):
        parse_tasks("deblurr")
    with pytest.raises(RefocusError, match="folder not found"):
        parse_data("paired:/does/not/exist")
    with pytest.raises(RefocusError, match="unknown data source"):
        parse_data("imagenet")


def test_bench_quality_cli_end_to_end(tmp_path, capsys, shared_data):
    from refocus.cli import main

    lf = two_plane_lightfield(tmp_path / "lf")
    out = tmp_path / "report"
    weights = shared_data / "lpips" / "alexnet.ckpt"
    with pytest.raises(SystemExit) as exc:
        main(["bench", "quality", "--quick", "--data", f"lightfield:{lf}", "--out", str(out), "--lpips-weights", str(weights)])
    assert exc.value.code == 0, capsys.readouterr().err
    assert (out / "report.md").is_file()
    rep = json.loads((out / "report.json").read_text())
    sheets = sorted(p.name for p in out.glob("contact-*.png"))
    assert sheets == ["contact-bokeh.png", "contact-deblur.png", "contact-refocus.png"]
    bokeh = rep["summary"]["bokeh"]["lightfield:lf"]
    assert {"input", "gaussian-coc", "ours", "ours-high"} <= set(bokeh)
    # Rendering with the true CoC beats leaving the input alone; the layered
    # renderer handles the occlusion edge better than the naive blur.
    assert bokeh["ours"]["psnr"] > bokeh["input"]["psnr"] + 3
    assert bokeh["ours"]["lpips"] < bokeh["input"]["lpips"]
    assert bokeh["ours"]["psnr"] > bokeh["gaussian-coc"]["psnr"]
    assert "refocus" in rep["summary"] and "lightfield:lf (no depth)" in rep["summary"]["refocus"]
    assert all(isinstance(c["results"]["input"]["lpips"], float) for c in rep["cases"])
    md = (out / "report.md").read_text()
    assert "| ours |" in md and "contact-bokeh.png" in md


def test_bench_quality_cli_errors(tmp_path, capsys):
    from refocus.cli import main

    for argv, msg in [
        (["bench", "quality", "--task", "nope"], "unknown task"),
        (["bench", "quality", "--data", f"paired:{tmp_path / 'missing'}"], "folder not found"),
        (["bench", "quality", "--data", f"lightfield:{tmp_path}"], "no views"),
    ]:
        with pytest.raises(SystemExit) as exc:
            main(argv)
        err = capsys.readouterr().err
        assert exc.value.code == 2 and msg in err and "Traceback" not in err


def test_bench_speed_wiring(tmp_path, monkeypatch, capsys):
    """`refocus bench speed` hands its options to refocus.bench.speed.run_speed."""
    import sys
    import types

    from refocus.cli import main

    calls = []
    fake = types.ModuleType("refocus.bench.speed")
    fake.run_speed = lambda **kw: calls.append(kw) or {}
    monkeypatch.setitem(sys.modules, "refocus.bench.speed", fake)
    with pytest.raises(SystemExit) as exc:
        main(["bench", "speed", "--out", str(tmp_path), "--device", "cpu", "--quick"])
    assert exc.value.code == 0
    assert calls == [{"out_dir": tmp_path, "device": "cpu", "quick": True, "quality": "balanced",
                      "stages": ("render", "deblur", "depth", "pipeline", "interactive", "grain")}]
    with pytest.raises(SystemExit) as exc:
        main(["bench", "speed", "--out", str(tmp_path), "--stages", "depth", "--quality", "fast"])
    assert exc.value.code == 0 and calls[-1]["stages"] == ("depth",) and calls[-1]["quality"] == "fast"
    with pytest.raises(SystemExit) as exc:
        main(["bench", "speed", "--quality", "draft"])
    assert exc.value.code == 2 and "--quality" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["bench", "speed", "--stages", "depth,warp"])
    assert exc.value.code == 2 and "--stages" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["bench", "speed", "--device", "tpu"])
    assert exc.value.code == 2 and "--device" in capsys.readouterr().err


def test_quick_bench_on_the_real_lytro_captures(shared_data):
    """`--data lytro1g`: a real capture, its disparity estimated by the plane sweep
    (the flowers nearer than the ground), scored like the synthetic light field."""
    from refocus.bench.quality import run_quality

    if not (shared_data / "lightfields" / "lytro1g-0001").is_dir():
        pytest.skip("../shared/data/lightfields/lytro1g-0001 is absent")
    run = run_quality(["bokeh", "refocus"], ["lytro1g"], ["input", "ours", "pipeline", "naive"], quick=True)
    names = {c["dataset"] for c in run.cases}
    assert "lytro1g:lytro1g-0001" in names, names
    bokeh = [c for c in run.cases if c["task"] == "bokeh"]
    assert bokeh and all({"input", "ours"} <= set(c["results"]) for c in bokeh)
    # Even a sub-pixel refocus of a real capture must not lose to leaving it alone.
    for c in run.cases:
        if c["task"] == "refocus" and "pipeline" in c["results"]:
            assert c["results"]["pipeline"]["psnr"] >= c["results"]["input"]["psnr"] - 0.01, c["case"]


def test_contact_sheet_skips_a_track_no_method_runs_on(tmp_path, shared_data):
    """Regression: the refocus sheet showed the no-depth track (wider crop, same cases)
    as a row of empty tiles, in place of a case the methods ran on."""
    from refocus.bench.quality import run_quality

    lf = two_plane_lightfield(tmp_path / "lf")
    run = run_quality(["refocus"], [f"lightfield:{lf}"], methods=["input", "naive", "ours-no-deblur"], quick=True,
                      lpips_weights=shared_data / "lpips" / "alexnet.ckpt")
    shown = [case.dataset for case, _ in run.images["refocus"]]
    assert shown == ["lightfield:lf"]
