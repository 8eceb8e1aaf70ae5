"""The UI's highlight boost and cat's-eye: the command line has ``--highlight-gain`` and
``--cats-eye``; the UI had neither, so a photo whose lights bloomed too much (or too
little) could not be changed there, nor could the lemon-shaped discs of a fast lens be
asked for. Lightroom's Lens Blur offers both (its "Boost" and "cat eye" bokeh).

Handlers are called as Gradio calls them (see tests/test_ui_session.py).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

_REQ = SimpleNamespace(session_hash="bokeh-controls-tab")


def _settings(boost: float = 2.0, cats_eye: float = 0.0, strength: float = 30):
    from test_ui_session import _SETTINGS

    s = list(_SETTINGS)
    s[1], s[11], s[12] = strength, boost, cats_eye
    return tuple(s)


def _fn(app, name):
    return next(f.fn for f in app.fns.values() if getattr(f.fn, "__name__", "") == name)


@pytest.fixture()
def lights(tmp_path):
    """Small clipped lights on a dark far wall, one near a corner, and a near subject."""
    h, w = 120, 160
    img = np.full((h, w, 3), 30, np.uint8)
    for y, x in ((60, 80), (14, 18)):
        img[y - 1 : y + 2, x - 1 : x + 2] = 255
    img[90:110, 120:150] = 120
    disp = np.zeros((h, w), np.float32)
    disp[90:110, 120:150] = 1.0
    Image.fromarray(img).save(tmp_path / "lights.png")
    np.save(tmp_path / "d.npy", disp)
    return str(tmp_path / "lights.png"), str(tmp_path / "d.npy")


def test_boost_and_cats_eye_reach_the_render(lights):
    pytest.importorskip("gradio")
    from refocus.ui import session
    from refocus.ui.app import _config, build_app

    cfg = _config((125, 100), *_settings(boost=0.0, cats_eye=0.6)[:-1], device="cpu")
    assert cfg.highlight_gain == 0.0 and cfg.aperture.cats_eye == 0.6
    blades = list(_settings(cats_eye=0.6)[:-1])
    blades[3] = "blades"
    assert _config((125, 100), *blades, device="cpu").aperture.cats_eye == 0.6

    session._cache.clear()
    app = build_app("cpu")
    key = _fn(app, "on_photo")(_REQ, *lights, "disparity", False, "", *_settings())[0]
    after = {}
    for name, s in {"plain": _settings(boost=0.0), "boost": _settings(boost=6.0),
                    "eye": _settings(boost=6.0, cats_eye=1.0)}.items():
        out = _fn(app, "on_settings")(_REQ, key, (135, 100), *s)  # focus on the near subject
        assert "disparity 1.000" in out[3], out[3]  # the near subject (auto focus finds it too)
        after[name] = np.asarray(out[0][1], np.float32).mean(axis=2)
    # The boosted light spreads more light over the wall (level 30) around it.
    ring = (slice(45, 76), slice(65, 96))
    assert (after["boost"][ring] - 30).sum() > 2 * (after["plain"][ring] - 30).sum()
    # Cat's-eye clips the corner light's disc; the centre one keeps its own.
    corner = (slice(0, 40), slice(0, 45))
    corner_change = np.abs(after["eye"][corner] - after["boost"][corner]).max()
    centre = (slice(55, 66), slice(75, 86))
    assert corner_change > 5
    assert np.abs(after["eye"][centre] - after["boost"][centre]).max() < corner_change / 2

    exported = {}
    for name, s in {"plain": _settings(boost=0.0), "eye": _settings(boost=6.0, cats_eye=1.0)}.items():
        out = _fn(app, "on_export")(_REQ, key, (135, 100), "png8", "physical", *s)
        with Image.open(out) as im:
            assert im.size == (160, 120)
            exported[name] = np.asarray(im.convert("RGB"), np.float32).mean(axis=2)
    # The export renders with them too (review: only its size was checked).
    assert np.abs(exported["eye"][corner] - exported["plain"][corner]).max() > 5


def test_show_depth_reuses_the_render_and_the_status_names_boost_and_cats_eye(lights, monkeypatch):
    """The UI trial: ticking "Show depth" re-rendered the same preview (7 s with
    cat's-eye), and nothing on screen said whether the boost or cat's-eye were applied."""
    pytest.importorskip("gradio")
    from refocus.ui import session
    from refocus.ui.app import build_app

    session._cache.clear()
    app = build_app("cpu")
    key = _fn(app, "on_photo")(_REQ, *lights, "disparity", False, "", *_settings())[0]
    calls = []
    render = session.render_result
    monkeypatch.setattr(session, "render_result", lambda *a, **k: calls.append(1) or render(*a, **k))
    s = list(_settings(boost=6.0, cats_eye=0.5))
    plain = _fn(app, "on_settings")(_REQ, key, (135, 100), *s)
    s[-1] = True  # show depth
    shown = _fn(app, "on_settings")(_REQ, key, (135, 100), *s)
    assert len(calls) == 1
    assert not np.array_equal(np.asarray(plain[0][1]), np.asarray(shown[0][1]))  # the overlay is drawn
    assert "cat's-eye 0.5" in plain[3] and "highlight boost 6" in plain[3]
    s[11] = 2.0  # the default boost: not named; a new render
    out = _fn(app, "on_settings")(_REQ, key, (135, 100), *s)
    assert len(calls) == 2 and "highlight boost" not in out[3]


def test_the_status_says_what_the_blur_starts_from(lights):
    """The UI trial: unticking "Deblur first" changed nothing on a sharp photo (DeblurNet
    was not needed there) and nothing on screen said so."""
    pytest.importorskip("gradio")
    from refocus.ui import session
    from refocus.ui.app import build_app

    session._cache.clear()
    app = build_app("cpu")
    key = _fn(app, "on_photo")(_REQ, *lights, "disparity", False, "", *_settings())[0]
    s = list(_settings())
    ticked = _fn(app, "on_settings")(_REQ, key, (135, 100), *s)[3]
    s[10] = False  # Deblur first
    unticked = _fn(app, "on_settings")(_REQ, key, (135, 100), *s)[3]
    assert "from the photo as it is (no deblurring needed" in ticked
    assert "from the photo as it is (Deblur first unticked)" in unticked


def test_the_status_names_a_lens_blur_photos_stored_original(tmp_path):
    """A Lens Blur photo: at its own focus the photo itself; focused elsewhere, the
    original it stores (said as such, not as DeblurNet's)."""
    pytest.importorskip("gradio")
    from test_own_lens import _lens_blur_file

    from refocus.ui import session
    from refocus.ui.app import build_app

    session._cache.clear()
    path, _, _ = _lens_blur_file(tmp_path)
    app = build_app("cpu")
    out = _fn(app, "on_photo")(_REQ, str(path), None, "disparity", False, "", *_settings())
    key, status = out[0], out[7]
    assert "from the photo as it is (no deblurring needed" in status, status
    s = list(_settings())
    s[0], s[1] = out[-2], out[-1]  # the photo's own lens, as the load set it
    session.set_view(_REQ.session_hash, key, (5, 60))  # a click on the near end
    near = _fn(app, "on_settings")(_REQ, key, (5, 60), *s)[3]
    assert "from the stored original" in near, near
