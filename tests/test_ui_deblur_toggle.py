"""The UI's "Deblur first" checkbox: the command line has ``--no-deblur``, the UI had no
way to blur a photo as it is (DeblurNet's output was used wherever it helped).

Handlers are called as Gradio calls them. To make the effect certain, the prepared
photo's DeblurNet output is replaced by black and its measured blur by 10 px, so that
"auto" uses it wherever the new blur is smaller: ticked, the preview turns dark; unticked,
it is the photo's own colours.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from refocus.ui import session

_REQ = SimpleNamespace(session_hash="deblur-tab")


def _settings(deblur: bool):
    #: blur mode, strength, f-number, aperture, blades, rotation, curvature, custom, band, mask, deblur, boost,
    #: cat's-eye, rim, ring, grain, show depth
    return ("strength", 2, 2.8, "disc", 6, 0, 0, None, 0.0, None, deblur, 2.0, 0.0, 0.0, 0.0, False, False)


def _fn(app, name):
    return next(f.fn for f in app.fns.values() if getattr(f.fn, "__name__", "") == name)


@pytest.fixture()
def files(tmp_path):
    Image.fromarray(np.full((60, 80, 3), 200, np.uint8)).save(tmp_path / "p.png")
    np.save(tmp_path / "d.npy", np.tile(np.linspace(0, 1, 80, dtype=np.float32), (60, 1)))
    return str(tmp_path / "p.png"), str(tmp_path / "d.npy")


def test_the_deblur_box_decides_whether_deblurnet_output_is_used(files):
    pytest.importorskip("gradio")
    from refocus.ui.app import _config, build_app

    assert _config((10, 10), *_settings(True)[:-1], device="cpu").deblur == "auto"
    assert _config((10, 10), *_settings(False)[:-1], device="cpu").deblur == "never"
    assert _config((10, 10), "strength", 8, 2.8, "disc", 6, 0, 0, None, 0.0, device="cpu").deblur == "auto"

    session._cache.clear()
    app = build_app("cpu")
    key = _fn(app, "on_photo")(_REQ, *files, "disparity", False, "", *_settings(True))[0]
    entry = session.get(key)
    for p in {id(p): p for p in (entry.full, entry.preview, entry.draft)}.values():
        p.all_in_focus = np.zeros_like(p.image)
        p._aif_linear = None
        p.input_blur_px = np.full(p.image.shape[:2], 10.0, np.float32)
    means = {}
    for deblur in (True, False):
        out = _fn(app, "on_settings")(_REQ, key, (40, 30), *_settings(deblur))
        _, after = out[0]
        means[deblur] = float(np.asarray(after, np.float32).mean())
    assert means[True] < 60 < 150 < means[False]
    session._cache.clear()
