"""Issue 18, item 6: the UI bounds what one request can cost (pixels, bytes, cache,
queue) and leaves no files behind."""

from __future__ import annotations

import os
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from refocus.errors import RefocusError
from refocus.io import read_image
from refocus.pipeline import RefocusConfig
from refocus.ui import session as s
from test_limits import bomb_png
from test_ui_session import _SETTINGS, _ui_files


@pytest.fixture()
def files(tmp_path):
    return _ui_files(tmp_path, "p.png")


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
    gr = pytest.importorskip("gradio")
    from refocus.ui.app import build_app

    app = build_app("cpu")
    ids = ("photo", "custom-aperture", "focus-mask")
    images = {b.elem_id: b for b in app.blocks.values() if isinstance(b, gr.Image) and b.elem_id in ids}
    assert set(images) == set(ids)
    assert all(b.image_mode is None for b in images.values())
    # The browser still gets Gradio's own image component.
    assert all(b.get_block_name() == "image" for b in images.values())


# -- user trial D: bad uploads and the messages about them ------------------------------

_REQ = SimpleNamespace(session_hash="tab-limits")


def _fn(app, name):
    return next(f.fn for f in app.fns.values() if getattr(f.fn, "__name__", "") == name)


def _cli_message(photo, depth=None) -> str:
    """What ``refocus refocus PHOTO [--depth D]`` prints after ``error:``."""
    from refocus.pipeline.refocuser import default_refocuser

    with pytest.raises(RefocusError) as e:
        default_refocuser().prepare(str(photo), RefocusConfig(depth_path=None if depth is None else str(depth)))
    return str(e.value)


@pytest.mark.parametrize("kind", ["text file named .jpg", "PNG declaring 60000x60000"])
def test_bad_upload_gets_the_clis_message_not_gradios(tmp_path, kind):
    """Trial D, defect 1: Gradio opened every upload with Pillow before our handler ran,
    so a text file named .jpg showed Pillow's "cannot identify" from inside Gradio and a
    60000x60000 PNG Pillow's decompression-bomb text. The file now reaches the pipeline
    undecoded, and the UI shows the CLI's line (its pixel budget, before decoding)."""
    gr = pytest.importorskip("gradio")
    from gradio.data_classes import FileData

    from refocus.ui.app import build_app, ui_message

    upload_dir = tmp_path / "gradio" / "0123abcd"
    upload_dir.mkdir(parents=True)
    if kind.startswith("text"):
        bad = upload_dir / "holiday.jpg"
        bad.write_text("this is not a photo\n")
    else:
        bad = upload_dir / "huge.png"
        bad.write_bytes(bomb_png(60000, 60000, rows=1))
    app = build_app("cpu")
    # No component class of ours: Gradio writes a .pyi stub beside the module of each.
    import refocus.ui.app as ui_app
    from pathlib import Path

    assert not list(Path(ui_app.__file__).parent.glob("*.pyi"))
    for elem in ("photo", "custom-aperture", "focus-mask"):
        comp = next(b for b in app.blocks.values() if isinstance(b, gr.Image) and b.elem_id == elem)
        assert comp.preprocess(FileData(path=str(bad), orig_name=bad.name)) == str(bad)
    out = _fn(app, "on_photo")(_REQ, str(bad), None, "disparity", False, "", *_SETTINGS)
    status = out[7]
    cli = _cli_message(bad)
    assert out[0] is None and status.replace("\\", "") == "error: " + ui_message(cli, [str(bad)])
    assert bad.name in status and str(upload_dir) not in status and "\n" not in status
    if kind.startswith("PNG"):
        assert "60000x60000" in status and "pixel limit" in status and "Decompression" not in status


def test_bad_depth_file_is_named_as_uploaded_not_by_the_servers_path(files, tmp_path):
    """Trial D, defect 2: a depth file Pillow cannot read gave a message quoting the
    server's temporary path (/tmp/gradio/<hash>/name.png); the UI shows the file's name."""
    pytest.importorskip("gradio")
    from refocus.ui.app import build_app

    upload_dir = tmp_path / "gradio" / "feedbeef"
    upload_dir.mkdir(parents=True)
    depth = upload_dir / "my depth.png"
    depth.write_text("not a PNG")
    assert "my depth.png" in _cli_message(files[0], depth) and str(upload_dir) not in _cli_message(files[0], depth)
    out = _fn(build_app("cpu"), "on_photo")(_REQ, files[0], str(depth), "disparity", False, "", *_SETTINGS)
    status = out[7]
    assert out[0] is None and "my depth.png" in status and str(tmp_path) not in status and "/tmp" not in status


def test_an_unexpected_os_error_in_the_ui_is_one_line_as_on_the_command_line(tmp_path, monkeypatch):
    """Found 2026-12-07: a 300-character name in "Depth network" raised OSError ("File
    name too long") out of the handler: a raw exception in a toast, "Error" in every
    panel. The name is refused in one line, and any other OSError the UI did not
    expect gets the command line's line too (refocus.errors.as_user_error)."""
    pytest.importorskip("gradio")
    from refocus.errors import as_user_error
    from refocus.ui.app import build_app

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("REFOCUS_DEBUG", raising=False)
    photo = tmp_path / "land.png"
    Image.fromarray((np.random.default_rng(0).random((60, 120, 3)) * 255).astype(np.uint8)).save(photo)
    on_photo = _fn(build_app("cpu"), "on_photo")
    out = on_photo(_REQ, str(photo), None, "disparity", False, "x" * 300, *_SETTINGS)
    assert out[0] is None and out[7].startswith("error: ") and "File name too long" in out[7] and "\n" not in out[7]

    def broken(*a, **k):
        raise PermissionError(13, "Permission denied", "/srv/cache/x")

    monkeypatch.setattr(s, "load", broken)
    out = _fn(build_app("cpu"), "on_photo")(_REQ, str(photo), None, "disparity", False, "", *_SETTINGS)
    assert out[7].replace("\\", "") == "error: cannot access /srv/cache/x: Permission denied"
    err = as_user_error(OSError(28, "No space left on device", "/out/x.png"))
    assert str(err) == "cannot access /out/x.png: No space left on device (the disk is full)" and err.exit_code == 2
    assert as_user_error(ValueError("bad\nthing")).exit_code == 1


def test_a_depth_map_after_a_failed_photo_load_sets_that_photos_blur_defaults(tmp_path, monkeypatch):
    """Found 2026-12-07: a photo whose load failed (no depth) kept the controls as they
    were (the slider's 8, or the previous photo's own-lens mode and K); uploading its
    depth map then rendered with them, not with the photo's default K, which the
    command line uses and which uploading the depth first gave."""
    pytest.importorskip("gradio")
    from refocus.ui.app import build_app

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    photo, depth = _ui_files(tmp_path, "land.png")
    (tmp_path / "d.npy").rename(tmp_path / "elsewhere.npy")  # not found beside the photo
    depth = str(tmp_path / "elsewhere.npy")
    app = build_app("cpu")
    req = SimpleNamespace(session_hash="tab-defaults-after-failure")
    out = _fn(app, "on_photo")(req, photo, None, "disparity", False, "", *_SETTINGS)
    assert out[0] is None and out[7].startswith("error: ")
    out = _fn(app, "on_depth")(req, out[2], depth, "disparity", False, "", *_SETTINGS)
    assert out[0] is not None, out[7]
    own, k = s.default_blur(out[0])
    assert not own and out[-2] == "strength" and out[-1]["value"] == pytest.approx(round(k, 1))
    assert round(k, 1) != _SETTINGS[1]
