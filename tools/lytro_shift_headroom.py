"""Issue 15 experiment: is the sharpening the lytro1g deblur cases reward a property of how
the benchmark shifts the views?

    python tools/lytro_shift_headroom.py        # from the repository root, needs ../shared (1 min)

The deblur task's input is the capture refocused by shift-and-add: each view shifted by
``s * (u - c)`` px with a cubic B-spline (``refocus.bench.lightfield.shift_image``), then
averaged over a disc of R view steps; the target is the centre view, never shifted. At
the Lytro's sub-pixel focus disparities every shift is fractional, and a spline shift
damps the highest frequencies a little (most at half a pixel). This script builds the same
12 inputs twice, with the benchmark's spline shift and with an exact band-limited one (a
phase ramp in the Fourier domain on a mirror-padded view), and prints, for each, the
input's PSNR against the target and the gain of the best mild unsharp mask (radius
0.5-1 px, amount 0.05-0.3, chosen per case on the target: an upper bound). The
benchmark's protocol is not changed by it. Results: docs/deblurnet.md, "The Lytro bar".
"""

from __future__ import annotations

import numpy as np

from refocus.bench import lightfield as lf_mod
from refocus.bench.metrics import crop_border, psnr
from refocus.deblur.classical import unsharp_mask

RADII_PX = (0.5, 0.75, 1.0)
AMOUNTS = (0.05, 0.1, 0.2, 0.3)
PAD_PX = 32


def fourier_shift(img: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """``img(x - dx, y - dy)`` by a phase ramp: no damping of any frequency below
    Nyquist. Mirror padding keeps the wrap-around away from the frame."""
    p = np.pad(img, ((PAD_PX, PAD_PX), (PAD_PX, PAD_PX), (0, 0)), mode="symmetric").astype(np.float64)
    h, w = p.shape[:2]
    ramp = np.exp(-2j * np.pi * (np.fft.rfftfreq(w)[None, :] * dx + np.fft.fftfreq(h)[:, None] * dy))
    out = np.stack([np.fft.irfft2(np.fft.rfft2(p[..., c]) * ramp, s=(h, w)) for c in range(p.shape[2])], axis=-1)
    return out[PAD_PX:-PAD_PX, PAD_PX:-PAD_PX].astype(np.float32)


def main() -> None:
    for name in ("lytro1g-0001", "lytro1g-0002"):
        lf = lf_mod.load_lytro(f"../shared/data/lightfields/{name}")
        d = lf.disparity
        focus = lf_mod.focus_disparities(d)
        centre = lf.centre_view_srgb()
        for r in lf_mod.RADII:
            for fname in ("near", "middle", "far"):
                s = focus[fname]
                crop = lf_mod.crop_border_px(r, d, s)
                target = crop_border(centre, crop)
                cells = []
                for shift in (lf_mod.shift_image, fourier_shift):
                    inp = lf_mod.refocus_srgb(lf, s, r, shift=shift)
                    base = psnr(crop_border(inp, crop), target)
                    best = max((psnr(crop_border(unsharp_mask(inp, rad, a), crop), target), rad, a)
                               for rad in RADII_PX for a in AMOUNTS)
                    cells.append(f"{base:.2f} dB, best unsharp {best[0] - base:+.3f} ({best[1]} px, {best[2]})")
                print(f"{name} R{r:g}-{fname}: spline shift {cells[0]} | exact shift {cells[1]}", flush=True)


if __name__ == "__main__":
    main()
