"""Faults a user trial found in the command-line tool's shared error, warning and
interrupt handling (Ctrl-C, Pillow's warnings, absurd EXIF values, unreadable files,
TIFF EXIF)."""

from __future__ import annotations

import io
import math
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
from PIL.TiffImagePlugin import IFDRational

from refocus.cli import main
from refocus.errors import RefocusError

REPO = Path(__file__).resolve().parents[1]
SCRIPT = Path(sys.executable).parent / "refocus"  # the console script, as a user runs it


def _run(capsys, *argv):
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in argv])
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    return env


def _photo(path: Path, exif: bytes | None = None, size=(64, 48)) -> Path:
    rgb = (np.random.default_rng(0).random((size[1], size[0], 3)) * 255).astype(np.uint8)
    kwargs = {"exif": exif} if exif is not None else {}
    Image.fromarray(rgb).save(path, **kwargs)
    return path


def _camera_exif(focal_mm=50, f_number=(28, 10), distance_m=5, focal_35=50) -> bytes:
    e = Image.Exif()
    e[0x010F], e[0x0110] = "Canon", "Canon EOS 5D"
    sub = e.get_ifd(0x8769)
    sub[0x829D] = IFDRational(*f_number)
    sub[0x920A] = IFDRational(focal_mm, 1)
    sub[0x9206] = IFDRational(distance_m, 1)
    if focal_35 is not None:
        sub[0xA405] = focal_35
    return e.tobytes()


def _corrupt_exif() -> bytes:
    """An EXIF block whose first directory says 3 entries and holds 1 and a half:
    Pillow warns "Corrupt EXIF data. Expecting to read 12 bytes but only got 2."."""
    import struct

    tiff = b"MM\x00*" + struct.pack(">I", 8) + struct.pack(">H", 3)
    tiff += struct.pack(">HHI4s", 0x0112, 3, 1, b"\x00\x01\x00\x00") + b"\x01\x10"
    return b"Exif\x00\x00" + tiff


# --- 2: Pillow's warnings, one line naming the file ----------------------------------


def test_pillow_corrupt_exif_warning_is_one_line_naming_the_photo(tmp_path, capsys):
    photo = _photo(tmp_path / "bad-exif.jpg", _corrupt_exif())
    code, out, err = _run(capsys, "info", photo)
    assert code in (0, None), err
    assert "Canon" not in out and "file" in out  # the report itself still comes
    lines = [line for line in err.splitlines() if "EXIF" in line]
    assert lines == [f"warning: {photo}: Corrupt EXIF data. Expecting to read 12 bytes but only got 2."], err
    assert "UserWarning" not in err and "TiffImagePlugin" not in err and "warnings.warn" not in err


def test_pillow_warning_in_a_render_is_one_line_once(tmp_path, capsys):
    photo = _photo(tmp_path / "bad-exif.jpg", _corrupt_exif())
    depth = tmp_path / "d.npy"
    np.save(depth, np.tile(np.linspace(0, 1, 64, dtype=np.float32), (48, 1)))
    code, _, err = _run(capsys, "render", photo, "--depth", depth, "-o", tmp_path / "o.png", "-k", "2", "--focus-value", "0.5")
    assert code in (0, None), err
    assert err.count("Corrupt EXIF data") == 1, err  # read twice (input, output EXIF), said once
    assert f"warning: {photo}: Corrupt EXIF data" in err and "UserWarning" not in err


# --- 3: absurd EXIF values ------------------------------------------------------------


@pytest.mark.parametrize("focal", [4294967295, 0])
def test_info_reports_the_other_fields_and_flags_an_absurd_focal_length(tmp_path, capsys, focal):
    photo = _photo(tmp_path / "lens.jpg", _camera_exif(focal_mm=focal))
    code, out, err = _run(capsys, "info", photo)
    assert code in (0, None), err  # was exit 2: "focus distance 5 m must be larger than the focal length..."
    text = " ".join(out.split())
    assert f"FocalLength {focal} mm is not plausible; ignored" in text, text
    assert "f/2.8" in text and "Canon EOS 5D" in text and "5 m (EXIF SubjectDistance)" in text
    assert "error" not in err


