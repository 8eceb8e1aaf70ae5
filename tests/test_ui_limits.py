"""Issue 18, item 6: the UI bounds what one request can cost (pixels, bytes, cache,
queue) and leaves no files behind."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from refocus.errors import RefocusError
from refocus.io import read_image
from refocus.pipeline import RefocusConfig
from refocus.ui import session as s
from test_limits import bomb_png


@pytest.fixture()
def files(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(tmp_path / "p.png")
    np.save(tmp_path / "d.npy", np.tile(np.linspace(0, 1, 80, dtype=np.float32), (60, 1)))
    return str(tmp_path / "p.png"), str(tmp_path / "d.npy")


@pytest.fixture(autouse=True)
def _empty_cache():
    s._cache.clear()
    yield
    s._cache.clear()


def test_large_photo_is_prepared_on_a_working_copy_and_exported_at_full_size(files, tmp_path, monkeypatch):
    monkeypatch.setattr(s, "WORK_PIXELS", 1200, raising=False)
    from refocus.pipeline.refocuser import Refocuser
    from refocus.pipeline.stages import load_disparity

    sizes = []

    def depth(image, path, cfg, notes):
        sizes.append(image.shape[0] * image.shape[1])
        return load_disparity(image, path, cfg, notes)

    monkeypatch.setattr(s, "default_refocuser", lambda: Refocuser(depth=depth))
    key = s.load(*files)
    assert sizes and max(sizes) <= 1200, "the full-size photo was prepared"
    entry = s.get(key)
    h, w = entry.full.shape
    assert h * w <= 1200 and entry.full.scale < 1
    img, _, _ = s.render(key, RefocusConfig(focus_xy=(70, 30), strength=4))
    assert img.shape[0] * img.shape[1] <= 1200
    out = s.export(key, RefocusConfig(focus_xy=(70, 30), strength=4), tmp_path, "png8")
    assert read_image(out)[0].shape == (60, 80, 3)


def test_request_bytes_are_bounded(files, monkeypatch):
    monkeypatch.setattr(s, "MAX_REQUEST_BYTES", 1000, raising=False)
    with pytest.raises(RefocusError, match="per request"):
        s.load(*files)


def test_upload_declaring_too_many_pixels_is_refused_before_decoding(tmp_path, monkeypatch):
    monkeypatch.setenv("REFOCUS_MAX_MEGAPIXELS", "1")
    p = tmp_path / "bomb.png"
    p.write_bytes(bomb_png(1600, 1200))
    import refocus.pipeline.stages as stages

    monkeypatch.setattr(stages, "read_image", lambda *a, **k: pytest.fail("decoded"))
    with pytest.raises(RefocusError, match="pixel limit"):
        s.load(str(p))


def test_cache_is_bounded_in_bytes(files, tmp_path, monkeypatch):
    monkeypatch.setattr(s, "CACHE_BYTES", 10_000, raising=False)
    k1 = s.load(*files)
    other = tmp_path / "q.png"
    Image.fromarray(np.zeros((60, 80, 3), np.uint8)).save(other)
    k2 = s.load(str(other), files[1])
    assert k2 in s._cache and k1 not in s._cache


def test_upload_and_export_folders_are_removed_on_exit(monkeypatch):
    from refocus.ui import app

    monkeypatch.delenv("GRADIO_TEMP_DIR", raising=False)
    app._offline_env()
    uploads = os.environ["GRADIO_TEMP_DIR"]
    dirs = app.ui_dirs()
    assert uploads.startswith(dirs["root"]) and os.path.isdir(dirs["exports"])
    app.cleanup()
    assert not os.path.exists(dirs["root"])


def test_queue_is_bounded(monkeypatch):
    from refocus.ui import app

    calls = {}

    class Fake:
        def queue(self, **kw):
            calls.update(kw)

        def launch(self, **kw):
            pass

    monkeypatch.setattr(app, "build_app", lambda device: Fake())
    monkeypatch.setattr(app, "theme", lambda: None)
    app.launch(block=False)
    assert calls.get("max_size") and calls["max_size"] <= 64


def test_gradio_does_not_decode_uploads_before_our_check():
    pytest.importorskip("gradio")
    from refocus.ui.app import build_app

    app = build_app("cpu")
    images = {b.elem_id: b for b in app.blocks.values() if type(b).__name__ == "Image" and b.elem_id in ("photo", "custom-aperture")}
    assert set(images) == {"photo", "custom-aperture"}
    assert all(b.image_mode is None for b in images.values())
