"""Issue 18, item 5: every entry of a batch folder is accounted for, resume verifies
what it keeps, and workers die with their parent."""

from __future__ import annotations

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

from refocus.pipeline import RefocusConfig
from refocus.pipeline.batch import run_batch

SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.fixture()
def folder(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(d / "a.png")
    np.save(d / "a-disparity.npy", np.tile(np.linspace(0, 1, 32, dtype=np.float32), (24, 1)))
    return d


def test_every_entry_is_done_skipped_or_failed_with_a_reason(folder, tmp_path):
    (folder / "x.jpg").mkdir()  # a folder named like a photo
    (folder / "notes.txt").write_text("hello")
    (folder / ".hidden.png").write_bytes(b"")
    (folder / "sub").mkdir()
    s = run_batch(folder, tmp_path / "out", RefocusConfig(strength=2, quality="fast"), workers=1)
    assert s.done == ["a.png"]
    failed = dict(s.failed)
    skipped = dict(s.skipped)
    assert "folder" in failed["x.jpg"]
    assert set(skipped) == {"a-disparity.npy", "notes.txt", ".hidden.png", "sub"}
    assert all(skipped.values())
    accounted = set(s.done) | set(s.kept) | set(failed) | set(skipped)
    assert accounted == {p.name for p in folder.iterdir()}


@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_resume_redoes_an_empty_or_undecodable_output(folder, tmp_path, damage):
    out = tmp_path / "out"
    cfg = RefocusConfig(strength=2, quality="fast")
    s = run_batch(folder, out, cfg, workers=1)
    assert s.done == ["a.png"]
    good = (out / "a.png").read_bytes()
    (out / "a.png").write_bytes(b"" if damage == "empty" else good[: len(good) // 2])
    s2 = run_batch(folder, out, cfg, workers=1)
    assert s2.done == ["a.png"] and not s2.kept
    assert s2.redone and s2.redone[0][0] == "a.png"
    assert (out / "a.png").stat().st_size > 0
    s3 = run_batch(folder, out, cfg, workers=1)
    assert s3.kept == ["a.png"] and not s3.done


def test_workers_exit_when_the_parent_is_killed(tmp_path):
    script = textwrap.dedent(
        f"""
        import os, sys, time
        sys.path.insert(0, os.environ.get('REFOCUS_TEST_SRC', {SRC!r}))
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor
        from refocus.pipeline.batch import _init_worker
        if __name__ == "__main__":
            import inspect
            args = (os.getpid(),) if inspect.signature(_init_worker).parameters else ()
            pool = ProcessPoolExecutor(1, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                                       initargs=args)
            worker = pool.submit(os.getpid).result()  # the worker is up and initialised
            pool.submit(time.sleep, 120)  # a long photo
            print(worker, flush=True)
            time.sleep(120)
        """
    )
    script_path = tmp_path / "parent.py"
    script_path.write_text(script)
    parent = subprocess.Popen([sys.executable, str(script_path)], stdout=subprocess.PIPE, text=True)
    try:
        worker = int(parent.stdout.readline())
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _alive(worker):
            time.sleep(0.1)
        alive = _alive(worker)
        if alive:
            os.kill(worker, signal.SIGKILL)
        assert not alive, "the worker outlived its killed parent"
    finally:
        if parent.poll() is None:
            parent.kill()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            state = next(line for line in f if line.startswith("State:"))
        return "Z" not in state.split()[1]  # a zombie has exited
    except (OSError, StopIteration):
        return False


def test_batch_checks_free_space_before_starting(folder, tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    from refocus.errors import RefocusError

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 100, 100))
    with pytest.raises(RefocusError, match="free"):
        run_batch(folder, tmp_path / "out", RefocusConfig(strength=2, quality="fast"), workers=1)
    assert not list((tmp_path / "out").iterdir())
