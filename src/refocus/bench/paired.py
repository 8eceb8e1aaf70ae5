"""Paired photo datasets (defocused photo -> all-in-focus), e.g. DPDD and RealDOF.

Layouts understood (the first that matches wins), with images matched by file
name (extension ignored, so ``0001.png`` pairs with ``0001.jpg``):

* ``DIR/inputC/*`` and ``DIR/target/*`` (DPDD's ``test_c`` folder, RealDOF);
* ``DIR/source/*`` and ``DIR/target/*``;
* ``DIR/test_c/inputC`` + ``DIR/test_c/target`` (the DPDD archive's root).

These give deblur cases only: there is no disparity, and no focus to render.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from refocus.errors import RefocusError

_LAYOUTS = (("inputC", "target"), ("source", "target"), ("test_c/inputC", "test_c/target"))
_EXTS = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".heic"}


def find_pairs(folder: str | Path) -> list[tuple[str, Path, Path]]:
    """Matched (name, defocused input, all-in-focus target) files of a paired dataset.

    Raises
    ------
    RefocusError
        When the folder has no known layout or no names match.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise RefocusError(f"paired dataset folder not found: {folder}")
    for src_name, tgt_name in _LAYOUTS:
        src, tgt = folder / src_name, folder / tgt_name
        if src.is_dir() and tgt.is_dir():
            break
    else:
        raise RefocusError(f"{folder} has no inputC/ + target/ (or source/ + target/) sub-folders")

    def index(d: Path) -> dict[str, Path]:
        return {p.stem: p for p in sorted(d.iterdir()) if p.is_file() and p.suffix.lower() in _EXTS}

    a, b = index(src), index(tgt)
    names = sorted(set(a) & set(b))
    if not names:
        raise RefocusError(f"no images in {src} and {tgt} share a file name")
    return [(n, a[n], b[n]) for n in names]


def paired_cases(folder: str | Path, limit: int | None = None, max_side: int | None = None, crop_px: int = 0):
    """Deblur cases of a paired dataset.

    Parameters
    ----------
    folder:
        Dataset root (see the module docstring for layouts).
    limit:
        Use only the first ``limit`` pairs (sorted by name).
    max_side:
        Centre-crop both images to at most this many pixels per side (for speed);
        None keeps them whole.
    crop_px:
        Border excluded from the metrics, px.

    Returns
    -------
    list of :class:`refocus.bench.methods.Case` with ``task="deblur"``.
    """
    from refocus.bench.methods import Case
    from refocus.io import read_image

    folder = Path(folder)
    pairs = find_pairs(folder)
    if limit is not None:
        pairs = pairs[:limit]
    cases = []
    for name, src, tgt in pairs:
        x, _ = read_image(src)
        y, _ = read_image(tgt)
        if x.shape != y.shape:
            raise RefocusError(f"{src.name} is {x.shape[1]}x{x.shape[0]} but {tgt.name} is {y.shape[1]}x{y.shape[0]}")
        if max_side is not None:
            x, y = _centre_crop(x, max_side), _centre_crop(y, max_side)
        cases.append(Case("deblur", f"paired:{folder.name}", name, x, y, crop_px=crop_px, meta={"input": str(src), "target": str(tgt)}))
    return cases


def _centre_crop(img: np.ndarray, side: int) -> np.ndarray:
    h, w = img.shape[:2]
    th, tw = min(h, side), min(w, side)
    y0, x0 = (h - th) // 2, (w - tw) // 2
    return img[y0 : y0 + th, x0 : x0 + tw]
