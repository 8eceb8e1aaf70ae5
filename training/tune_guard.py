"""Choose the DeblurNet guard's parameters (refocus.deblur.guard) on validation data.

Runs the network once on each deblur case, then scores each guard setting (clip radius
px, gate start px, gate width px) by mean PSNR / LPIPS per data set. The sets used to
choose are printed first; ``lytro1g`` (real captures) is scored as a check only, never
to choose: its blur is under ~1 px, where a choice made on it would be a choice made
on two scenes.

Usage::

    python training/tune_guard.py [--weights W.pt] > training/logs/tune_guard.txt
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from refocus.bench.metrics import crop_border, lpips, psnr
from refocus.deblur import deblur
from refocus.deblur.guard import GuardConfig, guard_output

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_deblurnet import cases as eval_cases  # noqa: E402

GRID = [(0, 0, 0), (1, 0, 0), (2, 0, 0), (2, 0.5, 1), (2, 1, 1), (2, 1, 2), (1, 1, 1), (2, 1.5, 1.5), (2, 2, 2),
        (3, 2, 2), (1, 2, 2), (2, 2.5, 2), (2, 3, 2), (3, 1.5, 1.5), (3, 1, 2), (4, 2, 2), (4, 1.5, 1.5), (5, 2, 2)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", type=Path, default=None)
    ap.add_argument("--data", default="lightfield,synthetic,photos-holdout,lytro1g")
    args = ap.parse_args()
    cases, _ = eval_cases(tuple(args.data.split(",")))
    raw = [deblur(c.input, weights=args.weights, guard=False) for c in cases]

    def score(outputs) -> str:
        per = {}
        for c, o in zip(cases, outputs):
            a, b = crop_border(o, c.crop_px), crop_border(c.target, c.crop_px)
            per.setdefault(c.dataset, []).append((psnr(a, b), lpips(a, b)))
        return "  ".join(f"{k}: {np.mean([p for p, _ in v]):.2f} / {np.mean([q for _, q in v]):.3f}" for k, v in per.items())

    print(f"weights: {args.weights or 'shipped'}")
    print("setting (clip radius px, gate from px, gate width px): PSNR / LPIPS per data set")
    print("input", score([c.input for c in cases]), flush=True)
    for r, a, w in GRID:
        if (r, a, w) == (0, 0, 0):
            print((r, a, w), "raw network", score([o for o, _ in raw]), flush=True)
            continue
        cfg = GuardConfig(range_radius_px=r, trust_from_px=a, trust_full_px=a + w)
        print((r, a, w), score([guard_output(c.input, o, d, cfg) for c, (o, d) in zip(cases, raw)]), flush=True)


if __name__ == "__main__":
    main()
