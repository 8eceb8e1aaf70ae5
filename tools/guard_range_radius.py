"""Issue 15 experiment (2026-12-07, negative): should DeblurNet's guard let the output
leave the input's local range over a window that grows with the blur?

The guard clips the network's output to the input's range within 3 px
(:class:`refocus.deblur.guard.GuardConfig`). A 20 px blur's restored edge can lie
outside the range of a 7 x 7 window of the blurred input, so the clip might hold back
restoration of large blur. Here the window's radius is ``max(3, alpha x defocus)`` px
(the network's own defocus map; radii 3/6/12/24 px), the trust gate unchanged (1 -> 3 px).

    python tools/guard_range_radius.py      # from the repository root; needs ../shared and .trainpool

Result (this session's 2-core AMD EPYC host, shipped weights; PSNR / LPIPS): every wider
window loses on antinous, the bench synthetic set and the real Lens Blur photo, and gains only
on the held-out corpus photos (the training distribution); see docs/deblurnet.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
from eval_deblurnet import cases as eval_cases  # noqa: E402

from refocus.bench.metrics import crop_border, lpips, psnr  # noqa: E402
from refocus.deblur import deblur  # noqa: E402
from refocus.deblur.guard import GuardConfig, _trust  # noqa: E402

GATE = GuardConfig(range_radius_px=3, trust_from_px=1, trust_full_px=3)  # the shipped guard's gate


def guard(img, aif, defocus, alpha: float, max_radius: int):
    radii = [3] + [r for r in (6, 12, 24) if r <= max_radius]
    want = np.maximum(3, alpha * defocus)
    which = np.zeros(defocus.shape, int)
    for i in range(1, len(radii)):
        which[want > radii[i - 1]] = i
    lo, hi = np.zeros_like(img), np.zeros_like(img)
    for i, r in enumerate(radii):
        m = which == i
        if m.any():
            size = (2 * r + 1, 2 * r + 1, 1)
            lo[m] = ndi.minimum_filter(img, size=size)[m]
            hi[m] = ndi.maximum_filter(img, size=size)[m]
    out = np.minimum(np.maximum(aif, lo), hi)
    return np.clip(img + _trust(defocus, GATE)[..., None] * (out - img), 0, 1)


def main() -> None:
    cases, _ = eval_cases(("lightfield", "synthetic", "photos-holdout", "lensblur", "lytro1g"))
    raw = [deblur(c.input, guard=False) for c in cases]

    def score(outs) -> str:
        per: dict[str, list] = {}
        for c, o in zip(cases, outs):
            a, b = crop_border(o, c.crop_px), crop_border(c.target, c.crop_px)
            per.setdefault(c.dataset.split(":")[0], []).append((psnr(a, b), lpips(a, b)))
        return "  ".join(f"{k}: {np.mean([p for p, _ in v]):.3f}/{np.mean([q for _, q in v]):.4f}" for k, v in per.items())

    print("input", score([c.input for c in cases]), flush=True)
    print("raw", score([o for o, _ in raw]), flush=True)
    for alpha, rmax in ((0, 3), (0.5, 6), (0.5, 12), (1, 6), (1, 12), (1, 24), (1.5, 24)):
        print(f"alpha {alpha}, up to {rmax} px:", score([guard(c.input, o, d, alpha, rmax) for c, (o, d) in zip(cases, raw)]),
              flush=True)


if __name__ == "__main__":
    main()
