"""A demanding user's trial of ``refocus batch`` (named depth maps, unreadable input
folders) and of ``refocus animate`` as a videographer would use it. Each test failed
before its fix."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from refocus.pipeline import RefocusConfig
from refocus.pipeline.batch import run_batch

CFG = RefocusConfig(strength=2, quality="fast")


def _photo(path: Path, size=(32, 24)) -> Path:
    rng = np.random.default_rng(len(path.name))
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def _depth(path: Path, size=(32, 24)) -> Path:
    np.save(path, np.tile(np.linspace(0, 1, size[0], dtype=np.float32), (size[1], 1)))
    return path


def _run_cli(capsys, *argv):
    from refocus.cli import main

    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in argv])
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


# --- batch: named depth maps ---------------------------------------------------------


def test_batch_depth_dir_does_not_fall_back_to_the_map_beside_the_photo(tmp_path):
    # --depth-dir D: b.png had no map in D and was silently rendered with
    # b-disparity.npy from beside it, a map the user had not asked for.
    photos, maps = tmp_path / "in", tmp_path / "maps"
    photos.mkdir()
    maps.mkdir()
    for name in ("a", "b"):
        _photo(photos / f"{name}.png")
        _depth(photos / f"{name}-disparity.npy")
    _depth(maps / "a-disparity.npy")
    s = run_batch(photos, tmp_path / "out", CFG, workers=1, depth_dir=maps)
    assert s.done == ["a.png"]
    assert [n for n, _ in s.failed] == ["b.png"]
    why = s.failed[0][1]
    assert "\n" not in why and str(maps) in why and "b-disparity" in why and "--depth-dir" in why, why
    assert "b-disparity.npy beside it is not used" in why, why
    assert not (tmp_path / "out" / "b.png").exists()


def test_batch_depth_suffix_does_not_fall_back_to_the_default_map(tmp_path, capsys):
    # --depth-suffix -depth: b.png had no b-depth.* and was rendered from b-disparity.npy.
    photos = tmp_path / "in"
    photos.mkdir()
    _photo(photos / "a.png")
    _depth(photos / "a-depth.npy")
    _photo(photos / "b.png")
    _depth(photos / "b-disparity.npy")
    code, out, err = _run_cli(
        capsys, "batch", photos, "-o", tmp_path / "out", "--depth-suffix", "-depth", "-k", "2", "--quality", "fast", "-j", "1"
    )
    assert code == 1, err
    assert (tmp_path / "out" / "a.png").exists() and not (tmp_path / "out" / "b.png").exists()
    line = [ln for ln in err.splitlines() if ln.startswith("  b.png:")]
    assert len(line) == 1 and "no depth map b-depth" in line[0] and "--depth-suffix" in line[0], err
    assert "Traceback" not in err


def test_batch_without_depth_options_still_uses_the_map_beside_the_photo(tmp_path):
    # The default lookup is unchanged: PHOTO-disparity.* beside the photo.
    photos = tmp_path / "in"
    photos.mkdir()
    _photo(photos / "a.png")
    _depth(photos / "a-disparity.npy")
    assert run_batch(photos, tmp_path / "out", CFG, workers=1).done == ["a.png"]


def test_batch_help_states_the_depth_map_rule(capsys):
    code, out, _ = _run_cli(capsys, "batch", "--help")
    assert code == 0
    text = " ".join(out.split())
    assert "every photo needs its map there" in text and "no other depth" in text, text


# --- batch: an input folder that cannot be read ---------------------------------------


def test_batch_unreadable_input_folder_is_one_error_line(tmp_path, capsys, monkeypatch):
    # chmod 000 on the folder: the CLI's own path check printed a usage screen
    # ("Usage: ... Error: Invalid value for 'FOLDER': ... is not readable") instead of
    # the project's one line. Simulated, as root reads a chmod 000 folder anyway.
    folder = tmp_path / "locked"
    folder.mkdir()
    _photo(folder / "a.png")
    real_access, real_iterdir = os.access, Path.iterdir

    def access(path, mode, *a, **k):
        if os.fspath(path) == str(folder) and mode & os.R_OK:
            return False
        return real_access(path, mode, *a, **k)

    def iterdir(self):
        if str(self) == str(folder):
            raise PermissionError(13, "Permission denied", str(folder))
        return real_iterdir(self)

    monkeypatch.setattr(os, "access", access)
    monkeypatch.setattr(Path, "iterdir", iterdir)
    code, out, err = _run_cli(capsys, "batch", folder, "-o", tmp_path / "out", "-k", "2")
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1, repr(err)
    assert "Usage" not in err and str(folder) in err and "ermission denied" in err, err
    assert not (tmp_path / "out").exists()


def test_batch_input_folder_that_is_a_file_says_so(tmp_path, capsys):
    f = _photo(tmp_path / "a.png")
    code, _, err = _run_cli(capsys, "batch", f, "-o", tmp_path / "out", "-k", "2")
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: not a folder") and "it is a file" in err, err


# --- animate ---------------------------------------------------------------------------


def _scene(tmp_path: Path) -> tuple[Path, Path]:
    """A 64 x 48 photo whose left half is far (disparity 0) and right half near (1)."""
    rng = np.random.default_rng(3)
    rgb = (np.kron(rng.random((12, 16, 3)), np.ones((4, 4, 1))) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "p.png")
    disp = np.zeros((48, 64), np.float32)
    disp[:, 32:] = 1.0
    np.save(tmp_path / "p-disparity.npy", disp)
    return tmp_path / "p.png", tmp_path / "p-disparity.npy"


def test_animate_focus_ends_can_be_boxes_and_masks(tmp_path, capsys):
    # --from 0,0,20,40 (a box, as --focus takes one) was refused: "focus point must be 2
    # numbers like 12,34"; so was a subject mask.
    from refocus.pipeline.animate import parse_endpoint

    photo, _ = _scene(tmp_path)
    assert parse_endpoint("0,0,20,40") == {"focus_box": (0.0, 0.0, 20.0, 40.0)}
    mask = np.zeros((48, 64), np.uint8)
    mask[:, 40:] = 255
    Image.fromarray(mask).save(tmp_path / "subject.png")
    assert parse_endpoint(str(tmp_path / "subject.png")) == {"focus_mask": str(tmp_path / "subject.png")}
    out = tmp_path / "pull.gif"
    code, _, err = _run_cli(
        capsys, "animate", photo, "--from", "2,2,28,46", "--to", tmp_path / "subject.png", "--frames", "3", "-o", out,
        "-k", "3", "--quality", "fast",
    )
    assert code == 0, err
    assert "focus disparity 0.000 -> 1.000" in err, err
    with Image.open(out) as im:
        assert im.n_frames == 3


def test_animate_bad_focus_ends_name_every_accepted_form(tmp_path, capsys):
    from refocus.errors import RefocusError
    from refocus.pipeline.animate import parse_endpoint

    for bad in ("1,2,3", "near", "1.5"):
        with pytest.raises(RefocusError, match="a box X0,Y0,X1,Y1"):
            parse_endpoint(bad)
    with pytest.raises(RefocusError, match="mask not found"):
        parse_endpoint(str(tmp_path / "missing.png"))


def test_animate_names_every_video_format_it_writes(tmp_path, capsys):
    # The help offered ".mp4 or .gif" and write_animation's refusal said "use .mp4 or
    # .gif", while .webm, .mkv and .mov are written too.
    from refocus.errors import RefocusError
    from refocus.pipeline.animate import write_animation

    with pytest.raises(RefocusError) as exc:
        write_animation(tmp_path / "a.avi", [np.zeros((4, 4, 3), np.float32)] * 2)
    assert all(s in str(exc.value) for s in (".mp4", ".webm", ".mkv", ".mov", ".gif")), exc.value
    code, out, _ = _run_cli(capsys, "animate", "--help")
    text = " ".join(out.split())
    assert code == 0 and all(s in text for s in (".webm", ".mkv", ".mov", "box X0,Y0,X1,Y1")), text


def test_animate_encodes_each_frame_as_it_is_rendered(tmp_path, capsys, monkeypatch):
    # Every frame was kept until the pull was done: 240 frames of a 12 MP photo held
    # 8.8 GB (12 frames at full size peaked at 4.8 GB). A video now takes them one by one.
    import imageio.v2 as imageio

    from refocus.pipeline.refocuser import Refocuser

    photo, _ = _scene(tmp_path)
    events: list[str] = []
    render, get_writer = Refocuser.render, imageio.get_writer

    def logged_render(self, *a, **k):
        events.append("render")
        return render(self, *a, **k)

    def logged_writer(*a, **k):
        w = get_writer(*a, **k)
        append = w.append_data

        def append_data(frame, *x, **y):
            events.append("write")
            return append(frame, *x, **y)

        w.append_data = append_data
        return w

    monkeypatch.setattr(Refocuser, "render", logged_render)
    monkeypatch.setattr(imageio, "get_writer", logged_writer)
    code, _, err = _run_cli(capsys, "animate", photo, "--from", "0", "--to", "1", "--frames", "4", "-o", tmp_path / "p.mp4",
                            "-k", "3", "--quality", "fast")
    assert code == 0, err
    assert events[-8:] == ["render", "write"] * 4, events
    assert "wrote" in err and "4 frames 64x48" in err, err


_SLOW_WRITER = """
import sys, time
import imageio.v2 as imageio
real = imageio.get_writer
def get_writer(*a, **k):
    w = real(*a, **k)
    append = w.append_data
    def append_data(frame, *x, **y):
        print("frame", flush=True)
        time.sleep(0.2)
        return append(frame, *x, **y)
    w.append_data = append_data
    return w
