"""``refocus demo``: the README's first command, on the bundled photo."""

from __future__ import annotations

import pytest

from refocus.errors import RefocusError
from refocus.io import read_image
from refocus.pipeline.demo import run_demo

DEMO_FILES = ("near-focus.jpg", "near-focus-coc.png", "near-focus-hexagon.jpg", "far-focus.jpg", "depth.png", "focus-pull.gif")


def test_demo_writes_its_files_and_can_be_rerun(tmp_path):
    out = tmp_path / "refocus-demo"
    written = run_demo(out, frames=2)
    assert sorted(o.path.name for o in written) == sorted(DEMO_FILES)
    near, far = read_image(out / "near-focus.jpg")[0], read_image(out / "far-focus.jpg")[0]
    assert near.shape == far.shape and abs(near - far).mean() > 0.005  # two different focal planes
    run_demo(out, frames=2)  # its own folder: replacing its own files is fine


def test_demo_never_replaces_a_users_file_it_was_not_told_about(tmp_path):
    # `refocus demo -o .` replaced a user's own depth.png / focus-pull.gif in the folder.
    mine = tmp_path / "depth.png"
    mine.write_bytes(b"my own depth map")
    with pytest.raises(RefocusError, match="depth.png already exists.*--overwrite"):
        run_demo(tmp_path, frames=2)
    assert mine.read_bytes() == b"my own depth map"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["depth.png"]  # nothing written
    run_demo(tmp_path, frames=2, overwrite=True)
    assert mine.read_bytes() != b"my own depth map"


def test_demo_output_dir_that_is_a_file_is_refused(tmp_path):
    f = tmp_path / "photo.jpg"
    f.write_bytes(b"x")
    with pytest.raises(RefocusError, match="is a file"):
        run_demo(f, frames=2)


def test_a_folder_an_older_demo_wrote_can_be_rerun(tmp_path):
    # The README's first command, run again after an upgrade: the folder holds the
    # demo's files but not the mark newer versions leave; it is still the demo's.
    out = tmp_path / "refocus-demo"
    run_demo(out, frames=2)
    (out / ".refocus-demo").unlink()
    run_demo(out, frames=2)
    (out / ".refocus-demo").unlink()
    (out / "my-notes.txt").write_text("mine")  # not only the demo's files: not assumed
    with pytest.raises(RefocusError, match="already exists"):
        run_demo(out, frames=2)
