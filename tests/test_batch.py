"""Batch: outputs per photo, failures listed not fatal, reruns keep finished outputs."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from refocus.pipeline import RefocusConfig
from refocus.pipeline.batch import find_photos, run_batch


@pytest.fixture()
def folder(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(d / f"{name}.png")
        np.save(d / f"{name}-disparity.npy", np.tile(np.linspace(0, 1, 32, dtype=np.float32), (24, 1)))
    (d / "broken.jpg").write_bytes(b"not an image")
    Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(d / "nodepth.png")
    return d


def test_find_photos_skips_depth_maps(folder):
    assert [p.name for p in find_photos(folder)] == ["a.png", "b.png", "broken.jpg", "nodepth.png"]


def test_batch_runs_lists_failures_and_resumes(folder, tmp_path, monkeypatch):
    import refocus.depth

    # Without a depth network, "nodepth.png" must fail however the depth stage is installed.
    monkeypatch.setattr(refocus.depth, "get_depth", _no_estimate(refocus.depth.get_depth))
    out = tmp_path / "out"
    cfg = RefocusConfig(strength=2, quality="fast")
    s = run_batch(folder, out, cfg, workers=1)
    assert sorted(s.done) == ["a.png", "b.png"]
    assert sorted(n for n, _ in s.failed) == ["broken.jpg", "nodepth.png"]
    assert all(msg and "\n" not in msg for _, msg in s.failed)
    assert (out / "a.png").exists() and (out / "b.png").exists()
    mtime = (out / "a.png").stat().st_mtime_ns
    s2 = run_batch(folder, out, cfg, workers=1)
    assert sorted(s2.kept) == ["a.png", "b.png"] and not s2.done
    assert (out / "a.png").stat().st_mtime_ns == mtime


def _no_estimate(get_depth):
    def wrapped(*a, **k):
        k["allow_estimate"] = False
        return get_depth(*a, **k)

    return wrapped


def test_batch_refuses_same_folder_and_empty(folder, tmp_path):
    from refocus.errors import RefocusError

    with pytest.raises(RefocusError, match="must differ"):
        run_batch(folder, folder, RefocusConfig(strength=2))
    (tmp_path / "empty").mkdir()
    with pytest.raises(RefocusError, match="no photos"):
        run_batch(tmp_path / "empty", tmp_path / "o", RefocusConfig(strength=2))


@pytest.mark.slow
def test_batch_in_parallel_processes(folder, tmp_path):
    s = run_batch(folder, tmp_path / "out", RefocusConfig(strength=2, quality="fast"), workers=2)
    assert sorted(s.done) == ["a.png", "b.png"]


@pytest.mark.parametrize("fmt", ["png", "jpg"])
def test_photos_sharing_a_name_each_get_their_own_output(tmp_path, fmt):
    """x.jpg and x.png used to be written to the same x.png, one replacing the other,
    with both reported done."""
    from refocus.io import read_image

    d = tmp_path / "in"
    d.mkdir()
    dark = np.full((24, 32, 3), 40, np.uint8)
    bright = np.full((24, 32, 3), 220, np.uint8)
    Image.fromarray(dark).save(d / "x.jpg", quality=95)
    Image.fromarray(bright).save(d / "x.png")
    np.save(d / "x-disparity.npy", np.tile(np.linspace(0, 1, 32, dtype=np.float32), (24, 1)))
    out = tmp_path / "out"
    cfg = RefocusConfig(strength=2, quality="fast")
    s = run_batch(d, out, cfg, workers=1, fmt=fmt)
    assert sorted(s.done) == ["x.jpg", "x.png"] and not s.failed
    written = sorted(p.name for p in out.iterdir())
    assert written == [f"x-jpg.{fmt}", f"x-png.{fmt}"]
    means = {p.name: float(read_image(p)[0].mean()) for p in out.iterdir()}
    assert means[written[0]] < 0.3 < 0.7 < means[written[1]]
    again = run_batch(d, out, cfg, workers=1, fmt=fmt)
    assert sorted(again.kept) == ["x.jpg", "x.png"] and not again.done


def test_a_second_batch_into_the_same_folder_is_refused_while_the_first_runs(folder, tmp_path):
    # Two batches into one folder each took the other's outputs for missing work and
    # both redid every photo. The folder itself is locked (no lock file left), and the
    # lock goes with the batch.
    import fcntl
    import os

    from refocus.errors import RefocusError

    out = tmp_path / "out"
    out.mkdir()
    cfg = RefocusConfig(strength=2, quality="fast")
    fd = os.open(out, os.O_RDONLY)  # stands for the first batch, still running
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(RefocusError, match="another refocus batch is writing into"):
            run_batch(folder, out, cfg, workers=1)
        assert list(out.iterdir()) == []
    finally:
        os.close(fd)
    s = run_batch(folder, out, cfg, workers=1)
    assert sorted(s.done) == ["a.png", "b.png"]
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]  # nothing else left in the folder
    s = run_batch(folder, out, cfg, workers=1)  # released after the run
    assert sorted(s.kept) == ["a.png", "b.png"]


def test_a_batch_says_what_the_pipeline_noted_for_the_photos_it_did(folder, tmp_path, capsys, monkeypatch):
    """Regression: `refocus refocus` prints its notes (depth guessed from the photo's
    blur, a depth network that could not be had...), the batch printed none for a
    photo done; notes shared by several photos are said once, naming them."""
    import refocus.depth
    from refocus.cli import main

    for f in ("broken.jpg", "nodepth.png"):
        (folder / f).unlink()
    notes_of = {"a.png": ["depth came from somewhere odd", "shared note"], "b.png": ["shared note"]}
    get_depth = refocus.depth.get_depth

    def noted(path, *a, **k):
        r = get_depth(path, *a, **k)
        r.notes.extend(notes_of[Path(path).name])
        return r

    monkeypatch.setattr(refocus.depth, "get_depth", noted)
    s = run_batch(folder, tmp_path / "out", RefocusConfig(strength=2, quality="fast"), workers=1)
    assert ("a.png", "depth came from somewhere odd") in s.notes and ("b.png", "shared note") in s.notes
    with pytest.raises(SystemExit) as exc:
        main(["batch", str(folder), "--output", str(tmp_path / "out2"), "-k", "2", "--workers", "1"])
    err = capsys.readouterr().err
    assert exc.value.code == 0
    assert "note: a.png: depth came from somewhere odd" in err
    assert "note: 2 files (a.png, b.png): shared note" in err
    # Notes with per-photo numbers are listed up to a dozen, then counted.
    from refocus.cli.cmd_batch import _LIST_EACH

    notes_of["a.png"] = [f"resampled from {i} px" for i in range(_LIST_EACH + 3)]
    with pytest.raises(SystemExit) as exc:
        main(["batch", str(folder), "--output", str(tmp_path / "out3"), "-k", "2", "--workers", "1"])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("note: ")]
    assert len(lines) == _LIST_EACH + 1 and "resampled from 0 px" in err and "resampled from 14 px" not in err
    assert re.fullmatch(r"note: \d+ more notes on .*a\.png.* \(`refocus refocus PHOTO` prints a photo's own\)", lines[-1])
