"""One-line messages a UI trial found wrong: Pillow's decompression-bomb warning before
refocus's own refusal, "unset HF_HUB_OFFLINE" when it is not set."""

from __future__ import annotations

import struct
import warnings
import zlib

import pytest

from refocus.errors import RefocusError


def _png_header_only(path, w: int, h: int):
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                     + chunk(b"IEND", b""))


def test_a_photo_between_the_budget_and_twice_it_gets_one_line_no_pillow_warning(tmp_path, monkeypatch):
    from PIL import Image

    from refocus.io.limits import pillow_open

    # Pillow's guard is process-wide and only ever raised: an earlier test at the 100 MP
    # budget would leave it above this file's size, and no warning could be seen.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)

    p = tmp_path / "big.png"
    # 95 MP declared (nothing decoded) against a 90 MP budget, to which Pillow's own
    # guard is raised: Pillow warned, then refocus refused (a 108 MP JPEG at 100 MP).
    _png_header_only(p, 9500, 10000)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(RefocusError, match="pixel"):
            pillow_open(p, "big.png", limit=90_000_000)
    assert not [w for w in seen if "decompression bomb" in str(w.message).lower()], [str(w.message) for w in seen]


@pytest.mark.parametrize("offline", [False, True])
def test_no_depth_advice_says_unset_only_when_set(monkeypatch, offline):
    from refocus.depth import _options

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    if offline:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert ("unset HF_HUB_OFFLINE" in _options()) is offline


def test_a_constant_depth_map_is_not_said_to_leave_the_photo_unchanged(tmp_path):
    """The trial: "nothing will be refocused", then the whole frame was blurred with a
    40 px CoC (--focus-value 1 --no-normalize on a map of zeros)."""
    import numpy as np

    from refocus.depth import get_depth

    np.save(tmp_path / "d.npy", np.zeros((6, 8), np.float32))
    image = np.zeros((6, 8, 3), np.float32)
    notes = get_depth(None, depth_path=tmp_path / "d.npy", depth_kind="disparity", allow_estimate=False, image=image).notes
    said = " ".join(str(n) for n in notes)
    assert "constant" in said and "nothing will be refocused" not in said and "evenly blurred" in said


def test_a_focus_point_given_as_fractions_gets_a_warning(tmp_path):
    """The trial: --focus 0.5,0.5 was read as the top-left pixel, silently. Review: a
    click 2 px from the corner, on a half-size working copy, is (0.75, 0.75) there, and
    must not be warned about."""
    import numpy as np
    from PIL import Image

    from refocus.pipeline.bokeh import render_bokeh
    from refocus.pipeline.config import RefocusConfig
    from refocus.pipeline.refocuser import Refocuser

    d = np.tile(np.linspace(0, 1, 80, dtype=np.float32), (60, 1))
    img = np.zeros((60, 80, 3), np.float32)
    with pytest.warns(UserWarning, match=r"in pixels: the top-left corner .* its centre is 40,30"):
        render_bokeh(img, d, strength=2, focus_xy=(0.5, 0.5))
    Image.fromarray(np.zeros((400, 500, 3), np.uint8)).save(tmp_path / "p.png")
    np.save(tmp_path / "d.npy", np.tile(np.linspace(0, 1, 500, dtype=np.float32), (400, 1)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        render_bokeh(img, d, strength=2, focus_xy=(40.0, 30.0))
        render_bokeh(img, d, strength=2, focus_xy=(0.0, 0.0))
        cfg = RefocusConfig(depth_path=str(tmp_path / "d.npy"), focus_xy=(2.0, 2.0), strength=2, deblur="never")
        photo = Refocuser().prepare(str(tmp_path / "p.png"), cfg, work_pixels=50_000)
        assert photo.scale == 0.5
        photo.focus_disparity(cfg)


def test_info_says_a_16_bit_colour_png_is_16_bit(tmp_path):
    """The trial: a 16-bit grey PNG was "16-bit grey", a 16-bit RGB one just "RGB"
    (Pillow opens it as 8-bit RGB)."""
    import numpy as np

    from refocus.camera import read_camera_info
    from refocus.io import write_image

    img = np.random.default_rng(0).random((20, 30, 3)).astype(np.float32)
    write_image(tmp_path / "c16.png", img, bit_depth=16)
    write_image(tmp_path / "c8.png", img, bit_depth=8)
    write_image(tmp_path / "c16.tif", img, bit_depth=16)
    assert read_camera_info(tmp_path / "c16.png").mode == "RGB;16"
    assert read_camera_info(tmp_path / "c16.tif").mode == "RGB;16"
    assert read_camera_info(tmp_path / "c8.png").mode == "RGB"
    from pathlib import Path

    from refocus.io.image import _write_png16

    la = np.full((20, 30, 2), 40000, np.uint16)
    _write_png16(Path(tmp_path / "la16.png"), la, None)  # Pillow opens it as "RGBA" (review)
    assert read_camera_info(tmp_path / "la16.png").mode == "LA;16"


def test_a_photo_over_the_budget_gets_our_line_under_an_error_filter_too(tmp_path, monkeypatch):
    """Review: Pillow's decompression-bomb warning, dropped after the filters ran, came
    out as an exception under ``-W error`` instead of refocus's one line."""
    import numpy as np
    from PIL import Image

    from refocus.io.limits import pillow_open

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    Image.fromarray(np.zeros((100, 150, 3), np.uint8)).save(tmp_path / "b.png")  # 15,000 px
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(RefocusError, match="over the pixel limit"):
            pillow_open(tmp_path / "b.png", "photo b.png", limit=10_000)
