"""Every kind of input through ``refocus refocus``: formats, modes, limits, bad files.

Each error must be one ``error: ...`` line with a non-zero exit, never a traceback;
the input must never be modified.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest
from PIL import Image

from refocus.cli import main
from refocus.io import read_image

H, W = 48, 64


def _rgb8():
    y, x = np.mgrid[0:H, 0:W]
    return np.stack([(x * 4) % 256, (y * 5) % 256, ((x + y) * 3) % 256], -1).astype(np.uint8)


def _run(capsys, *argv):
    with pytest.raises(SystemExit) as exc:
        main(list(map(str, argv)))
    out = capsys.readouterr()
    return exc.value.code, out.err


@pytest.fixture()
def depth(tmp_path):
    d = np.tile(np.linspace(0, 1, W, dtype=np.float32), (H, 1))
    p = tmp_path / "d.npy"
    np.save(p, d)
    return p


def _sha(p):
    return hashlib.sha256(open(p, "rb").read()).hexdigest()


def _make(tmp_path, kind):
    rgb = _rgb8()
    p = tmp_path / f"in-{kind}"
    if kind == "gray":
        p = p.with_suffix(".png")
        Image.fromarray(rgb[..., 0]).save(p)
    elif kind == "rgba":
        p = p.with_suffix(".png")
        a = np.full((H, W), 128, np.uint8)
        Image.fromarray(np.dstack([rgb, a]), "RGBA").save(p)
    elif kind == "palette":
        p = p.with_suffix(".png")
        Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE).save(p)
    elif kind == "cmyk":
        p = p.with_suffix(".jpg")
        Image.fromarray(rgb).convert("CMYK").save(p)
    elif kind == "png16":
        p = p.with_suffix(".png")
        Image.fromarray((rgb[..., 0].astype(np.uint16) * 257)).save(p)
    elif kind == "tiff16":
        import tifffile

        p = p.with_suffix(".tif")
        tifffile.imwrite(p, rgb.astype(np.uint16) * 257, photometric="rgb")
    elif kind == "webp":
        p = p.with_suffix(".webp")
        Image.fromarray(rgb).save(p, lossless=True)
    elif kind == "heic":
        pytest.importorskip("pillow_heif")
        p = p.with_suffix(".heic")
        Image.fromarray(rgb).save(p, quality=90)
    return p


@pytest.mark.parametrize("kind", ["gray", "rgba", "palette", "cmyk", "png16", "tiff16", "webp", "heic"])
def test_formats_and_modes(tmp_path, capsys, depth, kind):
    src = _make(tmp_path, kind)
    before = _sha(src)
    out = tmp_path / f"out{src.suffix if src.suffix != '.heic' else '.jpg'}"
    code, err = _run(capsys, "refocus", src, "-o", out, "--depth", depth, "-k", "3", "--quality", "fast")
    assert code == 0, err
    img, info = read_image(out)
    assert img.shape == (H, W, 3)
    assert _sha(src) == before, "input modified"
    if kind == "rgba":
        assert info.alpha is not None and abs(float(info.alpha.mean()) - 128 / 255) < 2 / 255
    if kind in ("png16", "tiff16"):
        assert info.bit_depth == 16


def test_exif_orientation_applied_and_focus_in_upright_pixels(tmp_path, capsys):
    # Stored landscape 64x48 with orientation 6 (rotate 90 CW): upright it is 48x64.
    rgb = _rgb8()
    exif = Image.Exif()
    exif[0x0112] = 6
    src = tmp_path / "rot.jpg"
    Image.fromarray(rgb).save(src, exif=exif.tobytes(), quality=95)
    d = np.tile(np.linspace(0, 1, H, dtype=np.float32), (W, 1))  # upright W rows x H cols
    np.save(tmp_path / "d.npy", d)
    out = tmp_path / "o.jpg"
    code, err = _run(capsys, "refocus", src, "-o", out, "--depth", tmp_path / "d.npy", "--focus", "40,60", "-k", "2")
    assert code == 0, err
    img, info = read_image(out)
    assert img.shape == (W, H, 3)
    with Image.open(out) as o:
        assert o.getexif().get(0x0112, 1) == 1


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.write_bytes(b""), "cannot read image"),
        (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n garbage"), "cannot read image"),
        (lambda p: Image.fromarray(np.random.default_rng(0).integers(0, 255, (H, W, 3), dtype=np.uint8)).save(p, format="PNG") or p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), "cannot read image"),
    ],
    ids=["empty", "garbage", "truncated"],
)
def test_corrupt_inputs_one_line(tmp_path, capsys, depth, make, message):
    src = tmp_path / "bad.png"
    make(src)
    code, err = _run(capsys, "refocus", src, "-o", tmp_path / "o.png", "--depth", depth)
    assert code == 2
    assert err.startswith("error:") and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_pixel_limit_and_override(tmp_path, capsys, depth):
    src = tmp_path / "big.png"
    Image.fromarray(_rgb8()).save(src)
    code, err = _run(capsys, "refocus", src, "-o", tmp_path / "o.png", "--depth", depth, "--max-megapixels", "0.001")
    assert code == 2 and "--max-megapixels" in err
    code, err = _run(capsys, "refocus", src, "-o", tmp_path / "o.png", "--depth", depth, "--max-megapixels", "1", "-k", "2")
    assert code == 0, err


def test_depth_of_another_size_is_resampled(tmp_path, capsys):
    src = tmp_path / "p.png"
    Image.fromarray(_rgb8()).save(src)
    np.save(tmp_path / "small.npy", np.tile(np.linspace(0, 1, 16, dtype=np.float32), (12, 1)))
    code, err = _run(capsys, "refocus", src, "-o", tmp_path / "o.png", "--depth", tmp_path / "small.npy", "-k", "2")
    assert code == 0, err
    assert (tmp_path / "o.png").exists()


def test_depth_of_another_aspect_is_refused_or_noted(tmp_path, capsys):
    src = tmp_path / "p.png"
    Image.fromarray(_rgb8()).save(src)
    np.save(tmp_path / "tall.npy", np.zeros((64, 16), np.float32) + np.linspace(0, 1, 64, dtype=np.float32)[:, None])
    code, err = _run(capsys, "refocus", src, "-o", tmp_path / "o.png", "--depth", tmp_path / "tall.npy", "-k", "2")
    assert "Traceback" not in err
    if code != 0:
        assert err.startswith("error:") and len(err.strip().splitlines()) == 1


def test_output_checks(tmp_path, capsys, depth):
    src = tmp_path / "p.png"
    Image.fromarray(_rgb8()).save(src)
    before = _sha(src)
    code, err = _run(capsys, "refocus", src, "-o", src, "--depth", depth)
    assert code == 2 and "refusing to overwrite the input" in err
    code, err = _run(capsys, "refocus", src, "-o", tmp_path / "missing" / "o.png", "--depth", depth)
    assert code == 2 and "does not exist" in err
    code, err = _run(capsys, "refocus", src, "-o", tmp_path / "o.bmp", "--depth", depth)
    assert code == 2 and "unsupported output format" in err
    if os.geteuid() != 0:  # root can write anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        code, err = _run(capsys, "refocus", src, "-o", ro / "o.png", "--depth", depth)
        assert code == 2 and "not writable" in err
    assert _sha(src) == before
    assert not [p for p in tmp_path.iterdir() if ".part" in p.name], "temporary file left behind"


def test_missing_image_and_depth(tmp_path, capsys, depth):
    code, err = _run(capsys, "refocus", tmp_path / "nope.jpg", "-o", tmp_path / "o.png", "--depth", depth)
    assert code == 2 and "not found" in err
    src = tmp_path / "p.png"
    Image.fromarray(_rgb8()).save(src)
    code, err = _run(capsys, "refocus", src, "-o", tmp_path / "o.png", "--depth", tmp_path / "nope.npy")
    assert code == 2 and "depth map not found" in err
