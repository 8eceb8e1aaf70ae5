"""The glow a soft depth step puts around a bright subject, with and without
``refocus.depth.refine.snap_transitions`` (docs/depth.md, "Snapping soft steps").

Found 2026-12-07 on bokehme-13 (focus on the sunlit shoulder, 750,680, K 40): its
predicted disparity rises from 0.17 to 0.76 over 6 px, about 2 px outside the colour
edge, so bright subject pixels took a middle CoC and spread over the blurred water.

The disparity is shrunk to the network's 518 px and brought back by
``upsample_to_guide`` (what a photo without depth gets from Depth Anything), with
``snap=False`` (the former result) and with the snap. The glow is the mean brightness
(sRGB, /255) of the background 2-8 px outside the shoulder, above the same render of
the background alone (the subject painted out with the far background's colour): what
the subject adds there. ``SCALE`` > 1 upsamples the photo first (K scaled with it).

    python tools/depth_edge_glow.py [SCALE] [OUT_DIR]   # writes the crops side by side
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from refocus.depth.refine import _resize, _resize_channels, upsample_to_guide
from refocus.io import linear_to_srgb
from refocus.io.color import srgb_to_linear
from refocus.render import RenderConfig, coc_map, render_linear

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "photos"


def main(scale: int = 1, out_dir: str = "depth-edge-glow") -> None:
    img = np.asarray(Image.open(PHOTOS / "bokehme-13.jpg").convert("RGB"), np.float32) / 255
    d = np.asarray(Image.open(PHOTOS / "bokehme-13-disparity.png")).astype(np.float32)
    d = (d - d.min()) / (d.max() - d.min())
    h, w = img.shape[:2]
    if scale > 1:
        img = np.clip(_resize_channels(img, (h * scale, w * scale)), 0, 1)
    small = _resize(d, (518, round(518 * w / h)))
    fy, fx = 680 * scale, 750 * scale
    box = (slice(500 * scale, 700 * scale), slice(600 * scale, 800 * scale))
    roi = np.zeros(img.shape[:2], bool)
    roi[box] = True

    def render(image, disp):
        coc = coc_map(disp, float(disp[fy, fx]), 40.0 * scale)
        return np.clip(linear_to_srgb(render_linear(srgb_to_linear(image), coc, RenderConfig())), 0, 1)

    crops = [img[box]]
    near = far = subject = None
    for snap in (False, True):
        t = time.perf_counter()
        disp = upsample_to_guide(small, img, snap=snap)
        took = time.perf_counter() - t
        if subject is None:  # the same regions for both
            subject = disp > 0.5
            dist = ndimage.distance_transform_edt(~subject)
            near = roi & (dist > 2 * scale) & (dist <= 8 * scale)
            far = roi & (dist > 25 * scale) & (dist <= 40 * scale)
            alone = img.copy()
            alone[subject] = img[far].mean(axis=0)
            base = render(alone, disp).mean(axis=2)[near].mean() * 255
        res = render(img, disp)
        crops.append(res[box])
        glow = res.mean(axis=2)[near].mean() * 255 - base
        print(f"snap={snap!s:5}: upsampling {took:.2f} s; background next to the shoulder +{glow:.1f}/255 "
              "above the background rendered alone")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    strip = np.concatenate(crops, axis=1)
    Image.fromarray((strip * 255 + 0.5).astype(np.uint8)).save(out / f"bokehme-13-x{scale}.png")
    print(f"wrote {out}/bokehme-13-x{scale}.png (photo | without the snap | with it)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1, *sys.argv[2:3])
