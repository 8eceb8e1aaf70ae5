"""Faults a user trial found in depth files and outputs (each test failed before its fix).

1. a map ``refocus depth`` wrote did not record whether it holds depth or disparity, so
   ``--depth`` read a Lens Blur photo's depth as disparity (inverted); with ``--depth``,
   a Lens Blur photo was deblurred instead of using the original it stores;
2. an all non-positive map with ``--depth-kind depth``: the error did not name the file;
3. a constant map rendered nothing, without a word;
4. a 3-channel .npy with different channels was read as its first channel;
5. 16-bit grey + alpha maps (TIFF, PNG) are read as their grey, at 16 bits;
6. ``--bit-depth 16`` with a JPEG output wrote 8 bits silently;
7. a HEIC's TileWidth/TileLength were carried into a JPEG's EXIF;
8. ``refocus depth --no-estimate`` without stored depth suggested downloading a network.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import test_depth_writers as W
from refocus.cli import main
from refocus.depth import get_depth
from refocus.errors import RefocusError
from refocus.io import read_depth_file, read_image, write_image
from refocus.io.depthfile import read_depth_meta, write_depth_file
from refocus.pipeline import RefocusConfig, Refocuser

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "phone-depth"
MOTOROLA = SHARED / "motorola-lensblur-gdepth.jpg"
PUG = SHARED / "iphone13pro-pug.heic"


def _run(capsys, *argv):
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in argv])
    out = capsys.readouterr()
    return exc.value.code, out.out + out.err


def _photo(tmp_path, name="p.png", shape=(40, 60)) -> Path:
    rng = np.random.default_rng(5)
    p = tmp_path / name
    Image.fromarray((rng.random((*shape, 3)) * 255).astype(np.uint8)).save(p)
    return p


def _gdepth_photo(tmp_path) -> Path:
    """A GDepth JPEG (no units) whose depth grows to the right (the left is near)."""
    from test_depth_cli import _gdepth_photo as gdepth_photo

    return gdepth_photo(tmp_path, units=None)


# -- 1. the kind a written map holds -------------------------------------------------


@pytest.mark.parametrize("ext", [".tif", ".npy"])
def test_depth_written_by_the_depth_command_is_read_back_as_depth(tmp_path, capsys, ext):
    photo = _gdepth_photo(tmp_path)
    out = tmp_path / f"d{ext}"
    code, text = _run(capsys, "depth", photo, "-o", out, "--no-estimate")
    assert code in (0, None), text
    assert read_depth_meta(out) == {"kind": "depth", "metric": False}
    res = get_depth(photo, depth_path=out)
    assert res.kind == "depth" and not res.metric
    d = res.disparity()
    assert d[:, :5].mean() > d[:, -5:].mean() + 0.5  # near (left) stays near
    assert any("as the file records" in n for n in res.notes)
    # The command itself, given its own map back, says the same.
    code, text = _run(capsys, "depth", photo, "--depth", out, "-o", tmp_path / "again.npy")
    assert code in (0, None) and "relative depth" in text, text
    np.testing.assert_array_equal(np.load(tmp_path / "again.npy"), read_depth_file(out))


def test_written_npy_is_a_plain_numpy_file(tmp_path):
    vals = np.random.default_rng(0).random((7, 9)).astype(np.float32)
    p = tmp_path / "d.npy"
    write_depth_file(p, vals, "depth", metric=True)
    np.testing.assert_array_equal(np.load(p), vals)
    np.testing.assert_array_equal(np.load(p, mmap_mode="r"), vals)
    assert p.stat().st_size % 4 == 0 and (p.stat().st_size - vals.nbytes) % 64 == 0  # data aligned as np.save does
    assert read_depth_meta(p) == {"kind": "depth", "metric": True}


def test_metric_flag_is_recorded_and_honoured(tmp_path):
    photo = _photo(tmp_path, shape=(20, 30))
    z = np.tile(np.linspace(1.0, 3.0, 30, dtype=np.float32), (20, 1))
    write_depth_file(tmp_path / "rel.tif", z, "depth", metric=False)
    write_depth_file(tmp_path / "met.npy", 1.0 / z, "disparity", metric=True)
    rel = get_depth(photo, depth_path=tmp_path / "rel.tif")
    assert rel.kind == "depth" and not rel.metric  # a float depth TIFF was taken to be metres
    met = get_depth(photo, depth_path=tmp_path / "met.npy")
    assert met.kind == "disparity" and met.metric
    assert met.focus_disparity_for_distance(3.0) == pytest.approx(0.0, abs=1e-6)


def test_explicit_depth_kind_wins_and_a_conflict_is_said(tmp_path, capsys):
    photo = _gdepth_photo(tmp_path)
    out = tmp_path / "d.tif"
    assert _run(capsys, "depth", photo, "-o", out, "--no-estimate")[0] in (0, None)
    res = get_depth(photo, depth_path=out, depth_kind="disparity")
    assert res.kind == "disparity"
    warn = [n for n in res.notes if n.startswith("warning:") and "d.tif" in n and "--depth-kind" in n]
    assert len(warn) == 1 and "depth" in warn[0]
    assert not any("records" in n for n in get_depth(photo, depth_path=out, depth_kind="depth").notes)


def test_disparity_png_beside_records_disparity_and_pfm_says_it_cannot(tmp_path, capsys):
    photo = _gdepth_photo(tmp_path)
    code, text = _run(capsys, "depth", photo, "-o", tmp_path / "d.pfm", "--no-estimate")
    assert code in (0, None)
    assert "d.pfm" in text and "--depth-kind depth" in text  # PFM has no room for the kind
    assert read_depth_meta(tmp_path / "d-disparity.png") == {"kind": "disparity", "metric": False}
    assert json.loads(Image.open(tmp_path / "d-disparity.png").info["refocus"])["kind"] == "disparity"


def test_render_honours_the_recorded_kind(tmp_path, capsys):
    photo = _photo(tmp_path, shape=(20, 30))
    z = np.tile(np.linspace(1.0, 3.0, 30, dtype=np.float32), (20, 1))
    write_depth_file(tmp_path / "z.tif", z, "depth")
    code, text = _run(capsys, "render", photo, "--depth", tmp_path / "z.tif", "-o", tmp_path / "r.png",
                      "--focus-value", "1", "-k", "6")
    assert code in (0, None), text
    # Focus at the nearest disparity: the left (nearest) column keeps its pixels.
    src, out = read_image(photo)[0], read_image(tmp_path / "r.png")[0]
    assert np.abs(out[:, :2] - src[:, :2]).mean() < np.abs(out[:, -2:] - src[:, -2:]).mean()


@pytest.mark.skipif(not MOTOROLA.exists(), reason="needs ../shared/data/phone-depth (real Lens Blur file)")
def test_real_lens_blur_depth_round_trip_keeps_meaning_and_stored_original(tmp_path, capsys):
    out = tmp_path / "d.tif"
    code, text = _run(capsys, "depth", MOTOROLA, "-o", out, "--no-refine")
    assert code in (0, None), text
    given = Refocuser().prepare(MOTOROLA, RefocusConfig(depth_path=str(out), deblur="never"))
    own = Refocuser().prepare(MOTOROLA, RefocusConfig(deblur="never"))
    assert np.corrcoef(given.disparity.ravel(), own.disparity.ravel())[0, 1] > 0.99
    assert given.all_in_focus is not None and given.all_in_focus_source == "stored original"
    np.testing.assert_array_equal(given.all_in_focus, own.all_in_focus)


def test_lens_blur_with_depth_file_renders_from_the_stored_original(tmp_path):
    from test_own_lens import _lens_blur_file

    path, depth, original = _lens_blur_file(tmp_path)
    np.save(tmp_path / "z.npy", depth)

    def no_deblur(image, device):
        raise AssertionError("deblurred a Lens Blur photo that stores its original")

    pipe = Refocuser(deblurrer=no_deblur)
    cfg = RefocusConfig(depth_path=str(tmp_path / "z.npy"), depth_kind="depth", focus_xy=(150, 60), strength=8,
                        deblur="always")
    photo = pipe.prepare(path, cfg)
    assert photo.own_lens is None  # the lens is stated in the GDepth map's terms, not this map's
    np.testing.assert_array_equal(photo.all_in_focus, original)
    result = pipe.refocus(path, cfg)
    assert result.deblurred and result.all_in_focus_source == "stored original"


# -- 2. / 3. invalid and constant maps name the file --------------------------------


@pytest.mark.parametrize("values", [-1.0, 0.0, "mixed"])
def test_non_positive_depth_names_the_file(tmp_path, capsys, values):
    photo = _photo(tmp_path, shape=(20, 30))
    arr = np.full((20, 30), values, np.float32) if values != "mixed" else -np.random.default_rng(1).random((20, 30)).astype(np.float32)
    p = tmp_path / "neg-map.npy"
    np.save(p, arr)
    with pytest.raises(RefocusError, match="neg-map.npy"):
        get_depth(photo, depth_path=p, depth_kind="depth")
    code, text = _run(capsys, "render", photo, "--depth", p, "--depth-kind", "depth", "-o", tmp_path / "r.png",
                      "--focus-value", "0.5", "-k", "4")
    assert code == 2 and text.startswith("error:") and "neg-map.npy" in text and text.count("\n") == 1, text


def test_constant_map_warns_naming_the_file(tmp_path, capsys):
    photo = _photo(tmp_path, shape=(20, 30))
    p = tmp_path / "flat.npy"
    np.save(p, np.full((20, 30), 0.7, np.float32))
    res = get_depth(photo, depth_path=p)
    warn = [n for n in res.notes if n.startswith("warning:") and "flat.npy" in n and "constant" in n]
    assert len(warn) == 1
    code, text = _run(capsys, "render", photo, "--depth", p, "-o", tmp_path / "r.png", "--focus-value", "0.5", "-k", "4")
    assert code in (0, None) and "warning" in text and "flat.npy" in text and "constant" in text, text
    # A map with a range gives no such warning.
    np.save(p, np.tile(np.linspace(0, 1, 30, dtype=np.float32), (20, 1)))
    assert not any("constant" in n for n in get_depth(photo, depth_path=p).notes)


# -- 4. / 5. channels -----------------------------------------------------------------


def test_colour_npy_is_refused_and_grey_as_colour_accepted(tmp_path):
    rng = np.random.default_rng(2)
    p = tmp_path / "rgb.npy"
    np.save(p, rng.random((20, 30, 3)).astype(np.float32))
    with pytest.raises(RefocusError, match=r"rgb\.npy.*channel"):
        read_depth_file(p)
    g = rng.random((20, 30)).astype(np.float32)
    np.save(p, np.repeat(g[..., None], 3, axis=2))
    np.testing.assert_array_equal(read_depth_file(p), g)
    np.save(p, np.dstack([g, g, g, np.ones_like(g)]))  # RGBA: the alpha is not a channel of the map
    np.testing.assert_array_equal(read_depth_file(p), g)


def test_colour_png_and_pfm_follow_the_same_rule(tmp_path):
    rng = np.random.default_rng(4)
    g = (rng.random((20, 30)) * 255).astype(np.uint8)
    p = tmp_path / "grey-rgb.png"
    Image.fromarray(np.dstack([g, g, g])).save(p)
    np.testing.assert_array_equal(read_depth_file(p), g)
    c = tmp_path / "preview.png"
    Image.fromarray((rng.random((20, 30, 3)) * 255).astype(np.uint8)).save(c)
    with pytest.raises(RefocusError, match=r"preview\.png.*channel"):
        read_depth_file(c)
    pf = tmp_path / "c.pfm"
    pf.write_bytes(b"PF\n30 20\n-1.0\n" + rng.random((20, 30, 3)).astype("<f4").tobytes())
    with pytest.raises(RefocusError, match=r"c\.pfm.*channel"):
        read_depth_file(pf)


@pytest.mark.parametrize("how", ["default", "alpha"])
def test_16_bit_grey_alpha_tiff_is_read_as_its_grey(tmp_path, how):
    import tifffile

    grey = np.tile((np.arange(30) * 2000).astype(np.uint16), (20, 1))
    arr = np.dstack([grey, np.full_like(grey, 65535)])
    p = tmp_path / "la.tif"
    if how == "default":
        tifffile.imwrite(p, arr)
    else:
        tifffile.imwrite(p, arr, photometric="minisblack", extrasamples=["unassalpha"])
    np.testing.assert_array_equal(read_depth_file(p), grey.astype(np.float32))
    photo = _photo(tmp_path, shape=(20, 30))
    res = get_depth(photo, depth_path=p)
    assert res.values.shape == (20, 30) and res.disparity()[:, -1].mean() == pytest.approx(1.0)


def test_16_bit_grey_alpha_png_keeps_16_bits(tmp_path):
    from refocus.io.image import _write_png16

    grey = np.tile(np.arange(30, dtype=np.float64) * 2001 / 65535, (20, 1))
    p = tmp_path / "la16.png"
    _write_png16(p, grey[..., None], np.ones((20, 30)))
    np.testing.assert_array_equal(read_depth_file(p), np.round(grey * 65535).astype(np.float32))


# -- 6. 16 bits where the format has 8 ----------------------------------------------------


@pytest.mark.parametrize("ext", [".jpg", ".jpeg", ".webp"])
def test_bit_depth_16_is_refused_for_8_bit_formats(tmp_path, ext):
    with pytest.raises(RefocusError, match=r"--bit-depth 16.*\.png.*\.tif"):
        write_image(tmp_path / f"x{ext}", np.zeros((4, 5, 3), np.float32), bit_depth=16)
    assert not list(tmp_path.iterdir())
    write_image(tmp_path / f"y{ext}", np.zeros((4, 5, 3), np.float32), bit_depth=8)  # 8 bits: fine
    write_image(tmp_path / "z.png", np.zeros((4, 5, 3), np.float32), bit_depth=16)


def test_bit_depth_16_jpeg_is_refused_before_the_work(tmp_path, capsys, monkeypatch):
    photo = _photo(tmp_path, shape=(20, 30))
    np.save(tmp_path / "d.npy", np.tile(np.linspace(0, 1, 30, dtype=np.float32), (20, 1)))
    import refocus.pipeline as pipeline_pkg

    def never(*a, **k):
        raise AssertionError("refocused before refusing the output")

    monkeypatch.setattr(pipeline_pkg, "refocus", never)
    from refocus.pipeline.refocuser import Refocuser

    monkeypatch.setattr(Refocuser, "refocus", never)  # what `refocus refocus` calls
    for cmd in (["render", photo, "--depth", tmp_path / "d.npy", "--focus-value", "0.5", "-k", "3"],
                ["refocus", photo, "--depth", tmp_path / "d.npy", "--no-deblur"]):
        code, text = _run(capsys, *cmd, "-o", tmp_path / "out.jpg", "--bit-depth", "16")
        assert code == 2 and text.startswith("error:") and text.count("\n") == 1, text
        assert "--bit-depth" in text and ".png" in text and ".tif" in text
        assert not (tmp_path / "out.jpg").exists()


# -- 7. layout tags of the input's storage ----------------------------------------------


def _exif_with_tiles() -> bytes:
    e = Image.Exif()
    e[0x010F] = "Apple"
    e[322] = 512  # TileWidth
    e[323] = 512  # TileLength
    e[0x0112] = 6
    return e.tobytes()


@pytest.mark.parametrize("ext", [".jpg", ".png", ".webp", ".tif"])
def test_storage_layout_tags_are_not_carried(tmp_path, ext):
    from refocus.io import ImageInfo

    out = tmp_path / f"o{ext}"
    write_image(out, np.full((8, 10, 3), 0.5, np.float32), ImageInfo(exif=_exif_with_tiles()))
    e = Image.open(out).getexif()
    assert 322 not in e and 323 not in e
    assert e.get(0x010F) == "Apple" and e.get(0x0112) == 1


@pytest.mark.skipif(not PUG.exists(), reason="needs ../shared/data/phone-depth (real iPhone HEIC)")
def test_heic_to_jpeg_drops_tile_tags(tmp_path):
    rgb, info = read_image(PUG)
    src = Image.Exif()
    src.load(info.exif)
    assert 322 in src and 323 in src
    out = tmp_path / "pug.jpg"
    write_image(out, rgb[::8, ::8], info)
    e = Image.open(out).getexif()
    assert 322 not in e and 323 not in e and e.get(0x0110) == src.get(0x0110)


# -- 8. --no-estimate ---------------------------------------------------------------------


def test_no_estimate_without_stored_depth_says_so(tmp_path, capsys):
    photo = _photo(tmp_path, "plain.png")
    code, text = _run(capsys, "depth", photo, "-o", tmp_path / "x.npy", "--no-estimate")
    assert code == 2 and text.startswith("error: no depth") and text.count("\n") == 1, text
    assert "plain.png" in text and "no embedded depth" in text and "--no-estimate" in text and "--depth" in text
    assert "download" not in text and "depth-model" not in text
    assert not (tmp_path / "x.npy").exists()


@pytest.mark.parametrize("suffix", [".png", ".tif"])
@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_a_depth_map_with_an_exif_orientation_is_turned_upright(tmp_path, suffix, orientation):
    """Found 2026-12-07: a depth map's own EXIF orientation was ignored: stored turned
    by 180 degrees with orientation 3, near and far swapped without a word; with 6,
    refused as the wrong aspect ratio."""
    from PIL import Image

    from refocus.io.depthfile import read_depth_file

    y, x = np.mgrid[0:24, 0:40]
    upright = (x * 1000 + y * 7).astype(np.uint16)
    # Stored as the sensor saw it: the inverse of what the tag asks for.
    stored = {3: np.rot90(upright, 2), 6: np.rot90(upright, 1), 8: np.rot90(upright, -1)}[orientation]
    path = tmp_path / f"d{suffix}"
    if suffix == ".png":
        ex = Image.Exif()
        ex[274] = orientation
        Image.fromarray(np.ascontiguousarray(stored)).save(path, exif=ex)
    else:
        import tifffile

        tifffile.imwrite(path, np.ascontiguousarray(stored), extratags=[(274, "H", 1, orientation, True)])
    np.testing.assert_array_equal(read_depth_file(path), upright.astype(np.float32))
