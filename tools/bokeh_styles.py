"""The bokeh of one point light behind the focal plane (left of each pair) and one in
front of it (right), for the aperture's rim and ring settings: the figure
docs/img/bokeh-rim-ring.png.

    python tools/bokeh_styles.py [OUT.png]
"""

from __future__ import annotations

import sys

import numpy as np
from PIL import Image, ImageDraw

from refocus.aperture import ApertureConfig
from refocus.io import linear_to_srgb, write_image
from refocus.render import RenderConfig, render_linear

STYLES = (
    ("even disc", ApertureConfig()),
    ("--rim 1", ApertureConfig(rim=1.0)),
    ("--rim -0.7", ApertureConfig(rim=-0.7)),
    ("--ring 0.5", ApertureConfig(ring=0.5)),
    ("7 blades, --rim 0.8", ApertureConfig(shape="polygon", blades=7, curvature=0.3, rim=0.8)),
)


def main(out: str = "docs/img/bokeh-rim-ring.png") -> None:
    h, w, coc_px = 96, 192, 30.0
    img = np.full((h, w, 3), 0.004, np.float32)
    img[h // 2, w // 4] = img[h // 2, 3 * w // 4] = (250.0, 215.0, 160.0)  # one light each side
    coc = np.where(np.arange(w)[None, :] < w // 2, -coc_px, coc_px).repeat(h, 0).astype(np.float32)
    tiles = []
    for label, aperture in STYLES:
        lin = render_linear(img, coc, RenderConfig(aperture=aperture, highlight_gain=0.0, quality="high"))
        tile = Image.fromarray((np.clip(linear_to_srgb(np.clip(lin, 0, 1)), 0, 1) * 255 + 0.5).astype(np.uint8))
        ImageDraw.Draw(tile).text((4, 2), label, fill=(200, 200, 200))
        tiles.append(np.asarray(tile))
    sheet = np.concatenate(tiles, axis=0).astype(np.float32) / 255
    write_image(out, sheet)
    print(f"wrote {out}: behind the focal plane (left), in front of it (right); CoC {coc_px:g} px")


if __name__ == "__main__":
    main(*sys.argv[1:])