def test_info_flags_a_focus_distance_inside_the_lens_and_a_zero_f_number(tmp_path, capsys):
    e = Image.Exif()
    e.load(_camera_exif(f_number=(0, 1), focal_35=2))
    e.get_ifd(0x8769)[0x9206] = IFDRational(1, 100)  # SubjectDistance 1 cm, with a 50 mm lens
    photo = _photo(tmp_path / "odd.jpg", e.tobytes())
    code, out, err = _run(capsys, "info", photo)
    assert code in (0, None), err
    text = " ".join(out.split())
    assert "FNumber 0 is not plausible; ignored" in text
    assert "SubjectDistance 0.01 m is not beyond the focal length 50 mm; ignored" in text
    assert "FocalLengthIn35mmFilm 2 mm with FocalLength 50 mm gives a sensor 865 mm wide" in text  # on the diagonal, 4:3


def test_camera_info_is_consistent_and_names_file_and_tag_when_required(tmp_path):
    from refocus.camera import read_camera_info

    cam = read_camera_info(_photo(tmp_path / "lens.jpg", _camera_exif(focal_mm=4294967295)))
    assert cam.focal_length_mm is None and cam.f_number == pytest.approx(2.8)
    assert cam.strength() is None  # no longer raises
    with pytest.raises(RefocusError, match=r"^lens\.jpg: --f-number needs the focal length, but its EXIF "
                       r"FocalLength 4294967295 mm is not plausible; ignored$"):
        cam.require("focal_length_mm", "sensor_width_mm", purpose="--f-number")
    cam.require("f_number", purpose="--f-number")  # present: no error


def test_real_cameras_are_not_flagged(shared_data):
    from refocus.camera import read_camera_info

    photos = sorted((shared_data / "photos" / "exif-corpus").glob("*.jpg"))
    assert photos
    flagged = {p.name: read_camera_info(p).ignored for p in photos}
    assert not {k: v for k, v in flagged.items() if v}


# --- 4: unreadable files, one clear line ----------------------------------------------


def _truncated_jpeg(path: Path) -> Path:
    e = Image.Exif()
    e.get_ifd(0x8769)[0x9286] = b"ASCII\x00\x00\x00" + b"x" * 6000  # a long UserComment
    buf = io.BytesIO()
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(buf, "JPEG", exif=e.tobytes())
    path.write_bytes(buf.getvalue()[:3000])  # cut inside the EXIF block
    return path


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda p: p.write_bytes(b""), "the file is empty (0 bytes)"),
        (lambda p: p.write_text("not a photo\n" * 20), "not an image"),
        (_truncated_jpeg, "the file is truncated or damaged (Truncated File Read)"),
    ],
    ids=["empty", "text", "truncated"],
)
def test_info_on_an_unreadable_file_says_why_in_one_line(tmp_path, capsys, make, words):
    photo = tmp_path / "photo.jpg"
    make(photo)
    code, out, err = _run(capsys, "info", photo)
    assert code == 2
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: cannot read image photo.jpg: {words}"), err


def test_info_on_a_folder_says_so(tmp_path, capsys):
    folder = tmp_path / "x.jpg"
    folder.mkdir()
    code, _, err = _run(capsys, "info", folder)
    assert code == 2 and "expected an image file, got a folder" in err


