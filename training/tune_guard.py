"""Choose the DeblurNet guard's parameters (refocus.deblur.guard) on validation data.

Runs the shipped network once on the scoreboard's deblur cases (the light field at half
resolution and the frozen ray-traced synthetic scenes), then scores each guard setting
(clip radius px, gate start px, gate width px) by mean PSNR / LPIPS per data set.
The light field is used as a validation set here (it is never trained on).

Usage::

    python training/tune_guard.py > training/logs/tune_guard.txt
"""

from __future__ import annotations

import numpy as np

from refocus.bench.metrics import crop_border, lpips, psnr
from refocus.bench.quality import build_cases
from refocus.deblur import deblur
from refocus.deblur.guard import GuardConfig, guard_output

GRID = [(0, 0, 0), (1, 0, 0), (0, 2, 2), (1, 2, 2), (1, 1.5, 1.5), (1, 2.5, 1.5), (1, 3, 1), (2, 2, 2),
        (2, 1.5, 2), (2, 2.5, 2), (3, 2, 2), (2, 2, 3), (2, 1, 2), (3, 2.5, 2), (2, 2, 1)]


def main() -> None:
    cases, _ = build_cases(["deblur"], ["lightfield", "synthetic"])
    raw = [deblur(c.input, guard=False) for c in cases]

    def score(outputs) -> str:
        per = {}
        for c, o in zip(cases, outputs):
            a, b = crop_border(o, c.crop_px), crop_border(c.target, c.crop_px)
            per.setdefault(c.dataset, []).append((psnr(a, b), lpips(a, b)))
        return "  ".join(f"{k}: {np.mean([p for p, _ in v]):.2f} / {np.mean([q for _, q in v]):.3f}" for k, v in per.items())

    print("setting (clip radius px, gate from px, gate width px): PSNR / LPIPS per data set")
    print("input", score([c.input for c in cases]))
    for r, a, w in GRID:
        if (r, a, w) == (0, 0, 0):
            print((r, a, w), "raw network", score([o for o, _ in raw]))
            continue
        cfg = GuardConfig(range_radius_px=r, trust_from_px=a, trust_full_px=a + w)
        print((r, a, w), score([guard_output(c.input, o, d, cfg) for c, (o, d) in zip(cases, raw)]))


if __name__ == "__main__":
    main()
