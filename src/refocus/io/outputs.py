"""The one rule every command and the UI apply to the files they are about to write.

* Nothing is ever written over one of the run's inputs (photo, depth map, mask,
  aperture image, weights), whatever name the output was given.
* A file the user named (``-o OUT``) may replace an older file of that name; a file
  written *beside* it that the user did not name (a sidecar, an intermediate) never
  replaces an existing file unless the user asked for it (``--overwrite``): such a
  file may be the user's own, e.g. the ``PHOTO-disparity.png`` that ``batch`` and
  ``refocus`` read as the photo's depth.

Checked before any work, so a refusal costs nothing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from refocus.errors import RefocusError

#: Output formats that hold 16 bits per channel (``--bit-depth 16``); JPEG and WebP hold 8.
SIXTEEN_BIT_SUFFIXES = (".png", ".tif", ".tiff")

#: Aperture names that are shapes, not files (``--aperture``).
APERTURE_SHAPES = ("disc", "circle", "polygon", "blades")


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name the same file (symbolic and hard links included)."""
    a, b = Path(a), Path(b)
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def aperture_input(spec: str | os.PathLike | None) -> Path | None:
    """The file an ``--aperture`` value reads, or None for a named shape."""
    if spec is None or str(spec) in APERTURE_SHAPES:
        return None
    return Path(spec)


#: Quality of JPEG and WebP results unless asked otherwise (``--jpeg-quality``); from 90
#: JPEG keeps full-resolution colour (4:4:4, :func:`refocus.io.image.write_image`).
DEFAULT_JPEG_QUALITY = 95


def check_jpeg_quality(quality, option: str = "JPEG/WebP quality") -> int:
    """Refuse a JPEG/WebP quality outside 1..100 (or not a whole number) in one line
    naming ``option``; every writer and command checks it here, before any work."""
    import numbers

    if isinstance(quality, bool) or not isinstance(quality, numbers.Integral) or not 1 <= quality <= 100:
        raise RefocusError(f"{option} must be a whole number from 1 to 100, got {quality!r}")
    return int(quality)


def check_bit_depth(output: str | os.PathLike, bit_depth: int | None) -> None:
    """Refuse a bit depth asked for (``--bit-depth``) that ``output``'s format cannot hold,
    rather than write fewer bits than asked; ``None`` (the input's depth, as far as the
    format goes) is always accepted."""
    if bit_depth is None:
        return
    if bit_depth not in (8, 16):
        raise RefocusError(f"--bit-depth must be 8 or 16, got {bit_depth}")
    suffix = Path(output).suffix.lower()
    if bit_depth == 16 and suffix not in SIXTEEN_BIT_SUFFIXES:
        fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WebP"}.get(suffix, suffix or "(none)")
        raise RefocusError(
            f"--bit-depth 16 cannot be written to {Path(output).name}: {fmt} holds 8 bits per channel; "
            f"16 bits need {', '.join(SIXTEEN_BIT_SUFFIXES)}"
        )


def check_outputs(
    named: Iterable[str | os.PathLike | None],
    inputs: Iterable[str | os.PathLike | None] = (),
    unnamed: Iterable[str | os.PathLike] = (),
    overwrite: bool = False,
) -> None:
    """Refuse outputs that would write over an input or replace a file nobody named.

    Parameters
    ----------
    named : the output paths the user gave (``None`` entries are ignored).
    inputs : every file the run reads (``None`` entries are ignored).
    unnamed : files written beside the named ones.
    overwrite : allow ``unnamed`` files to replace existing ones (never inputs).

    Raises
    ------
    RefocusError
        One line naming the file and what to do.
    """
    ins = [Path(p) for p in inputs if p is not None]
    unnamed = [Path(p) for p in unnamed]
    outs = [Path(p) for p in named if p is not None] + unnamed
    for out in outs:
        for p in ins:
            if same_file(out, p):
                raise RefocusError(f"refusing to overwrite the input {p.name}; choose another output path")
    # An output that is also one of the files written beside it was replaced by that
    # file after being written (-o DIR/coc.png --save-intermediate DIR: exit 0, the
    # result lost).
    for i, a in enumerate(outs):
        for b in outs[i + 1 :]:
            if same_file(a, b):
                what = "is also a file written beside it" if b in unnamed else "is named twice"
                raise RefocusError(f"output {a} {what}; choose another output name")
    if not overwrite:
        for out in unnamed:
            if out.exists():
                raise RefocusError(
                    f"{out} already exists and would be replaced by a file you did not name; "
                    "move it, choose another output name, or pass --overwrite"
                )
