"""Paired photo datasets (defocused photo -> all-in-focus), e.g. DPDD and RealDOF.

Layout: ``DIR`` holds one folder of defocused inputs and one of all-in-focus targets,
with images matched by file name (extension ignored, so ``0001.png`` pairs with
``0001.jpg``). Input folders are recognised by the names in :data:`INPUT_DIRS`
(``inputC`` as in DPDD's ``test_c`` folder and RealDOF, ``source``, ``input``,
``blur``, ``blurred``, ``defocus``, ``defocused``), target folders by
:data:`TARGET_DIRS` (``target``, ``gt``, ``groundtruth``, ``sharp``, ``aif``);
``DIR/test_c/`` (the DPDD archive's root) is looked into too. A pair whose two
images differ in size is an error, as are two images of one name in one folder
(``a.jpg`` and ``a.png``); images without a partner are left out with a note.
Every format refocus reads is accepted (8/16-bit PNG, JPEG, TIFF, ...); other
files (a depth map beside the input, say) are ignored unless their name matches
an image on the other side.

These give deblur cases only: there is no disparity, and no focus to render.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from refocus.errors import RefocusError

#: Names of the defocused-input folder (matched without regard to case), DPDD's first.
INPUT_DIRS = ("inputC", "source", "input", "inputs", "blur", "blurred", "defocus", "defocused")
#: Names of the all-in-focus target folder (matched without regard to case).
TARGET_DIRS = ("target", "targets", "gt", "groundtruth", "ground_truth", "sharp", "aif")
_EXTS = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".heic"}


def _sub_folder(folder: Path, names: tuple[str, ...], what: str) -> Path | None:
    wanted = {n.lower() for n in names}
    found = [p for p in sorted(folder.iterdir()) if p.is_dir() and p.name.lower() in wanted]
    if len(found) > 1:
        # Picking one silently could score the wrong images.
        raise RefocusError(f"{folder} has several {what} folders ({', '.join(p.name + '/' for p in found)}); keep one")
    return found[0] if found else None


def find_pairs(folder: str | Path, notes: list[str] | None = None) -> list[tuple[str, Path, Path]]:
    """Matched (name, defocused input, all-in-focus target) files of a paired dataset.

    Parameters
    ----------
    folder:
        Dataset root (see the module docstring for the layout).
    notes:
        When given, a note is appended for images left out for want of a partner.

    Raises
    ------
    RefocusError
        When the folder has no known layout or no names match.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise RefocusError(f"paired dataset folder not found: {folder}")
    root = folder
    src = _sub_folder(root, INPUT_DIRS, "input")
    tgt = _sub_folder(root, TARGET_DIRS, "target")
    if (src is None or tgt is None) and (folder / "test_c").is_dir():
        root = folder / "test_c"
        src, tgt = _sub_folder(root, INPUT_DIRS, "input"), _sub_folder(root, TARGET_DIRS, "target")
    if src is None or tgt is None:
        subs = sorted(p.name + "/" for p in folder.iterdir() if p.is_dir())
        raise RefocusError(
            f"{folder} needs an input folder ({', '.join(INPUT_DIRS)}) and a target folder "
            f"({', '.join(TARGET_DIRS)}) with images of the same names; it has "
            + (", ".join(subs) if subs else "no sub-folders")
        )

    def index(d: Path) -> dict[str, Path]:
        files: dict[str, list[Path]] = {}
        for p in sorted(d.iterdir()):
            if p.is_file() and p.suffix.lower() in _EXTS:
                files.setdefault(p.stem, []).append(p)
        twins = [found for found in files.values() if len(found) > 1]
        if twins:
            # Names pair without their extension: keeping the last of a.jpg and a.png, as
            # this did, scored whichever sorted last, and said nothing.
            raise RefocusError(f"{d} has several images named {twins[0][0].stem!r} "
                               f"({', '.join(p.name for p in twins[0])}); keep one, since names pair without extensions")
        return {stem: found[0] for stem, found in files.items()}

    a, b = index(src), index(tgt)
    for d, files in ((src, a), (tgt, b)):
        if not files:
            raise RefocusError(f"{d} holds no images ({', '.join(sorted(_EXTS))})")
    names = sorted(set(a) & set(b))
    if not names:
        raise RefocusError(f"no images in {src} and {tgt} share a file name (e.g. {min(a)} and {min(b)})")
    if notes is not None:
        for d, files, other in ((src, a, tgt), (tgt, b, src)):
            alone = sorted(set(files) - set(names))
            if alone:
                shown = ", ".join(files[n].name for n in alone[:3]) + (", ..." if len(alone) > 3 else "")
                notes.append(f"paired:{folder.name}: {len(alone)} image(s) in {d.name}/ without a partner in "
                             f"{other.name}/ left out ({shown})")
    return [(n, a[n], b[n]) for n in names]


def paired_cases(folder: str | Path, limit: int | None = None, max_side: int | None = None, crop_px: int = 0,
                 dataset: str | None = None, notes: list[str] | None = None):
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
    dataset:
        The dataset's name in the report (default ``paired:<folder name>``).
    notes:
        Receives a note for each image left out (see :func:`find_pairs`).

    Returns
    -------
    list of :class:`refocus.bench.methods.Case` with ``task="deblur"``.
    """
    from refocus.bench.methods import Case

    folder = Path(folder)
    pairs = find_pairs(folder, notes)
    if limit is not None:
        pairs = pairs[:limit]
    dataset = dataset or f"paired:{Path(os.path.abspath(folder)).name}"
    cases = []
    for name, src, tgt in pairs:
        x, y = _read(src), _read(tgt)
        if x.shape != y.shape:
            raise RefocusError(f"{_shown(src)} is {x.shape[1]}x{x.shape[0]} but {_shown(tgt)} is {y.shape[1]}x{y.shape[0]}; "
                               "the input and target of a pair must be the same size")
        if max_side is not None:
            x, y = _centre_crop(x, max_side), _centre_crop(y, max_side)
        cases.append(Case("deblur", dataset, name, x, y, crop_px=crop_px,
                          meta={"input": os.path.abspath(src), "target": os.path.abspath(tgt)}))
    return cases


def _shown(path: Path) -> str:
    """``inputC/0001.png``: the bare name does not say which side of the pair it is."""
    return f"{path.parent.name}/{path.name}"


def _read(path: Path) -> np.ndarray:
    from refocus.io import read_image

    try:
        return read_image(path)[0]
    except RefocusError as exc:
        raise RefocusError(str(exc).replace(f" {path.name}:", f" {_shown(path)}:", 1)) from None


def _centre_crop(img: np.ndarray, side: int) -> np.ndarray:
    h, w = img.shape[:2]
    th, tw = min(h, side), min(w, side)
    y0, x0 = (h - th) // 2, (w - tw) // 2
    return img[y0 : y0 + th, x0 : x0 + tw]
