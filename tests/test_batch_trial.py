"""A demanding user's trial of ``refocus batch``: odd names, links, odd options, reruns
with other settings, killed runs. Each test failed before its fix."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from refocus.errors import RefocusError
from refocus.pipeline import RefocusConfig
from refocus.pipeline.batch import run_batch, scan_folder

CFG = RefocusConfig(strength=2, quality="fast")


def _photo(path, value: int | None = None):
    rng = np.random.default_rng(len(path.name))
    rgb = rng.integers(0, 255, (24, 32, 3), dtype=np.uint8) if value is None else np.full((24, 32, 3), value, np.uint8)
    Image.fromarray(rgb).save(path)
    return path


def _depth(path):
    np.save(path, np.tile(np.linspace(0, 1, 32, dtype=np.float32), (24, 1)))
    return path


def _folder(tmp_path, *names: str):
    """``tmp_path/in`` holding each photo of ``names`` with its depth map beside it."""
    d = tmp_path / "in"
    d.mkdir()
    for name in names:
        _photo(d / name)
        _depth(d / f"{name.rsplit('.', 1)[0]}-disparity.npy")
    return d


@pytest.fixture()
def no_estimate(monkeypatch):
    """Photos without a depth map fail ("no depth"), however the depth stage is installed
    (the batches here run in this process: workers=1)."""
    import refocus.depth

    get_depth = refocus.depth.get_depth

    def wrapped(*a, **k):
        k["allow_estimate"] = False
        return get_depth(*a, **k)

    monkeypatch.setattr(refocus.depth, "get_depth", wrapped)


def _run_cli(capsys, *argv):
    from refocus.cli import main

    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in argv])
    out = capsys.readouterr()
    return exc.value.code, out.err


def test_a_photo_with_a_name_too_long_for_its_depth_map_does_not_stop_the_batch(tmp_path, no_estimate):
    # Looking up "<250 characters>-disparity.png" raised ENAMETOOLONG: the whole batch
    # ended with "error: cannot access ...", the other photos not done.
    d = _folder(tmp_path, "a.png")
    long = _photo(d / ("L" * 248 + ".png"))
    s = run_batch(d, tmp_path / "out", CFG, workers=1)
    assert s.done == ["a.png"]
    assert [n for n, _ in s.failed] == [long.name] and "depth" in s.failed[0][1]


def test_a_symlinked_photo_finds_the_depth_map_beside_its_target(tmp_path, no_estimate):
    # A folder of links to chosen photos: each link failed "no depth" although the map
    # lies beside the photo it points to.
    from refocus.depth import find_neighbour_depth

    library = tmp_path / "library"
    library.mkdir()
    _photo(library / "real.png")
    _depth(library / "real-disparity.npy")
    d = tmp_path / "picked"
    d.mkdir()
    (d / "chosen.png").symlink_to(library / "real.png")
    assert find_neighbour_depth(d / "chosen.png") == library / "real-disparity.npy"
    s = run_batch(d, tmp_path / "out", CFG, workers=1)
    assert s.done == ["chosen.png"] and not s.failed


def test_broken_and_looping_links_say_what_they_are(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    (d / "gone.jpg").symlink_to("nowhere.jpg")
    (d / "l1.jpg").symlink_to("l2.jpg")
    (d / "l2.jpg").symlink_to("l1.jpg")
    _, _, failed = scan_folder(d)
    reasons = dict(failed)
    assert reasons["gone.jpg"] == "a broken symbolic link (to nowhere.jpg)"
    assert reasons["l1.jpg"] == reasons["l2.jpg"] == "a symbolic link loop"


@pytest.mark.parametrize("names", [("B.png", "b.png"), ("x.PNG", "x.png")])
def test_photos_whose_names_differ_only_by_case_each_get_their_own_output(tmp_path, names):
    # b.png failed "its output b-png.png is also B.png's; rename one".
    d = tmp_path / "in"
    d.mkdir()
    for value, name in zip((40, 220), names):
        _photo(d / name, value)
        _depth(d / f"{name.rsplit('.', 1)[0]}-disparity.npy")
    out = tmp_path / "out"
    s = run_batch(d, out, CFG, workers=1)
    assert sorted(s.done) == sorted(names) and not s.failed
    written = sorted(p.name for p in out.iterdir())
    assert len(written) == 2 and len({n.casefold() for n in written}) == 2
    again = run_batch(d, out, CFG, workers=1)
    assert sorted(again.kept) == sorted(names) and not again.done


def test_the_format_is_one_whatever_its_spelling(tmp_path):
    # --format .PNG wrote a.PNG, and a rerun with --format png did the photo again
    # into a.png; "png " (a stray space) was refused.
    d = _folder(tmp_path, "a.jpg")
    out = tmp_path / "out"
    assert run_batch(d, out, CFG, workers=1, fmt=".PNG").done == ["a.jpg"]
    assert [p.name for p in out.iterdir()] == ["a.png"]
    assert run_batch(d, out, CFG, workers=1, fmt="png ").kept == ["a.jpg"]
    with pytest.raises(RefocusError, match="unsupported output format heic"):
        run_batch(d, out, CFG, workers=1, fmt="heic")


def test_a_rerun_with_nothing_to_do_removes_a_killed_runs_temporary_file(tmp_path):
    # Only a write into the folder cleaned it: with every output kept, it stayed forever.
    from refocus.io.image import part_prefix

    d = _folder(tmp_path, "a.png")
    out = tmp_path / "out"
    assert run_batch(d, out, CFG, workers=1).done == ["a.png"]
    dead = 2**22 + 12345  # above the kernel's pid_max default: no such process
    stale = out / (part_prefix("b.png", dead) + "abcdefgh.part.png")
    stale.write_bytes(b"half an image")
    s = run_batch(d, out, CFG, workers=1)
    assert s.kept == ["a.png"] and not s.done
    assert not stale.exists()
    assert [p.name for p in out.iterdir()] == ["a.png"]


@pytest.mark.parametrize("suffix, kwargs, match", [
    ("", {}, "empty depth suffix needs"),  # a.png would be both a photo and a.jpg's depth map
    ("/x", {}, "is a path"),
    ("../x", {}, "is a path"),
    ("-disparity.png", {}, "without .png"),
    ("-disparity", {"depth_dir": "missing"}, "not a folder"),
])
def test_a_depth_lookup_that_cannot_work_is_refused_before_any_work(tmp_path, suffix, kwargs, match):
    d = tmp_path / "in"
    d.mkdir()
    _photo(d / "a.jpg")
    _photo(d / "a.png")
    if "depth_dir" in kwargs:
        kwargs = {"depth_dir": tmp_path / kwargs["depth_dir"]}
    with pytest.raises(RefocusError, match=match):
        run_batch(d, tmp_path / "out", CFG, workers=1, depth_suffix=suffix, **kwargs)
    assert not (tmp_path / "out").exists()


def test_more_workers_than_cores_are_not_started(tmp_path, monkeypatch):
    # --workers 1000 started a process per photo, each with its own models in memory.
    import refocus.pipeline.batch as batch

    monkeypatch.setattr(batch, "_cpu_count", lambda: 1)
    d = _folder(tmp_path, "a.png", "b.png")
    with pytest.warns(UserWarning, match="1000 workers asked for, 1 used"):
        s = run_batch(d, tmp_path / "out", CFG, workers=1000)  # one core: in this process
    assert sorted(s.done) == ["a.png", "b.png"]
    with pytest.raises(RefocusError, match="at least 1"):
        run_batch(d, tmp_path / "out2", CFG, workers=-1)


def _xattrs_work(folder) -> bool:
    probe = folder / ".probe"
    probe.write_bytes(b"")
    try:
        os.setxattr(probe, "user.refocus.probe", b"1")
        return True
    except (AttributeError, OSError):
        return False
    finally:
        probe.unlink()


def test_a_rerun_with_other_settings_says_which_outputs_it_kept(tmp_path):
    # A rerun with -k 3 into a folder made with -k 2 kept every output silently: the
    # folder looked done with the new settings.
    if not _xattrs_work(tmp_path):
        pytest.skip("this disk has no extended attributes: nothing is recorded on the outputs")
    d = _folder(tmp_path, "a.png", "b.png")
    out = tmp_path / "out"
    assert sorted(run_batch(d, out, CFG, workers=1).done) == ["a.png", "b.png"]
    same = run_batch(d, out, CFG.model_copy(update={"device": "auto"}), workers=1)
    assert sorted(same.kept) == ["a.png", "b.png"] and same.stale == []
    other = run_batch(d, out, CFG.model_copy(update={"strength": 3.0}), workers=1)
    assert sorted(other.kept) == ["a.png", "b.png"] and not other.done
    assert sorted(other.stale) == [(n, "made with other settings (strength 2.0 -> 3.0)") for n in ("a.png", "b.png")]
    _photo(d / "a.png", 128)  # the photo was edited since
    st = (d / "a.png").stat()
    os.utime(d / "a.png", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    edited = run_batch(d, out, CFG, workers=1)
    assert edited.stale == [("a.png", "the photo changed after this output was made")]
    redo = run_batch(d, out, CFG, workers=1, overwrite=True)
    assert sorted(redo.done) == ["a.png", "b.png"]
    assert run_batch(d, out, CFG, workers=1).stale == []
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]  # no record file in the folder


def test_the_summary_is_short_and_one_line_per_file(tmp_path, capsys):
    # A refusal began with an empty line; 2,000 sidecar files gave 2,000 "skipped" lines;
    # a newline in a file name broke its "failed" line in two.
    code, err = _run_cli(capsys, "batch", tmp_path / "missing", "-o", tmp_path / "out", "-k", "2")
    assert code == 2 and err.startswith("error: not a folder") and err.count("\n") == 1, repr(err)
    d = tmp_path / "in"
    d.mkdir()
    for i in range(30):
        (d / f"notes{i:02d}.txt").write_text("x")
    _photo(d / "a.png")
    _depth(d / "a-disparity.npy")
    (d / "new\nline.jpg").write_bytes(b"not an image")
    code, err = _run_cli(capsys, "batch", d, "-o", tmp_path / "out", "-k", "2", "--quality", "fast", "-j", "1")
    assert code == 1, err
    lines = err.splitlines()
    assert "  not a photo (.txt): 30 files (notes00.txt, notes01.txt, notes02.txt and 27 more)" in lines
    assert not any(line.strip().startswith("notes05.txt") for line in lines)
    failed = [line for line in lines if "line.jpg" in line]
    assert failed and all(line.lstrip().startswith(("new\\nline.jpg", "failed new\\nline.jpg")) for line in failed), err
    assert all("cannot read image new\\nline.jpg: not an image" in line for line in failed), err  # not cut short


def test_an_output_folder_inside_the_input_folder_is_not_a_failure_on_rerun(tmp_path):
    # -o photos/results.jpg: every rerun failed "results.jpg: is a folder, not a photo".
    d = _folder(tmp_path, "a.png")
    out = d / "results.jpg"
    assert run_batch(d, out, CFG, workers=1).done == ["a.png"]
    again = run_batch(d, out, CFG, workers=1)
    assert again.kept == ["a.png"] and not again.failed
    assert ("results.jpg", "the output folder") in again.skipped


def test_photos_failing_alike_print_their_reason_once_live_and_once_in_the_summary(tmp_path, capsys):
    """The ninth trial: four in-focus photos without depth printed the same 350-character
    paragraph eight times (once per photo as it failed, and again per photo in the summary)."""
    d = tmp_path / "in"
    d.mkdir()
    for name in ("a.png", "b.png", "c.png"):
        _photo(d / name)
        _depth(d / f"{name[0]}-disparity.npy")
    code, err = _run_cli(capsys, "batch", d, "-o", tmp_path / "out", "-k", "2", "--focus", "500,500", "-j", "1")
    assert code == 1, err
    reason = "focus point (500, 500) is outside the 32x24 image"
    assert err.count(reason) == 2, err
    assert "  a.png, b.png, c.png: " + reason in err  # review: "and N more" lost the later names
    assert err.count("failed b.png: as a.png") == 1 and err.count("failed c.png: as a.png") == 1
