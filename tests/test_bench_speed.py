"""``refocus bench speed`` runs end to end on a tiny size and writes its reports."""

import json

import pytest
import subprocess
import sys


def test_bench_speed_quick_writes_json_and_markdown(tmp_path):
    from refocus.bench.speed import run_speed

    report = run_speed(out_dir=tmp_path, device="cpu", quick=True, size=(64, 96), max_cocs=(4.0,), stages=("render",))
    data = json.loads((tmp_path / "speed.json").read_text())
    assert data["rows"] == report["rows"]
    row = data["rows"][0]
    assert row["stage"] == "render" and row["device"] == "cpu" and row["max_coc_px"] == 4.0
    assert row["median_s"] > 0 and row["peak_rss_mb"] > 10
    assert "| render | cpu | 96x64 | 4 |" in (tmp_path / "speed.md").read_text()


def test_bench_speed_rejects_missing_cuda(tmp_path):
    import torch

    if torch.cuda.is_available():
        return
    r = subprocess.run([sys.executable, "-m", "refocus.cli", "bench", "speed", "--device", "cuda", "--out", str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "no CUDA" in r.stderr and "Traceback" not in r.stderr


def test_bench_speed_depth_stage_is_the_default_architecture():
    """Issue 14: the depth stage is timed on Depth Anything V2 Small's architecture
    (24.8 M parameters, as the released model) with random weights."""
    pytest.importorskip("transformers")
    from refocus.bench.speed import depth_anything_v2_small

    proc, net = depth_anything_v2_small()
    assert abs(sum(p.numel() for p in net.parameters()) / 1e6 - 24.8) < 0.1
    assert proc.size == {"height": 518, "width": 518} and proc.keep_aspect_ratio and proc.ensure_multiple_of == 14


@pytest.mark.slow
def test_bench_speed_times_the_depth_stage_through_get_depth():
    pytest.importorskip("transformers")
    from refocus.bench.speed import _child_depth

    res = _child_depth(48, 64, "cpu", 1)
    assert len(res["times_s"]) == 1 and res["times_s"][0] > 0
    assert "network at" in res["note"] and "518" in res["note"]


def test_a_failed_report_write_leaves_the_previous_report_whole(tmp_path, monkeypatch):
    # speed.json and speed.md were written in place: a write that failed half-way (a
    # full disk) left the previous report truncated. Here the write of speed.md fails
    # once the file is open, as a full disk would: a CPU name that cannot be encoded.
    from refocus.bench import speed

    (tmp_path / "speed.md").write_text("previous report\n")
    monkeypatch.setattr(speed, "machine_info", lambda: {"cpu": "x\ud800", "cpu_count": 2})
    with pytest.raises(UnicodeEncodeError):
        speed.run_speed(tmp_path, device="cpu", quick=True, size=(32, 48), max_cocs=(2.0,), repeats=1, stages=("render",))
    assert (tmp_path / "speed.md").read_text() == "previous report\n"
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_bench_speed_times_the_quality_asked_for(tmp_path):
    """``--quality`` reaches the render stage and the report (fast was timed only with
    an ad-hoc script; the command had no way to ask for it)."""
    r = subprocess.run([sys.executable, "-m", "refocus.cli", "bench", "speed", "--device", "cpu", "--quick", "--stages", "render",
                        "--quality", "fast", "--out", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "speed.json").read_text())["quality"] == "fast"
    bad = subprocess.run([sys.executable, "-m", "refocus.cli", "bench", "speed", "--quality", "best", "--out", str(tmp_path / "b")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "--quality must be" in bad.stderr and "Traceback" not in bad.stderr


def test_bench_speed_times_the_grain(tmp_path):
    """`--stages grain`: --grain's measurement and addition, a row with its own label."""
    from refocus.bench.speed import _child_grain, run_speed
    from refocus.bench.tables import _stage_label

    res = _child_grain(48, 64, 2)
    assert len(res["times_s"]) == 2 and all(t > 0 for t in res["times_s"]) and "measuring the noise" in res["note"]
    report = run_speed(out_dir=tmp_path, device="cpu", quick=True, stages=("grain",))
    (row,) = report["rows"]
    assert row["stage"] == "grain" and row["median_s"] > 0 and "error" not in row
    assert "--grain" in _stage_label(row)