# --- 5: EXIF in TIFF files ------------------------------------------------------------


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_tiff_with_exif_reports_its_camera(tmp_path, capsys, bit_depth):
    from refocus.camera import read_camera_info
    from refocus.io import read_image, write_image

    jpg = _photo(tmp_path / "cam.jpg", _camera_exif(focal_mm=35, f_number=(4, 1), distance_m=3, focal_35=52))
    rgb, info = read_image(jpg)
    tif = tmp_path / "cam.tif"
    write_image(tif, rgb, info, bit_depth=bit_depth)  # the project's TIFF writer keeps the EXIF IFD
    cam = read_camera_info(tif)
    assert (cam.f_number, cam.focal_length_mm, cam.focal_length_35mm, cam.focus_distance_m) == (4.0, 35.0, 52.0, 3.0)
    assert cam.sensor_width_mm == pytest.approx(math.hypot(36, 24) * 35 / 52 * 0.8)  # 35 mm terms are diagonal; 4:3
    code, out, _ = _run(capsys, "info", tif)
    assert code in (0, None) and "f/4" in out and "35 mm (52 mm in 35 mm terms)" in out


# --- 1: Ctrl-C ------------------------------------------------------------------------


def _no_traceback(err: str) -> None:
    assert "Traceback" not in err and "KeyboardInterrupt" not in err and "Exception ignored" not in err, err
    assert "leaked" not in err and "resource_tracker" not in err, err


def test_ctrl_c_swallowed_by_a_c_callback_still_stops_the_command(tmp_path):
    """As in numba's compile (llvmlite's object-cache callback): the interrupt raised in a
    C callback cannot propagate; it was reported as "Exception ignored" and the command
    wrote its output with exit 0."""
    script = tmp_path / "cb.py"
    script.write_text(textwrap.dedent("""
        import ctypes, sys, time
        from pathlib import Path
        import numpy as np
        from refocus.cli import app, main

        @app.command("slow-callback")
        def slow_callback(out: Path) -> None:
            from refocus.io import write_image
            def work():
                print("in callback", flush=True)
                time.sleep(20)  # Ctrl-C lands here, inside the C callback
            ctypes.CFUNCTYPE(None)(work)()
            time.sleep(0.5)  # the work after the callback (the compiled kernel...)
            write_image(out, np.zeros((8, 8, 3), np.float32))
            print("wrote", flush=True)

        main(["slow-callback", sys.argv[1]])
    """))
    out = tmp_path / "out.png"
    p = subprocess.Popen([sys.executable, str(script), str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        assert p.stdout.readline().strip() == "in callback"
        time.sleep(0.2)
        p.send_signal(signal.SIGINT)
        stdout, err = p.communicate(timeout=60)
    finally:
        p.kill()
    assert p.returncode == 130, (stdout, err)
    assert err.strip().splitlines() == ["interrupted"], err
    _no_traceback(err)
    assert not out.exists() and "wrote" not in stdout
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".")]  # no temporary file left


def test_ctrl_c_that_becomes_another_exception_while_importing_gives_one_line(tmp_path):
    """Found by CI on 2026-12-07 (the test below, 0.15 s after the start): Ctrl-C that
    lands while a class is created (pydantic's, on import) reaches Python's excepthook
    as a RuntimeError ("Error calling __set_name__ ..."), which printed a traceback
    and exit 1 instead of "interrupted" and 130."""
    script = tmp_path / "starts.py"
    script.write_text(textwrap.dedent("""
        import os, signal
        from refocus import errors
        errors.install_interrupt_handler()

        class Slot:
            def __set_name__(self, owner, name):
                os.kill(os.getpid(), signal.SIGINT)
                for _ in range(1000):  # the handler runs between these bytecodes
                    pass

        class Model:
            field = Slot()

        print("not reached")
    """))
    p = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=_env(), timeout=60)
    assert (p.returncode, p.stdout, p.stderr) == (130, "", "interrupted\n")


