"""One rule, in one place, for every command: outputs never hit inputs, unnamed files
are never replaced, and a depth map is read the same way by ``render``, ``refocus``,
``animate``, ``batch`` and the UI (issue 13 items 2-6, issue 12 item 2)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from PIL import Image

from refocus.cli import main

H, W = 48, 64


def _run(capsys, *argv):
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in argv])
    out = capsys.readouterr()
    return exc.value.code, out.err


def _sha(p):
    return hashlib.sha256(open(p, "rb").read()).hexdigest()


def _photo(path, size=(H, W)):
    y, x = np.mgrid[0 : size[0], 0 : size[1]]
    rgb = np.stack([(x * 4) % 256, (y * 5) % 256, ((x + y) * 3) % 256], -1).astype(np.uint8)
    Image.fromarray(rgb).save(path)
    return path


def _ramp_png(path, size=(H, W)):
    d = np.tile(np.linspace(0, 65535, size[1]), (size[0], 1)).astype(np.uint16)
    Image.fromarray(d).save(path)
    return path


# -- item 2: no command writes over any of its inputs ---------------------------


def test_render_refuses_to_write_over_its_depth_map(tmp_path, capsys):
    photo = _photo(tmp_path / "b13.jpg")
    depth = _ramp_png(tmp_path / "mydisp.png")
    before = _sha(depth)
    code, err = _run(capsys, "render", photo, "--depth", depth, "-o", depth, "--focus-value", "0.5", "-k", "2")
    assert code == 2 and err.startswith("error:") and "mydisp.png" in err and len(err.strip().splitlines()) == 1
    assert _sha(depth) == before


def test_render_and_refocus_refuse_to_write_over_the_aperture_image(tmp_path, capsys):
    photo = _photo(tmp_path / "p.png")
    depth = _ramp_png(tmp_path / "d.png")
    kernel = tmp_path / "kernel.png"
    Image.fromarray(np.pad(np.full((9, 9), 255, np.uint8), 3)).save(kernel)
    before = _sha(kernel)
    code, err = _run(capsys, "render", photo, "--depth", depth, "-o", kernel, "--aperture", kernel, "--focus-value", "0.5", "-k", "2")
    assert code == 2 and "kernel.png" in err
    code, err = _run(capsys, "refocus", photo, "--depth", depth, "-o", kernel, "--aperture", kernel, "-k", "2")
    assert code == 2 and "kernel.png" in err
    assert _sha(kernel) == before


def test_refocus_refuses_to_write_over_the_neighbouring_depth_it_reads(tmp_path, capsys):
    photo = _photo(tmp_path / "b13.jpg")
    depth = _ramp_png(tmp_path / "b13-disparity.png")
    before = _sha(depth)
    code, err = _run(capsys, "refocus", photo, "-o", depth, "-k", "2", "--no-deblur")
    assert code == 2 and "b13-disparity.png" in err
    assert _sha(depth) == before


def test_save_intermediate_never_replaces_unnamed_files(tmp_path, capsys):
    photo = _photo(tmp_path / "p.png")
    depth = _ramp_png(tmp_path / "d.png")
    mine = tmp_path / "inter"
    mine.mkdir()
    (mine / "coc.png").write_bytes(b"the user's own file")
    code, err = _run(capsys, "refocus", photo, "--depth", depth, "-o", tmp_path / "o.png", "-k", "2", "--no-deblur",
                     "--save-intermediate", mine)
    assert code == 2 and "--overwrite" in err and not (tmp_path / "o.png").exists()
    assert (mine / "coc.png").read_bytes() == b"the user's own file"
    code, err = _run(capsys, "refocus", photo, "--depth", depth, "-o", tmp_path / "o.png", "-k", "2", "--no-deblur",
                     "--save-intermediate", mine, "--overwrite")
    assert code == 0, err


# -- item 3: `refocus depth` never replaces a file the user did not name ----------


def test_depth_never_replaces_the_users_depth_map_beside_its_output(tmp_path, capsys):
    photo = _photo(tmp_path / "b13.jpg")
    users = _ramp_png(tmp_path / "b13-disparity.png")
    before = _sha(users)
    # b13-disparity.png is the photo's depth (as batch reads it): an input.
    code, err = _run(capsys, "depth", photo, "-o", tmp_path / "b13.npy")
    assert code == 2 and "b13-disparity.png" in err
    assert _sha(users) == before and not (tmp_path / "b13.npy").exists()


def test_depth_sidecars_need_overwrite_to_replace_a_file(tmp_path, capsys):
    photo = _photo(tmp_path / "p.png")
    depth = _ramp_png(tmp_path / "d.png")
    other = tmp_path / "x-disparity.png"
    Image.fromarray(np.full((H, W), 7, np.uint8)).save(other)
    before = _sha(other)
    code, err = _run(capsys, "depth", photo, "--depth", depth, "-o", tmp_path / "x.npy")
    assert code == 2 and "--overwrite" in err and "x-disparity.png" in err
    assert _sha(other) == before and not (tmp_path / "x.npy").exists()
    code, err = _run(capsys, "depth", photo, "--depth", depth, "-o", tmp_path / "x.npy", "--overwrite")
    assert code in (0, None), err
    assert _sha(other) != before


# -- items 4-6: the depth rule ---------------------------------------------------


def test_render_refuses_a_depth_map_of_another_aspect_ratio_like_refocus(tmp_path, capsys):
    photo = _photo(tmp_path / "p.png")
    tall = tmp_path / "tall.npy"
    np.save(tall, np.zeros((64, 16), np.float32) + np.linspace(0, 1, 64, dtype=np.float32)[:, None])
    for cmd in (["render", photo, "--depth", tall, "-o", tmp_path / "o.png", "--focus-value", "0.5", "-k", "2"],
                ["refocus", photo, "--depth", tall, "-o", tmp_path / "o.png", "-k", "2", "--no-deblur"]):
        code, err = _run(capsys, *cmd)
        assert code == 2 and "aspect ratio" in err and len(err.strip().splitlines()) == 1, (cmd[0], err)
    assert not (tmp_path / "o.png").exists()


def test_refocus_uses_the_neighbouring_depth_map_like_batch(tmp_path):
    from refocus.pipeline import prepare

    photo = _photo(tmp_path / "p.png")
    np.save(tmp_path / "p-disparity.npy", np.tile(np.linspace(0, 1, W, dtype=np.float32), (H, 1)))
    prepared = prepare(photo)
    assert prepared.depth_source == "file p-disparity.npy"
    assert any("p-disparity.npy" in n for n in prepared.notes)
    np.testing.assert_allclose(prepared.disparity[0], np.linspace(0, 1, W), atol=1e-6)
    # An explicit --depth wins.
    np.save(tmp_path / "other.npy", np.tile(np.linspace(1, 0, W, dtype=np.float32), (H, 1)))
    assert prepare(photo, depth_path=str(tmp_path / "other.npy")).depth_source == "file other.npy"


def test_nans_in_a_depth_map_warn_in_render_and_refocus(tmp_path, capsys):
    photo = _photo(tmp_path / "p.png")
    d = np.tile(np.linspace(0, 1, W, dtype=np.float32), (H, 1))
    d[10:12, 20:25] = np.nan
    np.save(tmp_path / "d.npy", d)
    for cmd in (["render", photo, "--depth", tmp_path / "d.npy", "-o", tmp_path / "r.png", "--focus-value", "0.5", "-k", "2"],
                ["refocus", photo, "--depth", tmp_path / "d.npy", "-o", tmp_path / "f.png", "-k", "2", "--no-deblur"]):
        code, err = _run(capsys, *cmd)
        assert code in (0, None), err
        assert "warning:" in err and "10 invalid values" in err, (cmd[0], err)


def _textured_map(rng, shape):
    """A disparity map with isolated extremes (what edge alignment would clamp away)."""
    d = (0.3 + 0.4 * rng.random(shape)).astype(np.float32)
    d[5, 7], d[shape[0] - 6, shape[1] - 9] = 0.0, 1.0
    return d


def _render_sees(monkeypatch, capsys, argv):
    """The normalised disparity ``refocus render`` hands to the renderer."""
    import refocus.pipeline.bokeh as R

    seen = {}

    def fake(image, disparity, **kw):
        d = R.prepare_disparity(disparity, kw.get("depth_kind", "disparity"), kw.get("normalize", True), shape=image.shape[:2])
        seen["d"] = d
        out = np.asarray(image, np.float32)
        return (out, np.zeros(out.shape[:2], np.float32)) if kw.get("return_coc") else out

    monkeypatch.setattr(R, "render_bokeh", fake)
    code, err = _run(capsys, *argv)
    assert code in (0, None), err
    return seen["d"]


def test_a_map_at_the_photos_size_reaches_the_renderer_unchanged(tmp_path, capsys, monkeypatch, rng):
    from refocus.pipeline import prepare

    photo = _photo(tmp_path / "p.png")
    d = _textured_map(rng, (H, W))
    np.save(tmp_path / "d.npy", d)
    expected = (d - d.min()) / (d.max() - d.min())
    np.testing.assert_allclose(prepare(photo, depth_path=str(tmp_path / "d.npy")).disparity, expected, atol=1e-6)
    seen = _render_sees(monkeypatch, capsys, ["render", photo, "--depth", tmp_path / "d.npy", "-o", tmp_path / "o.png",
                                              "--focus-value", "0.5", "-k", "2"])
    np.testing.assert_allclose(seen, expected, atol=1e-6)


def test_an_aligned_smaller_map_keeps_the_raw_maps_range(tmp_path, capsys, monkeypatch):
    from refocus.pipeline import prepare

    # Two flat regions (0.3 and 0.5) and two isolated extremes that alignment removes.
    small = np.full((12, 16), 0.5, np.float32)
    small[:, :8] = 0.3
    small[3, 12], small[8, 4] = 1.0, 0.0
    np.save(tmp_path / "small.npy", small)
    img = np.full((H, W, 3), 128, np.uint8)
    img[:, : W // 2] = 50
    Image.fromarray(img).save(tmp_path / "p.png")
    prepared = prepare(tmp_path / "p.png", depth_path=str(tmp_path / "small.npy"))
    seen = _render_sees(monkeypatch, capsys, ["render", tmp_path / "p.png", "--depth", tmp_path / "small.npy",
                                              "-o", tmp_path / "o.png", "--focus-value", "0.5", "-k", "2"])
    for d in (prepared.disparity, seen):
        # Normalised by the raw range [0, 1]: the flat regions keep their values.
        assert abs(float(np.median(d[:, :20])) - 0.3) < 0.01
        assert abs(float(np.median(d[:, -20:])) - 0.5) < 0.01
        assert 0.0 <= float(d.min()) and float(d.max()) <= 1.0


def test_render_bokeh_api_keeps_the_raw_range_when_resampling():
    from refocus.depth.prepare import prepare_disparity

    small = np.full((12, 16), 0.5, np.float32)
    small[:, :8] = 0.3
    small[3, 12], small[8, 4] = 1.0, 0.0
    img = np.full((H, W, 3), 0.5, np.float32)
    img[:, : W // 2] = 0.2
    with pytest.warns(UserWarning, match="resampling"):
        d = prepare_disparity(small, shape=(H, W), guide=img)
    assert abs(float(np.median(d[:, :20])) - 0.3) < 0.01 and abs(float(np.median(d[:, -20:])) - 0.5) < 0.01


def test_batch_never_writes_over_a_depth_map_it_reads(tmp_path):
    from refocus.pipeline import RefocusConfig
    from refocus.pipeline.batch import run_batch

    photos, depths = tmp_path / "in", tmp_path / "depths"
    photos.mkdir()
    depths.mkdir()
    _photo(photos / "a.png")
    _ramp_png(depths / "a.png")  # --depth-suffix "": the depth map of a.png is depths/a.png
    before = _sha(depths / "a.png")
    summary = run_batch(photos, depths, RefocusConfig(strength=2, deblur="never"), workers=1, depth_dir=depths, depth_suffix="")
    assert summary.done == [] and summary.failed and "refusing to overwrite the input a.png" in summary.failed[0][1]
    assert _sha(depths / "a.png") == before


@pytest.mark.parametrize("command", [
    ["refocus"], ["render", "--focus-value", "0.5", "-k", "2"], ["animate", "--from", "0.1", "--to", "0.9"], ["deblur"], ["depth"],
], ids=lambda c: c[0])
def test_an_output_that_is_a_folder_is_named_as_one(tmp_path, capsys, monkeypatch, command):
    # "-o ." read "unsupported output format (none) for : use ..." (an empty name), and
    # `depth -o .` ended in "ValueError: PosixPath('.') has an empty name".
    photo = _photo(tmp_path / "p.png")
    depth = _ramp_png(tmp_path / "d.png")
    monkeypatch.chdir(tmp_path)
    extra = [] if command[0] in ("deblur", "depth") else ["--depth", depth]
    code, err = _run(capsys, command[0], photo, *extra, *command[1:], "-o", ".")
    assert code == 2 and err.strip() == "error: output . is a folder; give a file name", err
