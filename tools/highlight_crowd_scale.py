"""How much of the highlight boost real photos' clipped pixels get, for crowd windows
of 1/64 (the shipped radius), 1/128 and 1/256 of the long side: the mean gain over
pixels above the clip threshold, per photo (RenderConfig's default threshold and gain).

    python tools/highlight_crowd_scale.py PHOTO... [--crops OUT.png]

Written for the 2026-12-07 finding in refocus.render.highlights ("Known limit"): the
pale petals of the Motorola Lens Blur photo glow when blurred. ``--crops`` writes, per
photo, its largest clipped regions (120 px crops) to look at what was boosted.
"""

from __future__ import annotations

import sys

import numpy as np

from refocus.io import read_image
from refocus.io.color import srgb_to_linear
from refocus.render import RenderConfig
from refocus.render.backends import cpu_backend
from refocus.render.highlights import Booster, _luminance

FRACTIONS = (64, 128, 256)


def gains(image: np.ndarray) -> tuple[float, list[float]]:
    """(share of clipped pixels, mean gain on them for each window in FRACTIONS)."""
    cfg = RenderConfig()
    y = np.ascontiguousarray(_luminance(srgb_to_linear(image), -1), np.float32)
    long_side = max(image.shape[:2])
    be = cpu_backend()
    b = Booster(cfg.highlight_threshold, cfg.highlight_gain, long_side)
    clipped = y > b.t
    out = []
    for frac in FRACTIONS:
        b.radius_px = max(1.0, long_side / frac)
        out.append(float(np.asarray(b.gain(b.crowd(y, be)))[clipped].mean()) if clipped.any() else 0.0)
    return float(clipped.mean()), out


def crops(image: np.ndarray, n: int = 4, size: int = 120) -> np.ndarray:
    """The ``n`` largest clipped regions of ``image``, ``size`` px crops side by side."""
    from scipy import ndimage

    y = _luminance(image, -1)  # of the sRGB values: the threshold is an sRGB luminance
    lab, k = ndimage.label(y > RenderConfig().highlight_threshold)
    sizes = ndimage.sum(np.ones_like(y), lab, range(1, k + 1))
    tiles = []
    for i in np.argsort(-sizes)[:n]:
        cy, cx = (int(v) for v in ndimage.center_of_mass(lab == i + 1))
        y0 = int(np.clip(cy - size // 2, 0, max(0, image.shape[0] - size)))
        x0 = int(np.clip(cx - size // 2, 0, max(0, image.shape[1] - size)))
        tile = np.zeros((size, size, 3), np.float32)
        part = image[y0 : y0 + size, x0 : x0 + size]
        tile[: part.shape[0], : part.shape[1]] = part
        tiles.append(tile)
    tiles += [np.zeros((size, size, 3), np.float32)] * (n - len(tiles))
    return np.concatenate(tiles, 1)


def main(argv: list[str]) -> None:
    out_crops = None
    if "--crops" in argv:
        i = argv.index("--crops")
        out_crops, argv = argv[i + 1], argv[:i] + argv[i + 2 :]
    rows, strips = [], []
    for path in argv:
        try:
            image = read_image(path)[0]
        except Exception as exc:  # a corpus file Pillow cannot decode
            print(f"{path}: skipped ({exc})")
            continue
        share, g = gains(image)
        if share * image.shape[0] * image.shape[1] < 20:
            continue
        rows.append(g)
        print(f"{path.split('/')[-1][:32]:32s} {max(image.shape[:2]):5d} px  clipped {100 * share:5.2f} %  "
              + "  ".join(f"1/{f} {v:.2f}" for f, v in zip(FRACTIONS, g)))
        if out_crops:
            strips.append(crops(image))
    r = np.asarray(rows)
    print(f"{len(r)} photos: mean gain " + ", ".join(f"1/{f} {v:.2f}" for f, v in zip(FRACTIONS, r.mean(0)))
          + "; photos whose clipped pixels average a gain over 1: " + ", ".join(f"1/{f} {v}" for f, v in zip(FRACTIONS, (r > 1).sum(0))))
    if out_crops and strips:
        from PIL import Image

        Image.fromarray((np.clip(np.concatenate(strips, 0), 0, 1) * 255 + 0.5).astype(np.uint8)).save(out_crops)


if __name__ == "__main__":
    main(sys.argv[1:])
