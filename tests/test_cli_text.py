"""What the commands print: help without stray types, text with brackets kept
(issue 13 items 7 and 8)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from refocus.cli import main

COMMANDS = ["refocus", "render", "deblur", "depth", "info", "animate", "batch", "ui", "metrics", "demo"]


def _run(capsys, *argv):
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in argv])
    out = capsys.readouterr()
    return exc.value.code, out.out + out.err


@pytest.mark.parametrize("cmd", [[], *[[c] for c in COMMANDS], ["bench", "quality"], ["bench", "speed"]], ids=lambda c: " ".join(c) or "root")
def test_help_shows_no_type_after_flags(capsys, cmd):
    code, text = _run(capsys, *cmd, "--help")
    assert code == 0
    assert "<bool>" not in text, text
    assert "--help" in text


def test_help_keeps_bracketed_extras(capsys):
    _, text = _run(capsys, "depth", "--help")
    assert "refocus[depth]" in " ".join(text.split()), text


def test_notes_keep_brackets(tmp_path, capsys):
    photo = tmp_path / "p.png"
    Image.fromarray(np.full((24, 32, 3), 90, np.uint8)).save(photo)
    depth = tmp_path / "d[depth].npy"
    np.save(depth, np.tile(np.linspace(0, 1, 32, dtype=np.float32), (24, 1)))
    code, text = _run(capsys, "refocus", photo, "--depth", depth, "-o", tmp_path / "o[1].png", "-k", "1", "--no-deblur")
    assert code in (0, None), text
    assert "d[depth].npy: read as disparity" in text and "o[1].png" in text
    code, text = _run(capsys, "depth", photo, "--depth", depth, "-o", tmp_path / "x.npy")
    assert code in (0, None), text
    assert "d[depth].npy" in text


@pytest.mark.parametrize("cmd", ["render", "refocus"])
@pytest.mark.parametrize(
    "option, named",
    [
        (["--rotation", "nan"], "--rotation"),  # accepted before, and drew a broken kernel
        (["--rotation", "inf"], "--rotation"),
        (["--highlight-gain", "-3"], "--highlight-gain"),  # was "1 validation error for RenderConfig"
        (["--highlight-gain", "nan"], "--highlight-gain"),
        (["--highlight-threshold", "1.5"], "--highlight-threshold"),
        (["--cats-eye", "nan"], "--cats-eye"),
        (["-k", "nan"], "-k"),
    ],
)
def test_a_bad_number_is_refused_naming_its_option(tmp_path, capsys, cmd, option, named):
    photo = tmp_path / "p.png"
    Image.fromarray(np.full((24, 32, 3), 90, np.uint8)).save(photo)
    depth = tmp_path / "d.npy"
    np.save(depth, np.tile(np.linspace(0, 1, 32, dtype=np.float32), (24, 1)))
    out = tmp_path / "o.png"
    extra = ["--no-deblur"] if cmd == "refocus" else []
    k = [] if option[0] == "-k" else ["-k", "5"]
    code, text = _run(capsys, cmd, photo, "--depth", depth, "-o", out, "--focus", "5,5", "--aperture", "polygon", *k, *option, *extra)
    assert code == 2 and not out.exists()
    lines = text.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and named in lines[0], text


def test_a_distance_written_wrongly_is_quoted_whole(tmp_path, capsys):
    """'200cm' used to be quoted as '200c', in a message about '1 numbers like 12'."""
    photo = tmp_path / "p.png"
    Image.fromarray(np.full((24, 32, 3), 90, np.uint8)).save(photo)
    code, text = _run(capsys, "refocus", photo, "-o", tmp_path / "o.png", "--focus-value", "200cm")
    assert code == 2 and "'200cm'" in text and "2.5m" in text and "1 numbers" not in text, text


@pytest.mark.parametrize("cmd, names", [("refocus", "IMAGE"), ("metrics", "A} {B"), ("batch", "FOLDER")])
def test_usage_names_arguments_as_the_help_text_does(capsys, cmd, names):
    # The usage line read "refocus refocus [OPTIONS] {image}" while the text says IMAGE.
    _, text = _run(capsys, cmd, "--help")
    assert f"[OPTIONS] {{{names}}}" in text.splitlines()[0], text.splitlines()[0]


@pytest.mark.parametrize("content", [b"", b"hello, not a photo\n"], ids=["empty", "text"])
def test_refocus_and_info_say_the_same_about_an_unreadable_photo(tmp_path, capsys, content):
    bad = tmp_path / "holiday.jpg"
    bad.write_bytes(content)
    code_r, text_r = _run(capsys, "refocus", bad, "-k", "3", "-o", tmp_path / "o.png")
    code_i, text_i = _run(capsys, "info", bad)
    assert code_r == code_i == 2 and text_r == text_i and text_r.startswith("error: cannot read image holiday.jpg: ")
    assert str(tmp_path) not in text_r and "Error" not in text_r


def test_a_bad_depth_file_is_named_without_its_folder_and_with_the_depth_formats(tmp_path, capsys):
    photo = tmp_path / "p.png"
    Image.fromarray(np.full((24, 32, 3), 90, np.uint8)).save(photo)
    (tmp_path / "d.png").write_text("not a PNG")
    code, text = _run(capsys, "refocus", photo, "--depth", tmp_path / "d.png", "-k", "1", "-o", tmp_path / "o.png")
    assert code == 2 and text.strip() == "error: cannot read depth map d.png: not an image, or not a format refocus reads (8/16-bit PNG, TIFF, .npy, .pfm, EXR)"


def test_info_reads_a_float_tiff_that_the_commands_read(tmp_path, capsys):
    import tifffile

    tifffile.imwrite(tmp_path / "f.tif", np.random.default_rng(0).random((20, 30, 3)).astype(np.float32), photometric="rgb")
    code, text = _run(capsys, "info", tmp_path / "f.tif")
    assert code == 0 and "30x20 px" in text, text


def test_f_number_with_an_absurd_focal_length_names_the_file_and_the_tag(tmp_path):
    # "--f-number needs the focal length and sensor size from EXIF, which this photo
    # lacks" named neither the file nor the EXIF value that was refused.
    from refocus.errors import RefocusError
    from refocus.pipeline import RefocusConfig, prepare

    img = Image.fromarray(np.full((24, 32, 3), 90, np.uint8))
    exif = img.getexif()
    exif.get_ifd(0x8769)[0x920A] = 4294967295  # FocalLength
    exif.get_ifd(0x8769)[0x829D] = 2.8
    img.save(tmp_path / "cam.jpg", exif=exif.tobytes())
    np.save(tmp_path / "d.npy", np.tile(np.linspace(1, 4, 32, dtype=np.float32), (24, 1)))
    cfg = RefocusConfig(depth_path=str(tmp_path / "d.npy"), depth_kind="depth", f_number=2.0, focus_xy=(5, 5))
    photo = prepare(tmp_path / "cam.jpg", cfg)
    with pytest.raises(RefocusError, match=r"cam.jpg: --f-number needs the focal length, but its EXIF FocalLength 4294967295"):
        photo.strength(cfg, photo.focus_disparity(cfg))
