"""Issue 18, items 1-2: one pixel budget checked before decoding; absurd values refused.

Bombs are small generated files that *declare* many pixels (a PNG of zero rows
streamed through zlib, a header whose data is missing); nothing here decodes one.
"""

from __future__ import annotations

import base64
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

import test_depth_writers as W
from refocus.cli import main
from refocus.errors import RefocusError
from refocus.io import read_depth_file, read_image

H, W_ = 48, 64


def _run(capsys, *argv):
    with pytest.raises(SystemExit) as exc:
        main(list(map(str, argv)))
    return exc.value.code, capsys.readouterr().err


def _chunk(tag: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + tag + payload + struct.pack(">I", zlib.crc32(tag + payload) & 0xFFFFFFFF)


def bomb_png(width: int, height: int, rows: int | None = None, bits: int = 8) -> bytes:
    """A grayscale PNG declaring width x height; ``rows`` zero rows are really stored
    (streamed through zlib, so a full bomb is small), by default all of them."""
    comp = zlib.compressobj(9)
    row = b"\x00" * (1 + width * bits // 8)
    parts = [comp.compress(row) for _ in range(height if rows is None else rows)]
    parts.append(comp.flush())
    idat = b"".join(parts)
    ihdr = struct.pack(">IIBBBBB", width, height, bits, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


@pytest.fixture()
def photo(tmp_path):
    p = tmp_path / "photo.png"
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((H, W_, 3)) * 255).astype(np.uint8)).save(p)
    return p


@pytest.fixture()
def budget_1mp(monkeypatch):
    monkeypatch.setenv("REFOCUS_MAX_MEGAPIXELS", "1")


def test_bomb_png_as_depth_is_refused_by_the_budget(tmp_path, budget_1mp):
    # 1600x1200 = 1.9 MP of real (zero) rows, 2 KB on disk: decoding it would succeed.
    p = tmp_path / "bomb.png"
    p.write_bytes(bomb_png(1600, 1200))
    assert p.stat().st_size < 10_000
    with pytest.raises(RefocusError, match=r"1600x1200 .*pixel limit of 1\b"):
        read_depth_file(p)


def test_bomb_depth_through_the_cli_exits_2(tmp_path, photo, capsys):
    p = tmp_path / "bomb.png"
    p.write_bytes(bomb_png(1600, 1200))
    code, err = _run(capsys, "--max-megapixels", "1", "depth", photo, "--depth", p, "-o", tmp_path / "d.npy", "--no-refine")
    assert code == 2 and "1600x1200" in err and "limit" in err, err
    assert not (tmp_path / "d.npy").exists()


@pytest.mark.parametrize("kind", ["tiff", "npy", "pfm", "exr"])
def test_every_depth_format_checks_its_declared_size_before_decoding(tmp_path, budget_1mp, kind):
    """Headers declaring 2000x1500 float32 maps whose data is missing: the budget must
    refuse them from the header (the old readers failed on the data, or decoded it)."""
    if kind == "tiff":
        import tifffile

        p = tmp_path / "d.tif"
        tifffile.imwrite(p, np.zeros((1500, 2000), np.float32), compression="zlib")
    elif kind == "npy":
        p = tmp_path / "d.npy"
        header = {"descr": "<f4", "fortran_order": False, "shape": (1500, 2000)}
        with open(p, "wb") as f:
            np.lib.format.write_array_header_1_0(f, header)
    elif kind == "pfm":
        p = tmp_path / "d.pfm"
        p.write_bytes(b"Pf\n2000 1500\n-1.0\n" + b"\x00" * 64)
    else:
        p = tmp_path / "d.exr"
        attr = b"dataWindow\x00box2i\x00" + struct.pack("<i", 16) + struct.pack("<4i", 0, 0, 1999, 1499)
        p.write_bytes(b"\x76\x2f\x31\x01" + struct.pack("<I", 2) + attr + b"\x00")
    with pytest.raises(RefocusError, match=r"2000x1500.*pixel limit"):
        read_depth_file(p)


def test_tiff_photo_is_refused_before_tifffile_decodes_it(tmp_path, budget_1mp, monkeypatch):
    import tifffile

    p = tmp_path / "big.tif"
    tifffile.imwrite(p, np.zeros((1500, 2000, 3), np.uint8), photometric="rgb", compression="zlib")

    def decoded(*a, **k):
        raise AssertionError("tifffile.imread ran: the size was not checked first")

    monkeypatch.setattr(tifffile, "imread", decoded)
    with pytest.raises(RefocusError, match="pixel limit"):
        read_image(p)


def test_pillow_guard_stays_on(photo):
    read_image(photo)
    assert Image.MAX_IMAGE_PIXELS is not None


def test_info_on_a_bomb_names_the_file_its_size_and_the_limit(tmp_path, capsys):
    p = tmp_path / "bomb.png"
    p.write_bytes(bomb_png(30256, 32550, rows=1))  # the file: 985 MP declared
    code, err = _run(capsys, "info", p)
    assert code == 2
    assert "bomb.png" in err and "30256x32550" in err and "pixel limit of 100" in err, err


def test_aperture_image_is_within_the_budget(tmp_path, photo, budget_1mp, capsys):
    p = tmp_path / "kernel.png"
    p.write_bytes(bomb_png(1600, 1200))
    depth = tmp_path / "d.npy"
    np.save(depth, np.tile(np.linspace(0, 1, W_, dtype=np.float32), (H, 1)))
    code, err = _run(capsys, "render", photo, "--depth", depth, "-o", tmp_path / "o.png", "--focus-value", "0.5", "-k", "3", "--aperture", p)
    assert code == 2 and "kernel.png" in err and "pixel limit" in err, err


def test_setting_is_validated(monkeypatch, photo):
    monkeypatch.setenv("REFOCUS_MAX_MEGAPIXELS", "lots")
    with pytest.raises(RefocusError, match="REFOCUS_MAX_MEGAPIXELS"):
        read_image(photo)


@pytest.mark.parametrize("value", ["0", "-3"])
def test_a_budget_out_of_range_names_its_option_and_excludes_zero(photo, capsys, monkeypatch, value):
    # Was "the pixel limit must be between 0 and 1e6 megapixels, got 0.0": 0 looked
    # allowed and no option was named.
    with pytest.raises(SystemExit) as exc:
        main(["refocus", str(photo), "--max-megapixels", value, "-o", str(photo.with_name("o.png"))])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "--max-megapixels must be above 0" in err and "between" not in err
    monkeypatch.setenv("REFOCUS_MAX_MEGAPIXELS", value)
    with pytest.raises(RefocusError, match="REFOCUS_MAX_MEGAPIXELS must be above 0"):
        read_image(photo)


# --- embedded maps: no more pixels than their photo -------------------------------------------


def _gdepth(png: bytes, far: float = 4.5) -> bytes:
    rgb = (np.random.default_rng(1).random((H, W_, 3)) * 255).astype(np.uint8)
    return W.gdepth_jpeg(rgb, png, "RangeLinear", 1.0, far)


def test_embedded_png_map_larger_than_its_photo_is_refused():
    from refocus.depth.embedded import read_gdepth

    png = bomb_png(W_ * 10, H * 10)  # a 48x64 photo with a 480x640 map: suspect
    with pytest.raises(RefocusError, match="more pixels than its photo"):
        read_gdepth(_gdepth(png))


def test_embedded_jpeg_map_larger_than_its_photo_is_reduced_while_decoding():
    from refocus.depth.embedded import read_mpf_depth

    rgb = (np.random.default_rng(1).random((H, W_, 3)) * 255).astype(np.uint8)
    big = np.tile(np.linspace(0, 255, W_ * 4), (H * 4, 1)).astype(np.uint8)  # 16x the photo's pixels
    data = W.mpf_jpeg(W.jpeg_bytes(rgb), [W.apple_depth_jpeg(big, 0.2, 1.0)])
    got = read_mpf_depth(data)
    assert got is not None
    assert got.values.shape[0] * got.values.shape[1] <= 4 * H * W_
    assert any("more than its photo" in n for n in got.notes)


def test_info_reports_an_oversized_embedded_map(tmp_path, capsys):
    p = tmp_path / "g.jpg"
    p.write_bytes(_gdepth(bomb_png(W_ * 10, H * 10)))
    with pytest.raises(SystemExit):
        main(["info", str(p)])
    out = " ".join(capsys.readouterr().out.split())  # the table wraps long lines
    assert "more pixels than its photo" in out, out


# --- values ---------------------------------------------------------------------------------


def _pfm(path, arr, scale=b"-1.0"):
    h, w = arr.shape
    path.write_bytes(b"Pf\n" + f"{w} {h}\n".encode() + scale + b"\n" + np.flipud(arr).astype("<f4").tobytes())


def test_extreme_finite_depth_values_are_refused_with_the_reason(tmp_path):
    p = tmp_path / "d.pfm"
    arr = np.full((H, W_), 1e38, np.float32)
    arr[:, : W_ // 2] = 1.0
    _pfm(p, arr)
    with pytest.raises(RefocusError, match=r"values up to 1e\+38"):
        read_depth_file(p)


def test_extreme_values_through_depth_no_refine_exit_2_and_write_nothing(tmp_path, photo, capsys):
    p = tmp_path / "d.pfm"
    arr = np.tile(np.linspace(1, 1e38, W_, dtype=np.float32), (H, 1))
    _pfm(p, arr)
    code, err = _run(capsys, "depth", photo, "--depth", p, "-o", tmp_path / "o.npy", "--no-refine")
    assert code == 2 and "values up to" in err, err
    assert not (tmp_path / "o-disparity.png").exists()


@pytest.mark.parametrize("scale", [b"nan", b"0", b"inf"])
def test_pfm_scale_zero_or_nan_is_refused(tmp_path, scale):
    p = tmp_path / "d.pfm"
    _pfm(p, np.ones((H, W_), np.float32), scale)
    with pytest.raises(RefocusError, match="PFM scale"):
        read_depth_file(p)


def test_all_nan_map_says_so(tmp_path):
    p = tmp_path / "d.npy"
    np.save(p, np.full((H, W_), np.nan, np.float32))
    with pytest.raises(RefocusError, match="no finite values"):
        read_depth_file(p)


def test_gdepth_absurd_far_is_unusable_in_info_too(tmp_path):
    from refocus.depth.embedded import find_embedded_depth

    depth = np.tile(np.linspace(1, 4, W_, dtype=np.float32), (H, 1))
    png = W.png_bytes(W.encode_range(depth, "RangeLinear", 1.0, 4.0))
    p = tmp_path / "g.jpg"
    p.write_bytes(_gdepth(png, far=1e308))
    emb, messages = find_embedded_depth(p)
    assert emb is None and any("Far" in m for m in messages), messages


def test_alignment_filter_runs_on_normalised_values():
    """Finite values near float32's top (library callers can pass any array) must
    not overflow the guided filter's sums of squares."""
    import warnings

    from refocus.depth import _align

    image = np.random.default_rng(2).random((H, W_, 3)).astype(np.float32)
    disp = np.tile(np.linspace(0, 1, W_ // 2, dtype=np.float32), (H // 2, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the old code emitted RuntimeWarnings (overflow)
        big = _align(disp * np.float32(1e30), "disparity", image, refine=True)
    unit = _align(disp, "disparity", image, refine=True)
    assert np.isfinite(big).all()
    np.testing.assert_allclose(big / 1e30, unit, atol=1e-5)


def test_embedded_jpeg_map_with_too_little_data_for_its_size_is_refused():
    """The issue's MPF map: a header claiming 8000x6000 over 8x8 pixels of data."""
    from refocus.depth.embedded import read_mpf_depth

    rgb = (np.random.default_rng(1).random((H, W_, 3)) * 255).astype(np.uint8)
    small = W.apple_depth_jpeg(np.full((8, 8), 128, np.uint8), 0.2, 1.0)
    sof = next(i for i in range(len(small) - 9) if small[i] == 0xFF and small[i + 1] == 0xC0)
    forged = small[: sof + 5] + struct.pack(">HH", 6000, 8000) + small[sof + 9 :]
    data = W.mpf_jpeg(W.jpeg_bytes(rgb), [forged])
    with pytest.raises(RefocusError, match="holds only"):
        read_mpf_depth(data)


def test_embedded_png_map_twice_the_photo_per_side_is_averaged_down_with_a_note():
    """A photo downscaled after capture by an editor that kept its XMP (not a bomb)."""
    from refocus.depth.embedded import read_gdepth

    depth = np.tile(np.linspace(1, 4, W_ * 2, dtype=np.float32), (H * 2, 1))
    got = read_gdepth(_gdepth(W.png_bytes(W.encode_range(depth, "RangeLinear", 1.0, 4.5))))
    assert got.values.shape == (H, W_)
    assert any("averaged down by 2" in n for n in got.notes)


def test_a_blur_far_wider_than_the_image_is_capped_not_allowed_to_eat_memory():
    """A 16-bit disparity read with --no-normalize and -k 5 asked for 180,000 px of blur
    on a 600 px photo: the frame was padded by the radius, the process grew past 12 GB
    and was killed. Radii are now drawn at most 2 diagonals (a disc that already covers
    the frame), with a warning."""
    import tracemalloc

    from refocus.render import capped_coc_limit_px, render_linear

    rng = np.random.default_rng(0)
    img = rng.random((16, 24, 3)).astype(np.float32)
    coc = np.tile(np.linspace(-3000, 3000, 24, dtype=np.float32), (16, 1))
    limit = capped_coc_limit_px(16, 24)
    expected = render_linear(img, np.clip(coc, -limit, limit))  # also fills the kernel caches
    tracemalloc.start()
    with pytest.warns(UserWarning, match="drawn at most"):
        out = render_linear(img, coc)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 20e6, f"{peak / 1e6:.0f} MB for a 16 x 24 render"
    np.testing.assert_array_equal(out, expected)
