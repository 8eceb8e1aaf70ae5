"""Depth stage before/after in one process, so both see the same machine load.

    python tools/depth_stage_ab.py [N] [--old-rev REV]     # from the repository root

``get_depth`` as ``refocus bench speed --stages depth`` runs it (Depth Anything V2 Small's
architecture with random weights on a 12 MP photo, then the edge-aware upsampling), with
``refine.upsample_to_guide`` from git revision REV (default bcf0325, before the fast
guided filter) and from the working tree alternating, N times each; and the upsampling
alone on a map of the network's size. Prints wall and process-CPU medians.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from refocus.bench.speed import depth_anything_v2_small, smooth_disparity
from refocus.depth import get_depth, refine

REPO = Path(__file__).resolve().parents[1]


def _old_refine(rev: str):
    src = subprocess.run(["git", "show", f"{rev}:src/refocus/depth/refine.py"], cwd=REPO, check=True,
                         capture_output=True, text=True).stdout
    tmp = Path(tempfile.mkdtemp()) / "refine_old.py"
    tmp.write_text(src)
    spec = importlib.util.spec_from_file_location("refine_old", tmp)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    n = int(args[0]) if args else 3
    rev = sys.argv[sys.argv.index("--old-rev") + 1] if "--old-rev" in sys.argv else "bcf0325"
    old = _old_refine(rev)
    new_fn = refine.upsample_to_guide
    h, w = 3000, 4000
    rng = np.random.default_rng(4)
    img = np.clip(smooth_disparity(h, w, seed=5)[..., None] * np.array([0.9, 0.6, 0.3], np.float32)
                  + rng.normal(0, 0.02, (h, w, 3)).astype(np.float32), 0, 1).astype(np.float32)
    wall: dict[str, list[float]] = {k: [] for k in ("stage old", "stage new", "upsampling old", "upsampling new")}
    cpu: dict[str, list[float]] = {k: [] for k in wall}

    def timed(key, fn):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall[key].append(time.perf_counter() - t)
        cpu[key].append(time.process_time() - c)

    with tempfile.TemporaryDirectory() as tmp:
        proc, net = depth_anything_v2_small()
        net.save_pretrained(tmp)
        proc.save_pretrained(tmp)
        raw_shape = get_depth(None, image=img, model=tmp).raw_shape  # loads the model once
        d = smooth_disparity(*raw_shape, seed=9)
        try:
            for _ in range(n):
                for tag, fn in (("old", old.upsample_to_guide), ("new", new_fn)):
                    refine.upsample_to_guide = fn
                    timed(f"stage {tag}", lambda: get_depth(None, image=img, model=tmp))
                    timed(f"upsampling {tag}", lambda fn=fn: fn(d, img))
        finally:
            refine.upsample_to_guide = new_fn
    print(f"old = {rev}; load average {os.getloadavg()[0]:.1f}; {os.cpu_count()} CPUs; network output {raw_shape[1]}x{raw_shape[0]}")
    for k in wall:
        print(f"{k:15s} wall median {np.median(wall[k]):.2f} s ({' '.join(f'{x:.2f}' for x in wall[k])}), "
              f"CPU median {np.median(cpu[k]):.2f} s")


if __name__ == "__main__":
    main()
