"""``refocus bench speed`` runs end to end on a tiny size and writes its reports."""

import json
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