@pytest.mark.skipif(not SCRIPT.is_file(), reason="the refocus console script is not installed next to this Python")
def test_ctrl_c_while_the_tool_starts_gives_one_line(tmp_path):
    """Ctrl-C while the package's modules are imported (pydantic, torch...) or the command
    runs: "interrupted", exit 130, no traceback, no output. The signal is sent after the
    module that installs the handling was imported (seen in -X importtime's report): before
    it, only Python itself runs."""
    photo = _photo(tmp_path / "p.png")
    depth = tmp_path / "d.npy"
    np.save(depth, np.tile(np.linspace(0, 1, 64, dtype=np.float32), (48, 1)))
    for delay in (0.0, 0.05, 0.15):
        out = tmp_path / f"out-{delay}.png"
        cmd = [sys.executable, "-X", "importtime", str(SCRIPT), "render", str(photo), "--depth", str(depth), "-o", str(out),
               "-k", "2", "--focus-value", "0.5"]
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
        try:
            for line in p.stderr:
                if line.split("|")[-1].strip() == "refocus.errors":
                    break
            time.sleep(delay)
            p.send_signal(signal.SIGINT)
            _, err = p.communicate(timeout=60)
        finally:
            p.kill()
        err = "\n".join(x for x in err.splitlines() if not x.startswith("import time:"))
        assert p.returncode == 130, (delay, err)
        assert err.strip().splitlines()[-1] == "interrupted", (delay, err)
        _no_traceback(err)
        assert not out.exists()


def _children(pid: int) -> set[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return set()
    return {int(x) for x in text.split()}


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs /proc to see the workers")
def test_ctrl_c_during_batch_stops_the_workers_cleanly(tmp_path):
    """Ctrl-C reaches every process of the terminal: the workers printed KeyboardInterrupt
    tracebacks ("Exception in initializer", "Process SpawnProcess-1") and the resource
    tracker leaked semaphores. Now: one line, exit 130, no worker left, only whole outputs."""
    src = tmp_path / "in"
    src.mkdir()
    for i in range(8):
        _photo(src / f"p{i}.png", size=(64, 48))
        np.save(src / f"p{i}-disparity.npy", np.tile(np.linspace(0, 1, 64, dtype=np.float32), (48, 1)))
    for delay in (0.0, 1.5):
        out = tmp_path / f"out-{delay}"
        cmd = [sys.executable, "-m", "refocus.cli", "batch", str(src), "-o", str(out), "--focus-value", "0.5", "-k", "2",
               "--no-deblur", "-j", "2"]
        # A new session, as a terminal's Ctrl-C goes to the whole foreground process group.
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), start_new_session=True)
        try:
            deadline = time.monotonic() + 60
            while len(_children(p.pid)) < 3 and p.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)  # the resource tracker and two workers are started
            workers = _children(p.pid)
            time.sleep(delay)
            os.killpg(p.pid, signal.SIGINT)
            _, err = p.communicate(timeout=60)
        finally:
            p.kill()
        assert p.returncode == 130, (delay, err)
        assert err.strip().splitlines()[-1] == "interrupted", err
        _no_traceback(err)
        time.sleep(0.2)
        assert not [w for w in workers if Path(f"/proc/{w}").exists() and "zombie" not in Path(f"/proc/{w}/status").read_text()]
        names = os.listdir(out) if out.exists() else []
        assert not [n for n in names if n.startswith(".")], names  # no temporary file left
        for n in names:
            Image.open(out / n).load()  # only complete outputs


def test_ctrl_c_while_workers_start_is_raised_after_they_have_started():
    # Under load, Ctrl-C landed between a worker's fork and the data it reads (the
    # signal taken by another thread, the handler run in the main thread despite its
    # blocked mask): the child printed "EOFError: Ran out of input". Interrupts are
    # now held while workers start, and raised right after.
    import os
    import signal

    from refocus.errors import install_interrupt_handler, interrupts_deferred, uninstall_interrupt_handler

    assert install_interrupt_handler()
    try:
        reached_the_end = False
        with pytest.raises(KeyboardInterrupt):
            with interrupts_deferred():
                os.kill(os.getpid(), signal.SIGINT)
                for _ in range(1000):  # the handler runs at some bytecode boundary here
                    pass
                reached_the_end = True
        assert reached_the_end
    finally:
        uninstall_interrupt_handler()
