"""What the commands print: help without stray types, text with brackets kept
(issue 13 items 7 and 8)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from refocus.cli import main

COMMANDS = ["refocus", "render", "deblur", "depth", "info", "animate", "batch", "ui", "metrics", "demo"]


def _run(capsys, *argv):
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in argv])
    out = capsys.readouterr()
    return exc.value.code, out.out + out.err


@pytest.mark.parametrize("cmd", [[], *[[c] for c in COMMANDS], ["bench", "quality"], ["bench", "speed"]], ids=lambda c: " ".join(c) or "root")
def test_help_shows_no_type_after_flags(capsys, cmd):
    code, text = _run(capsys, *cmd, "--help")
    assert code == 0
    assert "<bool>" not in text, text
    assert "--help" in text


def test_help_keeps_bracketed_extras(capsys):
    _, text = _run(capsys, "depth", "--help")
    assert "refocus[depth]" in " ".join(text.split()), text


def test_notes_keep_brackets(tmp_path, capsys):
    photo = tmp_path / "p.png"
    Image.fromarray(np.full((24, 32, 3), 90, np.uint8)).save(photo)
    depth = tmp_path / "d[depth].npy"
    np.save(depth, np.tile(np.linspace(0, 1, 32, dtype=np.float32), (24, 1)))
    code, text = _run(capsys, "refocus", photo, "--depth", depth, "-o", tmp_path / "o[1].png", "-k", "1", "--no-deblur")
    assert code in (0, None), text
    assert "d[depth].npy: read as disparity" in text and "o[1].png" in text
    code, text = _run(capsys, "depth", photo, "--depth", depth, "-o", tmp_path / "x.npy")
    assert code in (0, None), text
    assert "d[depth].npy" in text


@pytest.mark.parametrize("cmd", ["render", "refocus"])
@pytest.mark.parametrize(
    "option, named",
    [
        (["--rotation", "nan"], "--rotation"),  # accepted before, and drew a broken kernel
        (["--rotation", "inf"], "--rotation"),
        (["--highlight-gain", "-3"], "--highlight-gain"),  # was "1 validation error for RenderConfig"
        (["--highlight-gain", "nan"], "--highlight-gain"),
        (["--cats-eye", "nan"], "--cats-eye"),
        (["-k", "nan"], "-k"),
    ],
)
def test_a_bad_number_is_refused_naming_its_option(tmp_path, capsys, cmd, option, named):
    photo = tmp_path / "p.png"
    Image.fromarray(np.full((24, 32, 3), 90, np.uint8)).save(photo)
    depth = tmp_path / "d.npy"
    np.save(depth, np.tile(np.linspace(0, 1, 32, dtype=np.float32), (24, 1)))
    out = tmp_path / "o.png"
    extra = ["--no-deblur"] if cmd == "refocus" else []
    k = [] if option[0] == "-k" else ["-k", "5"]
    code, text = _run(capsys, cmd, photo, "--depth", depth, "-o", out, "--focus", "5,5", "--aperture", "polygon", *k, *option, *extra)
    assert code == 2 and not out.exists()
    lines = text.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and named in lines[0], text


def test_a_distance_written_wrongly_is_quoted_whole(tmp_path, capsys):
    """'200cm' used to be quoted as '200c', in a message about '1 numbers like 12'."""
    photo = tmp_path / "p.png"
    Image.fromarray(np.full((24, 32, 3), 90, np.uint8)).save(photo)
    code, text = _run(capsys, "refocus", photo, "-o", tmp_path / "o.png", "--focus-value", "200cm")
    assert code == 2 and "'200cm'" in text and "2.5m" in text and "1 numbers" not in text, text
