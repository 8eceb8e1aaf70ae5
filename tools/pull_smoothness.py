"""How smooth is a focus pull on a real photo? Frame-to-frame change over its median.

    python tools/pull_smoothness.py [PHOTO]     # default: ../shared/data/phone-depth/iphone13pro-pug.heic

25 focal planes evenly spaced from normalised disparity 0.9 to 0.05, K 3 px, the photo
prepared at 960 x 720 px, rendered from the input (no deblurring). A step that jumps
well above its neighbours is a visible pop in `refocus animate`. 2026-12-06: the base
(0827544) jumped to 2.10 and 2.18 mid-pull and 4.01 at the far end; after the renderer's
layer and gate fixes it varies smoothly from 0.30 to 1.88, with no isolated jump.
"""

import sys
from pathlib import Path

import numpy as np

from refocus.pipeline import RefocusConfig, Refocuser

photo_path = sys.argv[1] if len(sys.argv) > 1 else str(Path(__file__).resolve().parents[2] / "shared/data/phone-depth/iphone13pro-pug.heic")
r = Refocuser()
cfg = RefocusConfig(strength=3.0, deblur="never")
photo = r.prepare(photo_path, cfg, work_pixels=960 * 720)
fds = np.linspace(0.9, 0.05, 25)
frames = [r.render(photo, cfg, focus_disparity=float(f), strength=3.0, use_all_in_focus=False)[0] for f in fds]
d = np.array([np.abs(b - a).mean() for a, b in zip(frames, frames[1:])])
print(np.round(d / np.median(d), 2))
print("max/median", round(float(d.max() / np.median(d)), 2))
