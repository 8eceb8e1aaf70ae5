"""Reproduce the numbers and pictures of docs/depth.md.

    python docs/img/depth_figures.py            # from the repository root

1. HCI light field (true disparity): degrade the truth like a phone/network map
   (4x smaller, Gaussian sigma 1 px there), bring it back with bilinear resize vs
   ``upsample_to_guide``, and measure the error against the truth.
2. BokehMe photos (soft predicted disparity): render the same refocus with the
   original and with the edge-aligned disparity; save crops at the subject's edge.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from scipy.ndimage import binary_dilation, gaussian_filter, sobel

from refocus.depth.refine import _resize, upsample_to_guide
from refocus.io import read_depth_file, read_image, write_image

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
OUT = Path(__file__).resolve().parent


def hci_numbers() -> None:
    lf = SHARED / "lightfields" / "hci-antinous"
    img, _ = read_image(lf / "input_Cam040.png")
    gt = read_depth_file(lf / "gt_disp_lowres.pfm")
    if gt.shape != img.shape[:2]:
        gt = _resize(gt, img.shape[:2])
    low = gaussian_filter(_resize(gt, (gt.shape[0] // 4, gt.shape[1] // 4)), 1.0)
    t0 = time.perf_counter()
    refined = upsample_to_guide(low, img)
    t_ref = time.perf_counter() - t0
    plain = _resize(low, gt.shape)
    mag = np.hypot(sobel(gt, 0), sobel(gt, 1))
    edges = binary_dilation(mag > 0.5 * (gt.max() - gt.min()) / 10, iterations=4)
    span = float(gt.max() - gt.min())
    for name, d in (("bilinear", plain), ("guided", refined)):
        err = np.abs(d - gt)
        print(
            f"HCI antinous {name:8s}: MAE {err.mean():.4f} px, near depth edges {err[edges].mean():.4f} px, "
            f"bad pixels (>5% of range) {100 * (err > 0.05 * span).mean():.2f} %"
        )
    print(f"(edge band = {100 * edges.mean():.1f} % of the image; guided upsampling took {t_ref:.2f} s)")


def bokehme_figure(n: int, box: tuple[int, int, int, int], focus_xy: tuple[int, int], strength: float) -> None:
    from refocus.pipeline.bokeh import render_bokeh

    img, _ = read_image(SHARED / "photos" / f"bokehme-{n}.jpg")
    soft = read_depth_file(SHARED / "photos" / f"bokehme-{n}-disparity.png")
    soft = (soft - soft.min()) / (soft.max() - soft.min())
    refined = upsample_to_guide(soft, img)
    x0, y0, x1, y1 = box
    tiles = []
    for d in (soft, refined):
        out = render_bokeh(img, d, strength=strength, focus_xy=focus_xy, highlight_gain=0.0, quality="balanced")
        tiles.append(out[y0:y1, x0:x1])
    from refocus.depth.preview import colorize

    depth_tiles = [colorize(d[y0:y1, x0:x1]) for d in (soft, refined)]
    sep = np.ones((y1 - y0, 6, 3), np.float32)
    top = np.concatenate([tiles[0], sep, tiles[1]], axis=1)
    bottom = np.concatenate([depth_tiles[0], sep, depth_tiles[1]], axis=1)
    fig = np.concatenate([top, np.ones((6, top.shape[1], 3), np.float32), bottom], axis=0)
    path = OUT / f"depth_refine_bokehme{n}.png"
    write_image(path, fig)
    print(f"wrote {path.relative_to(OUT.parents[1])}")


if __name__ == "__main__":
    if not SHARED.exists():
        sys.exit(f"shared data not found at {SHARED}")
    hci_numbers()
    bokehme_figure(13, (640, 420, 900, 760), (760, 650), 30.0)
