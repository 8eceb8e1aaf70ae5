"""Point lights on a sloping floor, composited with *over* everywhere (left, the
renderer before 2026-12-07 and the UI's preview) and summed away from depth jumps
(right, refocus.render.zone): writes docs/img/smooth-sum-lights.png.

    python tools/smooth_sum_lights.py [OUT.png]
"""

from __future__ import annotations

import sys

import numpy as np
from PIL import Image

from refocus.io.color import linear_to_srgb
from refocus.render import RenderConfig, render_linear


def main(out_path: str = "docs/img/smooth-sum-lights.png") -> None:
    h, w = 240, 360
    yy, xx = np.mgrid[:h, :w]
    img = np.full((h, w, 3), 0.05, np.float32)
    img[..., 0] += 0.03 * ((xx // 12 + yy // 12) % 2)  # a faint floor texture
    for y in (60, 120, 180):
        for x in range(40, 340, 60):
            img[y : y + 2, x : x + 2] = 1.0  # point lights on the floor
    coc = (0.25 * (yy - 120)).astype(np.float32)  # the floor: -30 px far (top) to +30 px near (bottom)
    panels = []
    for smooth_sum in (False, True):
        out = render_linear(img, coc, RenderConfig(smooth_sum=smooth_sum))
        panels.append((np.clip(linear_to_srgb(out), 0, 1) * 255 + 0.5).astype(np.uint8))
    gap = np.full((h, 8, 3), 255, np.uint8)
    Image.fromarray(np.concatenate([panels[0], gap, panels[1]], axis=1)).save(out_path)
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main(*sys.argv[1:])
