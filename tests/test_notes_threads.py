"""Two UI sessions loading depth at once each get their own notes.

``pipeline.stages.load_disparity`` collected the depth stage's warnings with
``warnings.catch_warnings(record=True)``, which swaps the process's ``showwarning`` and
puts back what it saw on entry: with two sessions inside at once (the UI runs two
handlers at a time), both sessions' warnings went to the later one's list, and the first
to leave put back a recorder that then swallowed every later warning of the process.
"""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest

import refocus.depth as depth_pkg
from refocus.notes import collect_warnings, ignoring_warnings
from refocus.pipeline.config import RefocusConfig
from refocus.pipeline.stages import load_disparity


class _Result:
    def __init__(self, d):
        self._d = d
        self.notes = []
        self.source = "test"
        self.metric = False

    def disparity(self):
        return self._d


def test_two_threads_loading_depth_at_once_keep_their_own_notes(monkeypatch):
    both_inside = threading.Barrier(2, timeout=20)
    first_done = threading.Event()
    img = np.zeros((8, 8, 3), np.float32)

    def fake_get_depth(image_path, **kw):
        both_inside.wait()  # each thread is inside load_disparity's collecting block
        warnings.warn(f"note of {image_path}", UserWarning, stacklevel=1)
        if image_path == "b":
            first_done.wait(20)  # "a" leaves first
        return _Result(np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8))

    monkeypatch.setattr(depth_pkg, "get_depth", fake_get_depth)
    notes = {"a": [], "b": []}

    def run(name):
        load_disparity(img, name, RefocusConfig(), notes[name])
        if name == "a":
            first_done.set()

    hook_before = warnings.showwarning
    threads = [threading.Thread(target=run, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert notes == {"a": ["note of a"], "b": ["note of b"]}
    # Nothing is left catching this thread's warnings once both have left.
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        warnings.warn("after both", UserWarning)
    assert [str(w.message) for w in seen] == ["after both"]
    assert warnings.showwarning is hook_before


def test_the_same_note_is_collected_every_time(tmp_path):
    """Python shows a warning once per code location by default; a second photo with
    the same fault must get its note too (a depth map of another size, resampled)."""
    np.save(tmp_path / "d.npy", np.tile(np.linspace(0, 1, 20, dtype=np.float32), (10, 1)))
    img = np.zeros((20, 40, 3), np.float32)
    got = []
    for _ in range(2):
        notes: list[str] = []
        load_disparity(img, None, RefocusConfig(depth_path=str(tmp_path / "d.npy")), notes)
        got.append([n for n in notes if "resampl" in n])
    assert got[0] and got[0] == got[1], got


def test_the_display_of_warnings_is_put_back_and_callers_filters_come_first():
    """Found by review: the hook stayed installed after a command (the CLI's restore then
    failed), and the filter for refocus's notes was put in front of a caller's "error"."""
    before = warnings.showwarning
    with collect_warnings():
        assert warnings.showwarning is not before
    assert warnings.showwarning is before
    from refocus.depth.focus import warn_if_fractions

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with collect_warnings():
            pass
        with pytest.raises(UserWarning):
            warn_if_fractions(0.5, 0.5, 80, 60)


def test_nested_blocks_and_ignored_warnings():
    with collect_warnings() as outer:
        warnings.warn("outer one", UserWarning)
        with collect_warnings() as inner:
            warnings.warn("inner", UserWarning)
        with ignoring_warnings(DeprecationWarning):
            warnings.warn("dropped", DeprecationWarning)
            warnings.warn("passed on", UserWarning)
    assert [str(w.message) for w in inner] == ["inner"]
    assert [str(w.message) for w in outer] == ["outer one", "passed on"]


def test_a_command_run_in_process_leaves_the_warning_display_as_it_found_it(tmp_path):
    """Review: the CLI's restore of its warning format failed once the notes hook stood
    in front of it, so later warnings of the host process were shown in the CLI's form
    and only once per text."""
    from PIL import Image

    from refocus.cli import main

    Image.fromarray(np.zeros((60, 80, 3), np.uint8)).save(tmp_path / "p.png")
    np.save(tmp_path / "d.npy", np.tile(np.linspace(0, 1, 80, dtype=np.float32), (60, 1)))
    before = warnings.showwarning
    with pytest.raises(SystemExit) as exc:
        main(["render", str(tmp_path / "p.png"), "-d", str(tmp_path / "d.npy"), "-o", str(tmp_path / "o.png"),
              "-k", "2", "--focus", "0.5,0.5"])
    assert exc.value.code in (0, None)
    assert warnings.showwarning is before
