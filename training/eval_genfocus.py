"""Score the generative engine (Genfocus through refocus) on the light-field tasks of
``refocus bench quality``, next to the physical engine, and write the same report
(report.md, report.json, contact sheets) plus ``genfocus-run.json`` (GPU, peak memory,
settings).

NOT RUN WITH THE REAL WEIGHTS: it needs FLUX.1-dev (gated) and the Genfocus LoRAs, and a
CUDA GPU with about 45 GB (or ``--offload``). It has only been run on a tiny random-weight
FLUX on a CPU (tests/test_genfocus.py), which checks that it runs and writes the report,
not what the numbers are.

Usage (on the GPU machine, after ``pip install -e '.[genfocus]'`` and ``hf auth login``)::

    python training/eval_genfocus.py --out bench-out/genfocus \\
        [--data lightfield,lytro1g] [--tasks bokeh,deblur,refocus] \\
        [--genfocus-weights DIR] [--base-model PATH] [--steps 28] [--offload] [--pre-deblur]

then, to put the rows in the README's tables::

    refocus bench tables bench-out/genfocus/report.json --readme README.md

Cases: the light fields' refocus stacks (hci-antinous at half resolution with true
disparity; the two real Lytro captures with plane-sweep disparity), R in {2, 4} view
steps, focus at the 5/50/95th disparity percentiles; the CoC handed to BokehNet is the
benchmark's own ``R * (d - s)`` in px, so its condition is ``min(|R (d - s)| / 100, 1)``.
These scenes are 256-512 px: below Genfocus's 512 px tile, so no tiling happens.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

DEFAULT_METHODS = ("input", "ours", "pipeline", "deblurnet", "genfocus")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("bench-out/genfocus"))
    ap.add_argument("--data", default="lightfield,lytro1g")
    ap.add_argument("--tasks", default="bokeh,deblur,refocus")
    ap.add_argument("--methods", default=",".join(DEFAULT_METHODS), help="methods to score next to genfocus")
    ap.add_argument("--genfocus-weights", default=None)
    ap.add_argument("--base-model", default=None)
    ap.add_argument("--steps", type=int, default=28)
    ap.add_argument("--offload", action="store_true")
    ap.add_argument("--pre-deblur", action="store_true")
    ap.add_argument("--quick", action="store_true", help="a few small cases (smoke test)")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    # The benchmark's method reads its settings from the environment (the CLI's
    # `refocus bench quality --methods genfocus` works the same way).
    env = {"REFOCUS_GENFOCUS_STEPS": str(args.steps), "REFOCUS_GENFOCUS_OFFLOAD": "1" if args.offload else "",
           "REFOCUS_GENFOCUS_PRE_DEBLUR": "1" if args.pre_deblur else "",
           "REFOCUS_GENFOCUS_WEIGHTS": args.genfocus_weights or "", "REFOCUS_GENFOCUS_BASE_MODEL": args.base_model or ""}
    os.environ.update(env)

    import torch

    from refocus.bench import quality as q
    from refocus.bench.report import write_report
    from refocus.errors import RefocusError
    from refocus.pipeline.genfocus import GenfocusOptions, get_engine

    methods = [m for m in args.methods.split(",") if m]
    if "genfocus" not in methods:
        methods.append("genfocus")
    tasks = q.parse_tasks(args.tasks)
    try:
        # Refuse in seconds (packages, weights, gated base model) rather than after the cases are built.
        from refocus.pipeline.genfocus.run import tasks_for
        from refocus.pipeline.genfocus.weights import require_packages

        require_packages()
        get_engine(GenfocusOptions.from_env()).check_weights(tasks_for("deblur" in tasks or "refocus" in tasks,
                                                                       GenfocusOptions.from_env()))
    except RefocusError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    run = q.run_quality(tasks, q.parse_data(args.data), methods, quick=args.quick)
    wall = time.perf_counter() - t0
    written = write_report(run, args.out)
    meta = {
        "settings": {k: v for k, v in env.items() if v},
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "peak_gpu_memory_gb": round(torch.cuda.max_memory_allocated() / 1e9, 2) if cuda else None,
        "wall_s": round(wall, 1),
        "notes": run.notes,
    }
    (Path(args.out) / "genfocus-run.json").write_text(json.dumps(meta, indent=2))
    print(f"report -> {written['md']} ; run details -> {Path(args.out) / 'genfocus-run.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
