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
