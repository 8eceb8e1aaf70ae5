"""The focal plane in metres on metric depth (a depth-user trial): the summary gave only
a normalised disparity, and a focus distance beyond the whole depth (2.5 m on a map
of 0.23-0.67 m, or a map in the wrong unit) was taken without a word."""

from __future__ import annotations

import numpy as np
import pytest

from test_cli_text import _run  # the CLI run as a user runs it: (exit code, stdout + stderr)
from refocus.pipeline.core import refocus


def _scene(tmp_path):
    rng = np.random.default_rng(2)
    from refocus.io import write_image

    write_image(tmp_path / "p.png", rng.random((40, 60, 3), dtype=np.float32))
    np.save(tmp_path / "d.npy", np.tile(np.linspace(1.0, 3.0, 60, dtype=np.float32), (40, 1)))
    return tmp_path / "p.png", tmp_path / "d.npy"


def test_the_summary_gives_the_focal_plane_in_metres(tmp_path, capsys):
    photo, depth = _scene(tmp_path)
    code, text = _run(capsys, "refocus", photo, "--depth", depth, "--depth-kind", "depth", "--focus-value", "2m",
                      "-k", "3", "--no-deblur", "-o", tmp_path / "o.png")
    assert code in (0, None), text
    assert "-> 2 m (disparity" in text, text


@pytest.mark.parametrize("metres, where", [(10.0, "beyond the farthest"), (0.5, "in front of the nearest")])
def test_a_focus_distance_outside_the_depth_is_noted(tmp_path, metres, where):
    photo, depth = _scene(tmp_path)
    r = refocus(str(photo), depth_path=str(depth), depth_kind="depth", focus_distance_m=metres, strength=3, deblur="never")
    assert r.focus_distance_m == pytest.approx(metres, rel=1e-4)
    assert any(where in n for n in r.notes), r.notes


def test_inside_the_depth_no_note(tmp_path):
    photo, depth = _scene(tmp_path)
    r = refocus(str(photo), depth_path=str(depth), depth_kind="depth", focus_distance_m=2.0, strength=3, deblur="never")
    assert not any("focus distance" in n for n in r.notes)


def test_refocus_and_animate_take_d_for_depth_as_render_and_depth_do(tmp_path, capsys):
    photo, depth = _scene(tmp_path)
    code, text = _run(capsys, "refocus", photo, "-d", depth, "-k", "3", "--no-deblur", "-o", tmp_path / "o.png")
    assert code in (0, None), text
    code, text = _run(capsys, "animate", "--help")
    assert "-d, --depth" in text, text


def test_info_names_the_depth_file_beside_the_photo(tmp_path, capsys):
    from refocus.io import write_image

    write_image(tmp_path / "p.jpg", np.full((20, 30, 3), 0.5, np.float32))
    write_image(tmp_path / "p-disparity.png", np.full((20, 30, 3), 0.5, np.float32))
    code, text = _run(capsys, "info", tmp_path / "p.jpg")
    assert code in (0, None) and "p-disparity.png beside the photo" in text, text
