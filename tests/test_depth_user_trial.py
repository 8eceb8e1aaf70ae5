"""A user's own depth maps (formats, conventions, metres): regressions from the
depth user trial of 2026-12-07."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from refocus.errors import RefocusError
from refocus.io import write_image


def _textured(h: int, w: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.kron(rng.random((h // 2, w // 2, 3)).astype(np.float32), np.ones((2, 2, 1), np.float32))


def _planes_m(h: int, w: int) -> np.ndarray:
    """Six vertical planes at 1, 1.8, 2.6, 3.4, 4.2 and 5 m, left to right."""
    cols = np.minimum(np.arange(w) * 6 // w, 5)
    return np.tile((1.0 + 0.8 * cols).astype(np.float32), (h, 1))


def _inside(h: int, w: int, i: int, margin: int = 3) -> np.ndarray:
    """Plane ``i`` of :func:`_planes_m` without its edges (where resampling mixes planes)."""
    m = np.zeros((h, w), dtype=bool)
    m[margin:-margin, i * w // 6 + margin:(i + 1) * w // 6 - margin] = True
    return m


def test_metres_land_on_that_distance_when_a_resampled_map_loses_a_speck(tmp_path):
    """A small metric map with one isolated near pixel (0.5 m), resampled along the
    photo's edges: ``--focus-value 2.6m`` fell on the 1.8 m plane, because distances
    were converted with the range of the aligned values (the speck gone) while the
    renderer's disparity is normalised by the map as found."""
    from refocus.pipeline import refocus

    h, w = 48, 72
    write_image(tmp_path / "p.png", _textured(h, w))
    z = _planes_m(h // 3, w // 3)
    z[8, 12] = 0.5
    np.save(tmp_path / "z.npy", z)
    r = refocus(str(tmp_path / "p.png"), depth_path=str(tmp_path / "z.npy"), depth_kind="depth",
                focus_distance_m=2.6, strength=8, deblur="never")
    lo, hi = 1 / 5.0, 1 / 0.5  # the map as found
    assert r.focus_disparity == pytest.approx((1 / 2.6 - lo) / (hi - lo), abs=1e-4)
    assert np.abs(r.coc_px[_inside(h, w, 2)]).max() < 0.05  # 2.6 m: sharp
    assert np.abs(r.coc_px[_inside(h, w, 1)]).min() > 0.5  # 1.8 m: not
    # A band in metres is converted with the same range.
    r2 = refocus(str(tmp_path / "p.png"), depth_path=str(tmp_path / "z.npy"), depth_kind="depth",
                 focus_range_m=(3.0, 4.0), strength=8, deblur="never")
    assert np.abs(r2.coc_px[_inside(h, w, 1)]).min() > 0.5
    assert np.percentile(np.abs(r2.coc_px[_inside(h, w, 3)]), 90) < 0.05  # 3.4 m: sharp


def _fake_openexr(files: dict) -> types.ModuleType:
    """An ``OpenEXR`` module with the 3.x API (``File(path, separate_channels=True)
    .channels()[name].pixels``) serving ``files``: path -> {channel name: H x W array}."""
    mod = types.ModuleType("OpenEXR")

    class File:
        def __init__(self, path, separate_channels=False):
            assert separate_channels  # else R, G, B come merged as "RGB"
            self._chans = files[str(path)]

        def channels(self):
            return {n: types.SimpleNamespace(pixels=a) for n, a in self._chans.items()}

    mod.File = File
    return mod


def _exr_header(h: int, w: int) -> bytes:
    """The start of an EXR file declaring an h x w data window (what the pixel budget
    reads); the fake OpenEXR module serves the pixels."""
    import struct

    attr = b"dataWindow\0box2i\0" + struct.pack("<i4i", 16, 0, 0, w - 1, h - 1)
    return b"v/1\x01" + struct.pack("<i", 2) + attr + b"\0"


def test_exr_is_read_with_the_openexr_package_the_error_names(tmp_path, monkeypatch):
    """An EXR depth map failed with 'install an EXR plugin (pip install OpenEXR)', and
    after that install it failed the same way: refocus only asked imageio, which has
    no OpenEXR plugin."""
    from refocus.io.depthfile import read_depth_file

    z = _planes_m(12, 18)
    files = {}
    for name, chans in {
        "z.exr": {"Z": z},
        "layers.exr": {"R": z * 0 + 0.5, "G": z * 0, "B": z * 0, "A": z * 0 + 1, "ViewLayer.Depth.Z": z},
        "grey.exr": {"R": z, "G": z, "B": z},
        "y_alpha.exr": {"Y": z, "A": z * 0 + 1},
        "colour.exr": {"R": z, "G": z * 2, "B": z},
        "other.exr": {"foo": z, "bar": z},
    }.items():
        (tmp_path / name).write_bytes(_exr_header(*z.shape))
        files[str(tmp_path / name)] = chans
    monkeypatch.setitem(sys.modules, "OpenEXR", _fake_openexr(files))
    for name in ("z.exr", "layers.exr", "grey.exr", "y_alpha.exr"):
        np.testing.assert_array_equal(read_depth_file(tmp_path / name), z)
    with pytest.raises(RefocusError, match="colour channels that differ"):
        read_depth_file(tmp_path / "colour.exr")
    with pytest.raises(RefocusError, match="bar, foo and none of them is a depth map"):
        read_depth_file(tmp_path / "other.exr")


def test_a_channels_first_colour_map_is_refused_like_a_channels_last_one(tmp_path):
    """A 3 x H x W array of a colour-mapped preview (channels first, as torch saves
    images) was read as its red plane without a word; the same map H x W x 3 is
    refused. Channels first now follow the channels-last rule."""
    from refocus.io.depthfile import read_depth_file

    d = (1.0 / _planes_m(12, 18)).astype(np.float32)
    np.save(tmp_path / "colour.npy", np.stack([d, d[::-1], d * 0.5]))
    with pytest.raises(RefocusError, match=r"3 colour channels that differ \(shape 3x12x18\)"):
        read_depth_file(tmp_path / "colour.npy")
    np.save(tmp_path / "grey.npy", np.stack([d, d, d]))  # a grey saved as colour
    np.save(tmp_path / "one.npy", d[None])
    for name in ("grey.npy", "one.npy"):
        np.testing.assert_array_equal(read_depth_file(tmp_path / name), d)


def test_a_file_named_npy_that_is_not_one_says_so(tmp_path):
    """A text (or image) file named .npy was refused with NumPy's pickle advice:
    'contains pickled (object) data. If you trust the file you can load it unsafely
    using the allow_pickle= keyword argument'."""
    from refocus.io.depthfile import read_depth_file

    (tmp_path / "notes.npy").write_text("depth 1.5 m\n")
    with pytest.raises(RefocusError) as exc:
        read_depth_file(tmp_path / "notes.npy")
    msg = str(exc.value)
    assert "not a NumPy .npy file" in msg and "pickle" not in msg and "\n" not in msg
    np.save(tmp_path / "objects.npy", np.array([{"z": 1.0}], dtype=object), allow_pickle=True)
    with pytest.raises(RefocusError, match="holds Python objects"):
        read_depth_file(tmp_path / "objects.npy")


def test_a_depth_map_in_millimetres_is_flagged_and_metres_give_their_range(tmp_path):
    """A float depth map in millimetres was read as metres with the note 'float
    distances, taken to be in metres' only: --focus-value 2.5m then lay in front of
    everything (disparity 499.75) and the only hint was a warning about blur radii
    of 5000 px."""
    from refocus.depth import get_depth

    img = _textured(12, 18)
    np.save(tmp_path / "mm.npy", _planes_m(12, 18) * 1000)
    np.save(tmp_path / "m.npy", _planes_m(12, 18))
    notes = get_depth(None, image=img, depth_path=tmp_path / "mm.npy", depth_kind="depth").notes
    assert any("millimetres" in n and n.startswith("warning:") for n in notes), notes
    notes = get_depth(None, image=img, depth_path=tmp_path / "m.npy", depth_kind="depth").notes
    assert not any("millimetres" in n for n in notes)
    assert any("taken to be in metres (1 .. 5 m)" in n for n in notes), notes


def _depth_of_metric_disparity(tmp_path, capsys, out_name: str) -> str:
    """`refocus depth p.png -d disp.npy -o OUT` on a metric disparity map (1-5 m):
    its stderr on one line, after checking that it succeeded."""
    from refocus.cli import main
    from refocus.io.depthfile import write_depth_file

    write_image(tmp_path / "p.png", _textured(12, 18))
    write_depth_file(tmp_path / "disp.npy", 1.0 / _planes_m(12, 18), "disparity", metric=True)
    with pytest.raises(SystemExit) as exc:
        main(["depth", str(tmp_path / "p.png"), "-d", str(tmp_path / "disp.npy"), "-o", str(tmp_path / out_name)])
    err = " ".join(capsys.readouterr().err.split())
    assert exc.value.code in (0, None), err
    return err


def test_refocus_depth_reports_metric_disparity_in_metres(tmp_path, capsys):
    """`refocus info` gives an iPhone's depth in metres and --focus-value takes
    metres, but `refocus depth` reported the same map in 1/m only."""
    err = _depth_of_metric_disparity(tmp_path, capsys, "out.npy")
    assert "distances 1 m .. 5 m" in err and "0.2 .. 1 1/m" in err, err


def test_zeros_in_an_8_bit_depth_map_say_how_to_keep_the_nearest_subject(tmp_path):
    """An 8-bit depth PNG normalised with 0 = nearest, given with --depth-kind depth:
    its nearest plane (all 0) was 'invalid, filled from their neighbours', i.e.
    merged into the plane behind it, and the warning did not say why or what to do."""
    from PIL import Image

    from refocus.depth import get_depth

    z = _planes_m(12, 18)
    Image.fromarray(np.round((z - 1) / 4 * 255).astype(np.uint8)).save(tmp_path / "z8.png")
    notes = get_depth(None, image=_textured(12, 18), depth_path=tmp_path / "z8.png", depth_kind="depth").notes
    assert any(n.startswith("warning:") and "if 0 means the nearest" in n and "larger = nearer" in n for n in notes), notes
    holes = z.copy()
    holes[0, :4] = 0  # metric distances with holes: 0 is 'no reading', no such hint
    np.save(tmp_path / "holes.npy", holes)
    notes = get_depth(None, image=_textured(12, 18), depth_path=tmp_path / "holes.npy", depth_kind="depth").notes
    assert any("filled from their neighbours" in n for n in notes) and not any("0 means the nearest" in n for n in notes)


def test_refocus_depth_to_pfm_says_when_metric_disparity_loses_its_metres(tmp_path, capsys):
    """An iPhone's metric disparity written with `refocus depth -o d.pfm` came back
    through --depth as relative disparity (metres refused) without a word; PFM of a
    distance map already had its note."""
    err = _depth_of_metric_disparity(tmp_path, capsys, "d.pfm")
    assert "PFM cannot record" in err and "no distances in metres" in err, err


def test_a_16_bit_png_of_distances_says_why_it_is_relative(tmp_path):
    """A 16-bit PNG in millimetres (as RGB-D cameras save depth) with --depth-kind
    depth is relative (an image's unit is unknown), and nothing said so: metres were
    then refused with 'use metric depth (--depth FILE --depth-kind depth ...)', what
    the user had just done."""
    from PIL import Image

    from refocus.depth import get_depth

    Image.fromarray(np.round(_planes_m(12, 18) * 1000).astype(np.uint16)).save(tmp_path / "mm.png")
    res = get_depth(None, image=_textured(12, 18), depth_path=tmp_path / "mm.png", depth_kind="depth")
    assert not res.metric
    assert any("used as relative depth" in n and "float map in metres" in n for n in res.notes), res.notes


def test_iphone_heic_disparity_range_is_in_1_per_m_not_metres(shared_data):
    """The pug HEIC's d_min/d_max (1.498, 4.383) were read as the nearest and farthest
    distance in metres: the pug at 2.44 m, though its head, 780 px wide at Apple's
    3033 px focal length, would then be 63 cm wide. They are its disparity range in
    1/m (the same numbers as the depthData XMP's FloatMinValue/FloatMaxValue, beside
    AuxiliaryImageType disparity): the pug at 0.37 m, the wall at 0.67 m."""
    from refocus.depth import get_depth

    photo = shared_data / "phone-depth" / "iphone13pro-pug.heic"
    if not photo.exists():
        pytest.skip("iphone13pro-pug.heic not in the shared data")
    r = get_depth(photo, neighbour=False, refine=False)
    assert r.metric and r.kind == "disparity"
    assert r.disparity_range() == pytest.approx((1.498046875, 4.3828125), rel=1e-4)
    eye_m = 1.0 / float(r.values[1790, 2420])  # the pug's eye
    assert 0.3 < eye_m < 0.45, eye_m
    head_cm = 780 / 3032.6 * eye_m * 100  # width in px / focal length in px * distance
    assert 8 < head_cm < 16, head_cm  # a pug's head
    assert any("accuracy 'relative'" in n for n in r.notes), r.notes


def test_infinite_distances_are_infinitely_far_not_filled_from_the_ground(tmp_path):
    """A rendered depth pass stores the sky as +inf metres. It was 'invalid, filled from
    its neighbours': the sky took the depth of the planes below it and stayed sharp
    when focusing on them. +inf distance is disparity 0, also after resampling and
    through `refocus depth`'s file."""
    from refocus.depth import get_depth

    h, w = 24, 36
    img = _textured(h, w)
    z = _planes_m(h, w)
    z[:8] = np.inf
    np.save(tmp_path / "z.npy", z)
    np.save(tmp_path / "z_small.npy", np.ascontiguousarray(z[::3, ::3]))
    for name in ("z.npy", "z_small.npy"):
        res = get_depth(None, image=img, depth_path=tmp_path / name, depth_kind="depth")
        d = res.disparity()
        assert res.disparity_range() == pytest.approx((0.0, 1.0))
        assert np.abs(d[:6]).max() < 1e-6, name  # the sky: farthest of all
        assert d[-4:, 2 * w // 6 + 2] == pytest.approx(1 / 2.6, abs=1e-3)  # 2.6 m keeps its disparity (1/m)
        assert not any("filled" in n for n in res.notes), res.notes
        np.testing.assert_allclose(1.0 / res.values[:6], 0.0, atol=1e-9)  # written back as infinitely far


def test_a_render_background_of_1e10_says_to_write_it_as_inf(tmp_path):
    """Blender's depth pass stores the background as 1e10 m: refused as 'not a usable
    depth map' with no way out; the line now says to write it as inf (read as
    infinitely far). A map that is huge everywhere gets no such hint."""
    from refocus.io.depthfile import read_depth_file

    z = _planes_m(12, 18)
    z[:4] = 1e10
    np.save(tmp_path / "blender.npy", z)
    with pytest.raises(RefocusError, match="write them as inf.*infinitely far"):
        read_depth_file(tmp_path / "blender.npy")
    np.save(tmp_path / "huge.npy", _planes_m(12, 18) * 1e7)
    with pytest.raises(RefocusError, match="not a usable depth map$"):
        read_depth_file(tmp_path / "huge.npy")
