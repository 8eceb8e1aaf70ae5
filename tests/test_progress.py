"""Long work shows which stage runs (brief: progress bars on long work)."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pytest
from PIL import Image

from refocus.cli import main


def test_refocus_command_reports_each_stage_and_deblurnets_windows(tmp_path, monkeypatch, capsys):
    """`refocus refocus` showed a bare spinner for the whole run (5+ minutes at 24 MP,
    most of it in DeblurNet): it now reports the depth, each DeblurNet window and the
    render, through the same stage reports as the web UI."""
    import refocus.cli._console as con

    said: list[tuple[float, str]] = []

    @contextmanager
    def recorder(console, first="reading the photo"):
        yield lambda f, text: said.append((float(f), text))

    monkeypatch.setattr(con, "stage_progress", recorder)
    rng = np.random.default_rng(0)
    photo = tmp_path / "p.png"
    Image.fromarray((rng.random((48, 64, 3)) * 255).astype(np.uint8)).save(photo)
    np.save(tmp_path / "d.npy", np.tile(np.linspace(0, 1, 64, dtype=np.float32), (48, 1)))
    # --focus-value 0.9 asks the blurred far half to be sharp, so DeblurNet runs.
    with pytest.raises(SystemExit) as exc:
        main(["refocus", str(photo), "--depth", str(tmp_path / "d.npy"), "--focus-value", "0.9", "-k", "6",
              "-o", str(tmp_path / "out.png")])
    assert exc.value.code == 0, capsys.readouterr().err
    texts = [t for _, t in said]
    assert texts and texts[0] == "depth", texts
    assert texts[-1] == "rendering the new focus", texts
    fractions = [f for f, _ in said]
    assert fractions == sorted(fractions) and 0.0 < fractions[0] and fractions[-1] < 1.0


def test_stage_progress_shows_a_bar_on_a_terminal_and_no_stray_line_off_it():
    """Off a terminal a stopped rich bar still printed an empty line, so an error after
    it was no longer one line; on a terminal the bar appears at the first stage."""
    import io

    from rich.console import Console

    from refocus.cli._console import stage_progress

    off = io.StringIO()
    with stage_progress(Console(file=off, force_terminal=False)) as said:
        said(0.1, "depth")
    assert off.getvalue() == ""
    on = io.StringIO()
    with stage_progress(Console(file=on, force_terminal=True, width=80)) as said:
        said(0.5, "deblurring (DeblurNet), window 3 of 6")
    assert "window 3 of 6" in on.getvalue()
    quiet = io.StringIO()
    with stage_progress(Console(file=quiet, force_terminal=True, width=80)):
        pass  # refused before the first stage: nothing drawn
    assert quiet.getvalue() == ""


def test_every_commands_progress_bar_stays_off_a_non_terminal(tmp_path, capsys):
    """`refocus deblur` and `refocus animate` drew their bars with rich directly: off a
    terminal the first printed an empty line before its result, the second the bar's
    last state. Every command's bar is now progress_bar's, drawn on a terminal only."""
    from refocus.cli import main

    rng = np.random.default_rng(1)
    photo = tmp_path / "p.png"
    Image.fromarray((rng.random((24, 32, 3)) * 255).astype(np.uint8)).save(photo)
    np.save(tmp_path / "p-disparity.npy", np.tile(np.linspace(0, 1, 32, dtype=np.float32), (24, 1)))
    for argv in (["deblur", str(photo), "-o", str(tmp_path / "aif.png")],
                 ["animate", str(photo), "--from", "0.2", "--to", "0.8", "--frames", "2", "-k", "2", "--no-deblur",
                  "-o", str(tmp_path / "pull.gif")]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        err = capsys.readouterr().err
        assert exc.value.code == 0, err
        lines = err.splitlines()
        assert lines and all(line.strip() for line in lines), lines
        assert not any("━" in line or "%" in line for line in lines), lines
