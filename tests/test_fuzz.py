"""Fuzz: several hundred mutants of real files through the CLI (issue 18).

Each run must end with exit 0 (handled) or 2 (refused with one line), never 1 (an
unexpected exception) or a crash, with peak memory under 1.5 GB. The runs happen in
one fresh process (so earlier tests do not count in its memory peak), in-process
through ``refocus.cli.main`` on the fast paths (``info``, ``depth --no-refine``);
the pixel budget is 16 MP there: above every file of the corpus (12 MP), below the
sizes the "huge-size" mutants declare.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import refocus

N_MUTANTS = 500
SEED = 18
PEAK_LIMIT_MB = 1500


def test_mutants_exit_0_or_2_within_memory(shared_data, tmp_path):
    out = tmp_path / "fuzz.json"
    env = dict(os.environ, REFOCUS_MAX_MEGAPIXELS="16", PYTHONPATH=str(Path(refocus.__file__).parents[1]))
    code = (
        "from refocus.cli import main; "
        f"main(['bench', 'robustness', '--data', {str(shared_data)!r}, '--mutants', '{N_MUTANTS}', "
        f"'--seed', '{SEED}', '--out', {str(out)!r}])"
    )
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr[-2000:]
    runs = json.loads(out.read_text())["runs"]
    assert len(runs) >= N_MUTANTS
    bad = [r for r in runs if r["exit_code"] not in (0, 2)]
    assert not bad, "\n".join(f"{r['source']} {r['mutation']} {r['command']}: {r['exit_code']} {r['message']}" for r in bad[:10])
    heavy = [r for r in runs if r["peak_mb"] > PEAK_LIMIT_MB]
    assert not heavy, heavy[:5]
    assert {r["exit_code"] for r in runs} == {0, 2}  # the mutants reach both outcomes
    assert elapsed < 120, f"{len(runs)} runs took {elapsed:.0f} s"
