"""Focus pulls: one prepared photo, only the focal plane moves, files are readable."""

from __future__ import annotations

import numpy as np
import pytest

from refocus.errors import RefocusError
from refocus.io import write_image
from refocus.pipeline import RefocusConfig, prepare
from refocus.pipeline.animate import focus_pull, parse_endpoint, write_animation


@pytest.fixture()
def photo(tmp_path):
    rng = np.random.default_rng(3)
    img = np.kron(rng.random((12, 16, 3)), np.ones((4, 4, 1))).astype(np.float32)
    disp = np.zeros((48, 64), np.float32)
    disp[:, 32:] = 1.0
    write_image(tmp_path / "p.png", img)
    np.save(tmp_path / "d.npy", disp)
    return prepare(tmp_path / "p.png", depth_path=str(tmp_path / "d.npy"))


def test_parse_endpoint():
    assert parse_endpoint("10,20") == {"focus_xy": (10.0, 20.0)}
    assert parse_endpoint("0.25") == {"focus_value": 0.25}
    with pytest.raises(RefocusError):
        parse_endpoint("1.5")
    with pytest.raises(RefocusError):
        parse_endpoint("near")


def test_pull_moves_focus_monotonically_and_endpoints_match_stills(photo):
    cfg = RefocusConfig(strength=4, quality="fast")
    frames, fds = focus_pull(photo, cfg, {"focus_value": 0.0}, {"focus_xy": (50, 20)}, frames=5)
    assert len(frames) == 5 and fds[0] == pytest.approx(0.0) and fds[-1] == pytest.approx(1.0, abs=1e-3)
    assert np.all(np.diff(fds) > 0)
    # Same photo, same settings: the last frame is exactly the still focused there.
    still, _ = photo.render(cfg, float(fds[-1]))
    np.testing.assert_array_equal(frames[-1], still)
    # The far half is sharp at the start and blurred at the end, the near half the reverse.
    far0, far1 = frames[0][:, :28].std(), frames[-1][:, :28].std()
    near0, near1 = frames[0][:, 36:].std(), frames[-1][:, 36:].std()
    assert far1 < far0 and near0 < near1


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_write_animation_roundtrip(tmp_path, suffix):
    import imageio.v3 as iio

    frames = [np.full((31, 45, 3), v, np.float32) for v in (0.1, 0.5, 0.9)]
    out = write_animation(tmp_path / f"a{suffix}", frames, fps=5)
    back = iio.imread(out)
    assert back.shape[0] == 3 and abs(back.shape[1] - 31) <= 1 and abs(back.shape[2] - 45) <= 1
    assert abs(float(back[1].mean()) / 255 - 0.5) < 0.05
    with pytest.raises(RefocusError):
        write_animation(tmp_path / "a.avi", frames)


def test_cli_animate(tmp_path, photo, capsys):
    from refocus.cli import main

    write_image(tmp_path / "q.png", photo.image)
    np.save(tmp_path / "q.npy", photo.disparity)
    with pytest.raises(SystemExit) as e:
        main(["animate", str(tmp_path / "q.png"), "--from", "0", "--to", "50,20", "--frames", "3",
              "-o", str(tmp_path / "pull.gif"), "--depth", str(tmp_path / "q.npy"), "-k", "3", "--quality", "fast"])
    assert e.value.code == 0, capsys.readouterr().err
    assert (tmp_path / "pull.gif").stat().st_size > 0
    with pytest.raises(SystemExit) as e:
        main(["animate", str(tmp_path / "q.png"), "--from", "0", "--to", "1", "-o", str(tmp_path / "pull.txt"), "--depth", str(tmp_path / "q.npy")])
    assert e.value.code == 2 and "unsupported output format" in capsys.readouterr().err


def _run_cli(capsys, *argv):
    from refocus.cli import main

    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in argv])
    out = capsys.readouterr()
    return exc.value.code, out.out + out.err


def _forbid_depth_work(monkeypatch, tmp_path):
    """A photo with a depth file whose loading fails loudly: a refusal must come before it."""
    write_image(tmp_path / "p.png", np.full((20, 30, 3), 0.5, np.float32))
    np.save(tmp_path / "d.npy", np.tile(np.linspace(0, 1, 30, dtype=np.float32), (20, 1)))

    from refocus.pipeline import core, refocuser

    def no_depth(*a, **k):
        raise AssertionError("depth work started before a bad setting was refused")

    for module in (core, refocuser):
        monkeypatch.setattr(module, "default_refocuser", lambda: refocuser.Refocuser(depth=no_depth))


def test_a_bad_frame_rate_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    # --fps 0 used to be refused only after every frame was rendered.
    _forbid_depth_work(monkeypatch, tmp_path)
    code, text = _run_cli(capsys, "animate", tmp_path / "p.png", "--depth", tmp_path / "d.npy", "--from", "0.1", "--to", "0.9", "-o", tmp_path / "a.gif", "--fps", "0")
    assert code == 2 and "--fps" in text and "rendering frames" not in text
    assert not (tmp_path / "a.gif").exists()


@pytest.mark.parametrize("command", [["animate", "--from", "5000,5", "--to", "0.3"], ["refocus", "--focus", "5000,5"]])
def test_a_focus_point_outside_the_photo_is_refused_before_depth_work(tmp_path, capsys, monkeypatch, command):
    # The point was checked only after the depth (and for a pull, a progress bar was
    # already on screen): seconds to minutes of work for a typo.
    _forbid_depth_work(monkeypatch, tmp_path)
    code, text = _run_cli(capsys, command[0], tmp_path / "p.png", "--depth", tmp_path / "d.npy", *command[1:], "-o", tmp_path / ("a.gif" if command[0] == "animate" else "a.png"))
    assert code == 2 and "outside the 30x20 image" in text and "rendering frames" not in text


def test_a_bad_focus_end_is_reported_before_the_frames_progress(tmp_path, capsys):
    # A distance on a photo without metric depth fails when the ends are resolved;
    # that now happens before the progress bar for the frames is shown.
    img = np.full((20, 30, 3), 0.5, np.float32)
    write_image(tmp_path / "p.png", img)
    np.save(tmp_path / "d.npy", np.tile(np.linspace(0, 1, 30, dtype=np.float32), (20, 1)))
    code, text = _run_cli(capsys, "animate", tmp_path / "p.png", "--depth", tmp_path / "d.npy", "--from", "2m", "--to", "0.3", "-o", tmp_path / "a.gif")
    assert code == 2 and "rendering frames" not in text, text


def test_frames_kept_as_8_bit_are_the_written_frames(photo, tmp_path):
    # animate kept every frame as float32 until the end (24 full-size 12 MP frames:
    # 3.5 GB); it now keeps them as the 8-bit frames it writes, a quarter of that.
    import imageio.v3 as iio

    cfg = RefocusConfig(strength=4, quality="fast")
    f32, fds = focus_pull(photo, cfg, {"focus_value": 0.0}, {"focus_value": 1.0}, frames=3)
    u8, fds8 = focus_pull(photo, cfg, {"focus_value": 0.0}, {"focus_value": 1.0}, frames=3, as_uint8=True)
    assert all(f.dtype == np.uint8 for f in u8) and np.array_equal(fds, fds8)
    for a, b in zip(f32, u8):
        np.testing.assert_array_equal(np.round(np.clip(a, 0, 1) * 255).astype(np.uint8), b)
    write_animation(tmp_path / "a.gif", f32, fps=5)
    write_animation(tmp_path / "b.gif", u8, fps=5)
    np.testing.assert_array_equal(iio.imread(tmp_path / "a.gif"), iio.imread(tmp_path / "b.gif"))
