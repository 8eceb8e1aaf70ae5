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
