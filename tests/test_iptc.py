"""IPTC captions, credit and copyright survive into results (a photographer trial:
three exif-corpus photos carry IPTC, and every result dropped it: Pillow reads a
JPEG's Photoshop segment but does not write it)."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from PIL import Image, IptcImagePlugin

from refocus.io import read_image, write_image


def _resource(rid: int, data: bytes) -> bytes:
    pad = b"\0" if len(data) % 2 else b""
    return b"8BIM" + struct.pack(">H", rid) + b"\0\0" + struct.pack(">I", len(data)) + data + pad


def _dataset(record: int, tag: int, value: bytes) -> bytes:
    return b"\x1c" + bytes([record, tag]) + struct.pack(">H", len(value)) + value


def _photo_with_iptc(path):
    iptc = _dataset(2, 120, b"A caption, by the photographer") + _dataset(2, 116, b"(c) 2026 Someone")
    thumb = b"\0" * 300  # a stale thumbnail resource, which describes the original pixels
    body = b"Photoshop 3.0\0" + _resource(0x0404, iptc) + _resource(0x040C, thumb)
    app13 = b"\xff\xed" + struct.pack(">H", len(body) + 2) + body
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((48, 64, 3)) * 255).astype(np.uint8)).save(path, quality=95, extra=app13)
    return iptc


def test_a_jpeg_result_keeps_the_iptc_record_and_not_the_other_resources(tmp_path):
    src = tmp_path / "photo.jpg"
    _photo_with_iptc(src)
    img, info = read_image(src)
    write_image(tmp_path / "out.jpg", img * 0.9, info)
    with Image.open(tmp_path / "out.jpg") as out:
        got = IptcImagePlugin.getiptcinfo(out)
        resources = out.info.get("photoshop") or {}
    assert got is not None and got[(2, 120)] == b"A caption, by the photographer"
    assert got[(2, 116)] == b"(c) 2026 Someone"
    assert 0x040C not in resources  # the thumbnail of the original is not carried


def test_refocus_cli_keeps_iptc(tmp_path):
    from refocus.cli import main

    src = tmp_path / "photo.jpg"
    _photo_with_iptc(src)
    np.save(tmp_path / "d.npy", np.tile(np.linspace(0, 1, 64, dtype=np.float32), (48, 1)))
    with pytest.raises(SystemExit) as exc:
        main(["refocus", str(src), "--depth", str(tmp_path / "d.npy"), "-k", "3", "--no-deblur", "-o", str(tmp_path / "out.jpg")])
    assert exc.value.code in (0, None)
    with Image.open(tmp_path / "out.jpg") as out:
        assert IptcImagePlugin.getiptcinfo(out)[(2, 116)] == b"(c) 2026 Someone"


def _iptc_of_tiff(path) -> bytes | None:
    import tifffile

    with tifffile.TiffFile(path) as tf:
        tags = tf.pages[0].tags
        return bytes(tags[33723].value) if 33723 in tags else None


@pytest.mark.parametrize("bits", [8, 16])
def test_a_tiff_result_keeps_a_jpeg_photos_iptc(tmp_path, bits):
    """A JPEG's IPTC was written into JPEG results only; a TIFF result dropped it."""
    src = tmp_path / "photo.jpg"
    iptc = _photo_with_iptc(src)
    img, info = read_image(src)
    write_image(tmp_path / "out.tif", img * 0.9, info, bit_depth=bits)
    assert _iptc_of_tiff(tmp_path / "out.tif") == iptc


@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
def test_a_tiff_photos_iptc_reaches_a_jpeg_result(tmp_path, dtype):
    """A TIFF's IPTC (tag 33723) was read only as part of its own directory, so a TIFF
    result kept it and a JPEG result dropped it."""
    import tifffile

    iptc = _dataset(2, 120, b"A caption") + _dataset(2, 116, b"(c) 2026 Someone")
    iptc += b"\0" * (-len(iptc) % 4)
    rng = np.random.default_rng(1)
    arr = (rng.random((40, 56, 3)) * (255 if dtype == "uint8" else 65535)).astype(dtype)
    src = tmp_path / "photo.tif"
    tifffile.imwrite(src, arr, photometric="rgb", extratags=[(33723, 7, len(iptc), iptc, True)])
    img, info = read_image(src)
    assert info.iptc == iptc
    write_image(tmp_path / "out.jpg", img, info)
    with Image.open(tmp_path / "out.jpg") as out:
        assert IptcImagePlugin.getiptcinfo(out)[(2, 116)] == b"(c) 2026 Someone"
    write_image(tmp_path / "out.tif", img, info)
    assert _iptc_of_tiff(tmp_path / "out.tif") == iptc

