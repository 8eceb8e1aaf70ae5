"""The unsharp mask tuned on each data set of ``refocus bench quality``'s deblur task:
per data set the single (radius, amount) with the best mean PSNR, each case's own best
(what the bench's ``unsharp-oracle`` returns), and the set's setting's gain per case.

    python tools/unsharp_per_dataset.py [DATA]     # DATA as --data, default lytro1g,lightfield,synthetic

Written for docs/deblurnet.md ("Against an unsharp mask tuned on the same data").
"""

from __future__ import annotations

import sys

import numpy as np

from refocus.bench.methods_deblur import ORACLE_RADII_PX, oracle_grid
from refocus.bench.quality import build_cases, parse_data


def main(data: str = "lytro1g,lightfield,synthetic") -> None:
    cases, _ = build_cases(["deblur"], parse_data(data))
    by_set: dict[str, list[dict]] = {}
    for case in cases:
        by_set.setdefault(case.dataset, []).append(oracle_grid(case))
    none = (ORACLE_RADII_PX[0], 0.0)
    for name, grids in by_set.items():
        mean = {k: float(np.mean([g[k] for g in grids])) for k in grids[0]}
        best = max(mean, key=mean.get)
        print(f"{name}: input {mean[none]:.2f} dB; best single setting radius {best[0]} px, amount {best[1]}: {mean[best]:.2f} dB")
        print("  each case's best:", ", ".join(f"({r}, {a})" for r, a in (max(g, key=g.get) for g in grids)))
        print("  the set's setting over the input, per case (dB):", ", ".join(f"{g[best] - g[none]:+.2f}" for g in grids))


if __name__ == "__main__":
    main(*sys.argv[1:2])