imageio.get_writer = get_writer
from refocus.cli import main
main(sys.argv[1:])
"""


@pytest.mark.parametrize("suffix", [".mp4", ".webm"])
def test_animate_ctrl_c_while_encoding_leaves_nothing_and_one_line(tmp_path, suffix):
    # Ctrl-C while ffmpeg wrote the video: exit 130 and no file, but ffmpeg, left to
    # finish, wrote into the temporary file being removed and printed "Unable to re-open
    # ... for shifting data" and "Error writing trailer" after "interrupted".
    import signal
    import subprocess
    import sys

    photo, _ = _scene(tmp_path)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    script = tmp_path / "slow_writer.py"
    script.write_text(_SLOW_WRITER)
    cmd = [sys.executable, str(script), "animate", str(photo), "--from", "0", "--to", "1", "--frames", "12",
           "-o", str(out_dir / f"pull{suffix}"), "-k", "3", "--quality", "fast"]
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        seen = 0
        for line in p.stdout:
            seen += line.strip() == "frame"
            if seen == 3:
                break
        assert seen == 3, p.stderr.read()
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=120)
    finally:
        p.kill()
    assert p.returncode == 130, err
    assert err.rstrip("\n").splitlines()[-1] == "interrupted", err
    assert "trailer" not in err and "re-open" not in err and "Traceback" not in err, err
    assert list(out_dir.iterdir()) == []


def test_animate_says_a_still_pull_and_the_padded_video_size(tmp_path, capsys):
    # --from equal to --to rendered a still video without a word; an odd-sized photo's
    # video gains an edge pixel (yuv420p) while "wrote" gave the photo's size.
    import imageio.v3 as iio

    photo = _photo(tmp_path / "p.png", size=(33, 25))
    depth = _depth(tmp_path / "p-disparity.npy", size=(33, 25))
    out = tmp_path / "pull.mp4"
    code, _, err = _run_cli(capsys, "animate", photo, "--depth", depth, "--from", "0.4", "--to", "0.4", "--frames", "2",
                            "-k", "3", "--no-deblur", "--quality", "fast", "-o", out)
    assert code == 0, err
    assert "does not move" in err and err.index("does not move") < err.index("wrote")
    frame = iio.imread(out, index=0)
    assert frame.shape[:2] == (26, 34)
    assert "34x26" in err and "33x25" in err
