"""Issue 15 experiment: how much is there to gain on the lytro1g deblur cases, and from what?

    python tools/lytro_deblur_headroom.py        # from the repository root, needs ../shared

For each of the 12 lytro1g deblur cases of ``refocus bench quality`` (input: the capture
refocused at R = 2 or 4 view steps, focus near/middle/far; target: the centre view) it prints
PSNR against the target for: the input; the benchmark's unsharp mask (radius 1.5 px, amount
0.3, tuned on synthetic pairs); an unsharp mask tuned on the lytro1g cases themselves (grid
of radius x amount, best mean PSNR over all 12 cases: the issue's "unsharp mask tuned on
those photos"), and tuned on the other capture only (leave one capture out); and an oracle,
the least-squares 3 x 3 linear filter per channel fitted on the case's own target (an upper
bound for any shift-invariant sharpening). Also the 90th percentile of the case's |CoC| from
the estimated disparity. LPIPS is given for the input and the in-sample tuned unsharp mask.
Results: docs/deblurnet.md, "The Lytro bar: what it would take".
"""

from __future__ import annotations

import itertools

import numpy as np

from refocus.bench import quality as q
from refocus.bench.metrics import crop_border, lpips, psnr
from refocus.deblur.classical import UNSHARP_AMOUNT, UNSHARP_RADIUS_PX, unsharp_mask

RADII_PX = (0.5, 0.75, 1.0, 1.5, 2.0)
AMOUNTS = (0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5)


def _oracle_3x3(inp: np.ndarray, tgt: np.ndarray, crop: int) -> np.ndarray:
    """Per channel, the 3 x 3 filter (plus nothing else) minimising the squared error
    to the target over the cropped frame, applied to the input."""
    h, w, _ = inp.shape
    pad = np.pad(inp, ((1, 1), (1, 1), (0, 0)), mode="edge")
    taps = np.stack([pad[dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3)], axis=-1)
    out = np.empty_like(inp)
    for ch in range(3):
        a = taps[crop : h - crop, crop : w - crop, ch].reshape(-1, 9).astype(np.float64)
        b = tgt[crop : h - crop, crop : w - crop, ch].reshape(-1).astype(np.float64)
        coef = np.linalg.lstsq(a, b, rcond=None)[0]
        out[..., ch] = taps[..., ch, :] @ coef
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def main() -> None:
    cases, notes = q._lytro_cases(["deblur"], False, q.Progress())
    if not cases:
        raise SystemExit("; ".join(notes) or "no lytro1g cases")

    def score(img, c):
        return psnr(crop_border(img, c.crop_px), crop_border(c.target, c.crop_px))

    grid = {(r, a): [score(unsharp_mask(c.input, r, a), c) for c in cases] for r, a in itertools.product(RADII_PX, AMOUNTS)}
    best_all = max(grid, key=lambda k: np.mean(grid[k]))
    captures = sorted({c.dataset for c in cases})
    best_other = {}
    for cap in captures:
        idx = [i for i, c in enumerate(cases) if c.dataset != cap]
        best_other[cap] = max(grid, key=lambda k: np.mean([grid[k][i] for i in idx]))
    print(f"unsharp tuned on all 12 cases: radius {best_all[0]} px, amount {best_all[1]}; "
          + "; ".join(f"tuned without {cap.split(':')[-1]}: {best_other[cap]}" for cap in captures))
    print("| case | |CoC| p90 px | input | bench unsharp | tuned unsharp (all) | tuned (other capture) | oracle 3x3 | LPIPS input / tuned |")
    print("|---|---|---|---|---|---|---|---|")
    for i, c in enumerate(cases):
        coc = np.abs(c.strength * (c.disparity - c.input_focus_disparity))
        base = score(c.input, c)
        tuned = unsharp_mask(c.input, *best_all)
        other = grid[best_other[c.dataset]][i]
        lp_in = lpips(crop_border(c.input, c.crop_px), crop_border(c.target, c.crop_px))
        lp_t = lpips(crop_border(tuned, c.crop_px), crop_border(c.target, c.crop_px))
        print(f"| {c.dataset.split(':')[-1]} {c.name} | {np.percentile(coc, 90):.2f} | {base:.2f} "
              f"| {score(unsharp_mask(c.input, UNSHARP_RADIUS_PX, UNSHARP_AMOUNT), c) - base:+.2f} "
              f"| {grid[best_all][i] - base:+.3f} | {other - base:+.3f} | {score(_oracle_3x3(c.input, c.target, c.crop_px), c) - base:+.3f} "
              f"| {lp_in:.4f} / {lp_t:.4f} |")


if __name__ == "__main__":
    main()
