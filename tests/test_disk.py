"""Issue 18, items 3-4 (and issue 13 item 10): no stray temporary files, all-or-none
multi-file outputs, and disk faults reported as one line naming the user's path, exit 2.

A full disk is simulated by making the write raise ``OSError(ENOSPC)`` (no mounting).
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from refocus.cli import main

H, W = 48, 64
SRC = str(Path(__file__).resolve().parents[1] / "src")


def _run(capsys, *argv):
    with pytest.raises(SystemExit) as exc:
        main(list(map(str, argv)))
    return exc.value.code, capsys.readouterr().err


@pytest.fixture()
def photo(tmp_path):
    p = tmp_path / "photo.png"
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((H, W, 3)) * 255).astype(np.uint8)).save(p)
    return p


@pytest.fixture()
def depth(tmp_path):
    p = tmp_path / "d.npy"
    np.save(p, np.tile(np.linspace(0, 1, W, dtype=np.float32), (H, 1)))
    return p


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def _disk_full(monkeypatch, after_bytes: int = 0):
    """Make Pillow's and numpy's file writes fail as a full disk does."""

    def full(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Image.Image, "save", full)
    monkeypatch.setattr(np, "save", full)


def test_full_disk_is_one_line_naming_the_output_exit_2(tmp_path, photo, depth, capsys, monkeypatch):
    out = tmp_path / "out" / "o.png"
    out.parent.mkdir()
    _disk_full(monkeypatch)
    code, err = _run(capsys, "render", photo, "--depth", depth, "-o", out, "-k", "2", "--focus-value", "0.5")
    assert code == 2, err
    assert err.count("\n") == 1 and str(out) in err and "No space left" in err, err
    assert ".part" not in err
    assert list(out.parent.iterdir()) == []  # no temporary file left


def test_depth_outputs_appear_all_or_none(tmp_path, photo, capsys, monkeypatch):
    """The issue's half-written set: d.npy and d-disparity.png written, the preview not."""
    out = tmp_path / "o" / "d.npy"
    out.parent.mkdir()
    dp = tmp_path / "disp.npy"
    np.save(dp, np.tile(np.linspace(0, 1, W, dtype=np.float32), (H, 1)))
    real_save = Image.Image.save

    def save(self, fp, *a, **k):  # the third file (the RGB preview) hits a full disk
        if self.mode == "RGB":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(self, fp, *a, **k)

    monkeypatch.setattr(Image.Image, "save", save)
    code, err = _run(capsys, "depth", photo, "--depth", dp, "-o", out, "--no-refine")
    assert code == 2 and "d-preview.png" in err, err
    assert list(out.parent.iterdir()) == []


def test_free_space_is_checked_before_the_work(tmp_path, photo, depth, capsys, monkeypatch):
    import shutil
    from collections import namedtuple

    import refocus.pipeline.bokeh

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 100, 100))

    def render(*a, **k):
        raise AssertionError("rendered before checking the free space")

    monkeypatch.setattr(refocus.pipeline.bokeh, "render_bokeh", render)
    out = tmp_path / "o.png"
    code, err = _run(capsys, "render", photo, "--depth", depth, "-o", out, "-k", "2", "--focus-value", "0.5")
    assert code == 2 and str(out) in err and "free" in err, err


@pytest.mark.parametrize("where", ["under_a_file", "missing_under_proc"])
def test_unwritable_output_paths_are_one_line_exit_2(tmp_path, photo, depth, capsys, where):
    if where == "under_a_file":
        f = tmp_path / "file.txt"
        f.write_text("x")
        out = f / "d.npy"
    else:
        if not Path("/proc/self").is_dir():
            pytest.skip("no /proc")
        out = Path("/proc/self/no-such-folder/d.npy")
    code, err = _run(capsys, "depth", photo, "--depth", depth, "-o", out, "--no-refine")
    assert code == 2, err
    assert str(out) in err and ".part" not in err and err.count("\n") == 1, err


def test_write_image_under_a_file_names_the_users_path(tmp_path):
    from refocus.errors import RefocusError
    from refocus.io import write_image

    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(RefocusError, match="file.txt is a file"):
        write_image(f / "o.png", np.zeros((4, 4, 3), np.float32))


def test_os_errors_anywhere_are_one_line_exit_2(tmp_path, photo, capsys, monkeypatch):
    """A disk fault outside an atomic write (e.g. a read-only disk met by a library)."""
    import refocus.camera

    def fail(path):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    monkeypatch.setattr(refocus.camera, "read_camera_info", fail)
    code, err = _run(capsys, "info", photo)
    assert code == 2 and str(photo) in err and "read-only" in err.lower(), err


def test_stale_temporary_file_of_a_dead_process_is_removed_live_ones_kept(tmp_path):
    from refocus.io import write_image

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    from refocus.io.image import part_prefix

    stale = tmp_path / f"{part_prefix('o.png', dead.pid)}abc123xy.part.png"
    live = tmp_path / f"{part_prefix('p.png', os.getppid())}abc123xy.part.png"
    elsewhere = tmp_path / f".q.png.refocus-000000-{dead.pid}-abc123xy.part.png"  # another host's
    other = tmp_path / ".notes.part.png"  # not ours: never touched
    for p in (stale, live, elsewhere, other):
        p.write_bytes(b"x" * 100)
    write_image(tmp_path / "o.png", np.zeros((4, 4, 3), np.float32))
    assert not stale.exists() and live.exists() and elsewhere.exists() and other.exists()


def test_kill_during_a_write_leaves_nothing_after_the_next_run(tmp_path):
    """kill -9 while the temporary file is being written; the next write cleans it."""
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {SRC!r})
        import numpy as np
        from refocus.io import atomic_write_bytes
        def slow(tmp):
            open(tmp, "wb").write(b"partial")
            print("writing", flush=True)
            time.sleep(60)
        atomic_write_bytes({str(tmp_path / "o.png")!r}, slow)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    left = _hidden(tmp_path)
    assert len(left) == 1 and ".refocus-" in left[0]  # what a kill leaves
    from refocus.io import image as image_io

    image_io.write_image(tmp_path / "p.png", np.zeros((4, 4, 3), np.float32))
    assert _hidden(tmp_path) == []
    assert not (tmp_path / "o.png").exists()
