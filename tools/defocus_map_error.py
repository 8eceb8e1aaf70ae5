"""Issue 15 item 3: how far DeblurNet's defocus map is from the true CoC.

    python tools/defocus_map_error.py [--weights FILE]     # from the repository root

On the deblur cases of ``refocus bench quality`` whose true |CoC| is known (hci-antinous at
half size, R = 2 and 4, three focus planes; the frozen synthetic set; the two lytro1g captures,
whose CoC comes from the estimated disparity, so it is a reference, not a truth), it compares
the network's unsigned defocus map with |K (d - s)| over the case's crop: mean absolute error
(px), Pearson r, the MAE of an all-zero map for scale, and the median reading on flat pixels
(grey gradient magnitude, Gaussian sigma 1 px, in the lowest quarter of the case) against
their median true |CoC| -- the issue's "3-4 px read where the true CoC is 0.2 px"; and the MAE
of the map the pipeline uses, pooled per disparity bin over textured pixels
(``refocus.pipeline.sharpness.pool_blur_by_disparity`` on the min-max normalised disparity).
Results: docs/deblurnet.md, "Defocus map".
"""

from __future__ import annotations

import sys

import numpy as np
from scipy import ndimage

from refocus.bench.quality import build_cases
from refocus.deblur import deblur
from refocus.pipeline.sharpness import pool_blur_by_disparity


def main() -> None:
    weights = sys.argv[sys.argv.index("--weights") + 1] if "--weights" in sys.argv else None
    cases, notes = build_cases(["deblur"], ["lightfield", "synthetic", "lytro1g"])
    for n in notes:
        print("note:", n)
    print("| dataset | cases | MAE px | zero-map MAE px | Pearson r | flat pixels: read / true (median px) | pooled by disparity: MAE px |")
    print("|---|---|---|---|---|---|---|")
    rows: dict[str, list] = {}
    for c in cases:
        _, defocus = deblur(c.input, weights=weights, guard=False)
        true = np.abs(c.coc_px(c.input_focus_disparity))
        d = np.asarray(c.disparity, dtype=np.float32)
        pooled = pool_blur_by_disparity(defocus, (d - d.min()) / max(float(d.max() - d.min()), 1e-12), c.input)
        b = c.crop_px
        pooled = pooled[b:-b or None, b:-b or None]
        read, true = defocus[b:-b or None, b:-b or None], true[b:-b or None, b:-b or None]
        grad = ndimage.gaussian_gradient_magnitude(c.input.mean(axis=2), 1.0)[b:-b or None, b:-b or None]
        flat = grad <= np.percentile(grad, 25)
        rows.setdefault(c.dataset, []).append((np.abs(read - true).mean(), true.mean(), np.corrcoef(read.ravel(), true.ravel())[0, 1],
                                               np.median(read[flat]), np.median(true[flat]), np.abs(pooled - true).mean()))
    for ds, r in rows.items():
        a = np.array(r)
        print(f"| {ds} | {len(r)} | {a[:, 0].mean():.2f} | {a[:, 1].mean():.2f} | {np.nanmean(a[:, 2]):.2f} | {a[:, 3].mean():.2f} / {a[:, 4].mean():.2f} | {a[:, 5].mean():.2f} |")


if __name__ == "__main__":
    main()
