"""A Lytro folder decoded with fewer views than the benchmark's 9 x 9 is named as such,
not as a capture with a "missing view" (a researcher's 7 x 7 decode read
"Lytro view 01_08 is missing (and 31 more)")."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from refocus.bench.lightfield import load_lytro
from refocus.errors import RefocusError


def _views(folder, n: int, skip=()):
    folder.mkdir()
    img = Image.fromarray(np.full((8, 8, 3), 128, np.uint8))
    for a in range(1, n + 1):
        for b in range(1, n + 1):
            if (a, b) not in skip:
                img.save(folder / f"IMG_0001_{(a - 1) * n + b:03d}_{a:02d}_{b:02d}.png")
    return folder


def test_a_smaller_grid_is_named(tmp_path):
    with pytest.raises(RefocusError, match=r"holds a 7 x 7 grid .* uses 9 x 9"):
        load_lytro(_views(tmp_path / "lf", 7), estimate=False)


def test_a_hole_in_the_grid_is_still_a_missing_view(tmp_path):
    with pytest.raises(RefocusError, match=r"view 03_04 is missing"):
        load_lytro(_views(tmp_path / "lf", 9, skip={(3, 4)}), estimate=False)
