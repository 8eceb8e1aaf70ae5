"""Regenerate the README's result picture, ``docs/img/readme-result.jpg``.

    python tools/readme_image.py        # from the repository root

Runs ``refocus demo`` into a temporary folder and lays the bundled input and the demo's
near focus (disc), near focus (6 blades, boosted highlights) and far focus side by side,
each 320 px wide, 10 px apart on white.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from PIL import Image

from refocus.pipeline.demo import demo_files

OUT = Path(__file__).resolve().parents[1] / "docs" / "img" / "readme-result.jpg"
WIDTH_PX, GAP_PX = 320, 10


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["refocus", "demo", "-o", tmp, "--frames", "2"], check=True)
        photo, _ = demo_files()
        panels = [Image.open(p).convert("RGB") for p in
                  (photo, *(Path(tmp) / n for n in ("near-focus.jpg", "near-focus-hexagon.jpg", "far-focus.jpg")))]
    panels = [p.resize((WIDTH_PX, round(p.height * WIDTH_PX / p.width)), Image.LANCZOS) for p in panels]
    height = max(p.height for p in panels)
    sheet = Image.new("RGB", (len(panels) * WIDTH_PX + (len(panels) - 1) * GAP_PX, height), "white")
    for i, p in enumerate(panels):
        sheet.paste(p, (i * (WIDTH_PX + GAP_PX), 0))
    sheet.save(OUT, quality=90)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
