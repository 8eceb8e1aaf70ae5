"""The UI's logic without a browser: caching, preview size, export formats."""

from __future__ import annotations

import inspect
import os
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from refocus.io import read_image
from refocus.pipeline import RefocusConfig
from refocus.ui import session


def _ui_files(tmp_path, name: str = "p.jpg", **save) -> tuple[str, str]:
    """The UI tests' photo (80 x 60 noise, saved as ``name`` with Pillow's ``save``
    options) and its disparity (a left-to-right ramp, ``d.npy``)."""
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(tmp_path / name, **save)
    np.save(tmp_path / "d.npy", np.tile(np.linspace(0, 1, 80, dtype=np.float32), (60, 1)))
    return str(tmp_path / name), str(tmp_path / "d.npy")


@pytest.fixture()
def files(tmp_path):
    exif = Image.Exif()
    exif[0x010F] = "TestMake"
    return _ui_files(tmp_path, exif=exif.tobytes())


def test_prepared_once_and_preview_limited(files, monkeypatch):
    calls = []
    import refocus.ui.session as s

    from refocus.pipeline.refocuser import Refocuser
    from refocus.pipeline.stages import load_disparity

    depth = lambda *a: calls.append(1) or load_disparity(*a)  # noqa: E731
    monkeypatch.setattr(s, "default_refocuser", lambda: Refocuser(depth=depth))
    monkeypatch.setattr(s, "PREVIEW_PIXELS", 1200)
    s._cache.clear()
    k1 = session.load(*files)
    k2 = session.load(*files)
    assert k1 == k2 and len(calls) == 1
    img, coc, fd = session.render(k1, RefocusConfig(focus_xy=(70, 30), strength=4))
    assert img.shape[0] * img.shape[1] <= 1200 and coc.shape == img.shape[:2]
    assert fd > 0.7


def test_draft_is_smaller_with_the_same_blur_in_proportion(files, monkeypatch):
    import refocus.ui.session as s

    monkeypatch.setattr(s, "PREVIEW_PIXELS", 1200)
    monkeypatch.setattr(s, "DRAFT_PIXELS", 300)
    s._cache.clear()
    key = session.load(*files)
    cfg = RefocusConfig(focus_xy=(70, 30), strength=8)
    img, coc, fd = session.render(key, cfg)
    dimg, dcoc, dfd = session.render(key, cfg, draft=True)
    assert dimg.shape[0] * dimg.shape[1] <= 300 < img.shape[0] * img.shape[1]
    assert dfd == pytest.approx(fd, abs=0.05)
    # Blur radii scale with the image: the draft's CoC range is the preview's times the size ratio.
    ratio = dimg.shape[1] / img.shape[1]
    assert np.abs(dcoc).max() == pytest.approx(np.abs(coc).max() * ratio, rel=0.15)


@pytest.mark.parametrize("fmt, suffix, bits", [("png16", ".png", 16), ("png8", ".png", 8), ("jpeg", ".jpg", 8)])
def test_export_full_resolution(files, tmp_path, fmt, suffix, bits):
    key = session.load(*files)
    out = session.export(key, RefocusConfig(strength=3, quality="fast"), tmp_path, fmt)
    img, info = read_image(out)
    assert out.suffix == suffix and img.shape == (60, 80, 3) and info.bit_depth == bits
    if fmt == "jpeg":
        with Image.open(out) as o:
            assert o.getexif().get(0x010F) == "TestMake"


def test_ui_builds_offline_with_system_fonts():
    pytest.importorskip("gradio")
    import os

    from refocus.ui.app import build_app, theme

    app = build_app()
    assert app is not None
    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"
    t = theme()
    # No web font: nothing for the browser to fetch from a font CDN.
    assert "googleapis" not in repr(vars(t))
    assert not [f for f in t._font if type(f).__name__ == "GoogleFont"]


def test_depth_warnings_reach_the_status_line(tmp_path):
    """Issue 13 (left over): a depth map with NaNs gives `warning: ...filled` in the
    CLI; the UI showed only DeblurNet's note. Its notes now carry the depth's too."""
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(tmp_path / "p.png")
    d = np.tile(np.linspace(0, 1, 50, dtype=np.float32), (40, 1))
    d[5:9, 5:9] = np.nan
    np.save(tmp_path / "d.npy", d)
    session._cache.clear()
    key = session.load(str(tmp_path / "p.png"), str(tmp_path / "d.npy"))
    found = session.notes(key)
    assert any("NaN" in n or "non-finite" in n or "invalid" in n for n in found), found
    assert len(found) == len(set(found))


def test_in_focus_band_keeps_a_range_of_depth_sharp(files):
    """Issue 14, item 5 (UI): the "in-focus depth band" slider keeps a band of
    disparity around the clicked plane sharp; the CoC view shows it in focus."""
    from refocus.ui.app import _config

    session._cache.clear()
    key = session.load(*files)
    plane = _config((40, 30), "strength", 8, 2.8, "disc", 6, 0, 0, None, 0.0, device="cpu")
    band = _config((40, 30), "strength", 8, 2.8, "disc", 6, 0, 0, None, 0.3, device="cpu")
    _, coc_plane, fd = session.render(key, plane)
    _, coc_band, fd2 = session.render(key, band)
    assert fd2 == pytest.approx(fd)
    assert (np.abs(coc_band) < 1e-6).sum() > 5 * max(1, (np.abs(coc_plane) < 1e-6).sum())
    assert np.abs(coc_band).max() > 0


def test_a_focus_mask_sets_the_preview_focus_and_wins_over_the_click(files, tmp_path):
    """The UI's focus mask (white = subject): the preview focuses at the disparity
    under it, whatever was clicked, and the status says so."""
    from refocus.ui.app import _config

    session._cache.clear()
    key = session.load(*files)
    m = np.zeros((30, 40), np.uint8)  # half the photo's size, same aspect ratio
    m[10:20, 30:36] = 255  # columns 60..71 of the photo: disparity about 0.76..0.9
    Image.fromarray(m).save(tmp_path / "mask.png")
    cfg = _config((5, 30), "strength", 8, 2.8, "disc", 6, 0, 0, None, 0.0, str(tmp_path / "mask.png"), device="cpu")
    assert cfg.focus_mask and cfg.focus_xy is None
    _, coc, fd = session.render(key, cfg)
    _, _, fd_click = session.render(key, _config((66, 30), "strength", 8, 2.8, "disc", 6, 0, 0, None, 0.0, None, device="cpu"))
    assert fd == pytest.approx(fd_click, abs=0.03) and fd > 0.7


@pytest.fixture(scope="module")
def tiny_metric_model(tmp_path_factory):
    """A randomly initialised metric Depth Anything, saved locally (nothing downloaded)."""
    transformers = pytest.importorskip("transformers")
    import torch

    torch.manual_seed(0)
    bb = transformers.Dinov2Config(
        image_size=56, patch_size=14, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=32, out_indices=[1, 2], reshape_hidden_states=False,
    )
    cfg = transformers.DepthAnythingConfig(
        backbone_config=bb, reassemble_hidden_size=16, reassemble_factors=[2, 1], neck_hidden_sizes=[8, 16],
        fusion_hidden_size=8, head_hidden_size=4, depth_estimation_type="metric", max_depth=20,
    )
    d = tmp_path_factory.mktemp("tiny-metric")
    transformers.DepthAnythingForDepthEstimation(cfg).save_pretrained(d)
    proc_cls = getattr(transformers, "DPTImageProcessorPil", None) or transformers.DPTImageProcessor
    proc_cls(size={"height": 56, "width": 56}, keep_aspect_ratio=True, ensure_multiple_of=14).save_pretrained(d)
    return str(d)


def test_ui_depth_model_is_used_for_a_photo_without_depth(files, tiny_metric_model, tmp_path):
    """Issue 14 (UI): the depth-model box picks the network for a photo without depth;
    the photo is cached per model, and a model that cannot be had is an error."""
    from refocus.errors import RefocusError

    photo = tmp_path / "alone.jpg"
    photo.write_bytes(open(files[0], "rb").read())  # no neighbouring depth map
    session._cache.clear()
    key = session.load(str(photo), depth_model=f"  {tiny_metric_model} ")
    entry = session.get(key)
    assert "network via transformers" in entry.full.depth_source and tiny_metric_model in entry.full.depth_source
    assert "metric depth" in entry.full.depth_source and entry.depth_model == tiny_metric_model
    assert session.load(str(photo), depth_model=tiny_metric_model) == key
    with pytest.raises(RefocusError):
        session.load(str(photo), depth_model=str(tmp_path / "no-such-model"))


def test_depth_view_marks_the_in_focus_band(files):
    """Issue 14, item 5 (UI): the depth view hatches exactly what renders sharp, and
    "show depth" lays it over the result."""
    gr = pytest.importorskip("gradio")  # noqa: F841
    from refocus.depth.preview import BAND_RGB, colorize, depth_overlay

    d = np.tile(np.linspace(0, 1, 80, dtype=np.float32), (60, 1))
    band = (d > 0.4) & (d < 0.6)
    ov = depth_overlay(d, band)
    marked = np.all(np.isclose(ov, BAND_RGB), axis=2)
    assert marked[band].mean() > 0.25 and not marked[~band].any()
    np.testing.assert_allclose(ov[~band], colorize(d)[~band])
    assert np.array_equal(depth_overlay(d, np.zeros_like(band)), colorize(d))

    from refocus.ui.app import build_app

    app = build_app(device="cpu")
    upload = _fn(app, "on_photo")
    settings = ("strength", 8, 2.8, "disc", 6, 0, 0, None, 0.2, None, True, 2.0, 0.0)
    session._cache.clear()
    key, _, _, _, (before, after), depth_img, coc_img, status, _ = upload(_REQ, files[0], files[1], "disparity", False, "", *settings, False)[:9]
    _, _, _, _, (_, shown), depth_img2, _, _, _ = upload(_REQ, files[0], files[1], "disparity", False, "", *settings, True)[:9]
    assert depth_img.shape == before.shape and np.array_equal(depth_img, depth_img2)
    green = np.all(depth_img == np.round(BAND_RGB * 255).astype(np.uint8), axis=2)
    assert green.any() and not np.array_equal(after, shown)
    assert "sharp from disparity" in status


# -- the browser trial's defects (handlers called as Gradio calls them) -------------

_REQ = SimpleNamespace(session_hash="tab-1")
#: The UI's settings, in the order of app.build_app's list: blur mode, strength, f-number,
#: aperture, blades, rotation, curvature, custom aperture, band, focus mask, deblur,
#: highlight boost, cat's-eye, show depth.
_SETTINGS = ("strength", 8, 2.8, "disc", 6, 0, 0, None, 0.0, None, True, 2.0, 0.0, 0.0, 0.0, False, False)


def _fn(app, name):
    return next(f.fn for f in app.fns.values() if getattr(f.fn, "__name__", "") == name)


def _dep(app, elem_id, event):
    """The event listener of the component ``elem_id`` for ``event``."""
    ids = {b._id for b in app.blocks.values() if getattr(b, "elem_id", None) == elem_id}
    found = [f for f in app.fns.values() if any(t[0] in ids and t[1] == event for t in f.targets)]
    assert found, f"nothing listens to {event} of #{elem_id}"
    return found


@pytest.fixture()
def ui_app():
    pytest.importorskip("gradio")
    from refocus.ui.app import build_app

    views = getattr(session, "_views", {})  # the browser tabs' render order
    session._cache.clear()
    views.clear()
    yield build_app(device="cpu")
    session._cache.clear()
    views.clear()


def test_heic_photo_gets_an_upright_browser_viewable_stand_in(ui_app, files, tmp_path):
    """Trial C, defect 1: Chromium shows a HEIC as a 0x0 broken image, so nothing could
    be clicked. The Photo panel gets a JPEG of the same (upright) pixel size."""
    pillow_heif = pytest.importorskip("pillow_heif")
    rng = np.random.default_rng(2)
    heic = tmp_path / "p.heic"
    im = Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated 90 degrees: 48 wide, 64 high
    pillow_heif.from_pillow(im).save(heic, quality=90, exif=exif.tobytes())
    np.save(tmp_path / "dh.npy", np.tile(np.linspace(0, 1, 48, dtype=np.float32), (64, 1)))
    key, _, source, shown, *_ = _fn(ui_app, "on_photo")(_REQ, str(heic), str(tmp_path / "dh.npy"), "disparity", False, "", *_SETTINGS)
    assert key and source == str(heic) and isinstance(shown, str), "the panel kept the HEIC"
    ref, _ = read_image(heic)
    with Image.open(shown) as s:
        assert s.format in ("JPEG", "PNG") and s.size == (ref.shape[1], ref.shape[0])
    assert ref.shape[:2] == (64, 48) and session.get(key).full_shape == ref.shape[:2]
    # A photo the browser shows as it is keeps its panel.
    out = _fn(ui_app, "on_photo")(_REQ, files[0], files[1], "disparity", False, "", *_SETTINGS)
    assert session.display_copy(files[0], tmp_path) is None and not isinstance(out[3], str)


def test_last_click_wins(ui_app, files):
    """Trial C, defect 2: a second click made during a render was dropped (Gradio's
    "once"), and a click's late render must not replace a newer click's."""
    import gradio as gr

    dep = _dep(ui_app, "photo", "select")[0]
    assert dep.trigger_mode != "once", "a click during a render is dropped"
    key = _fn(ui_app, "on_photo")(_REQ, *files, "disparity", False, "", *_SETTINGS)[0]
    click = _fn(ui_app, "on_click")
    first = click(_REQ, key, *_SETTINGS, gr.SelectData(None, {"index": [5, 30], "value": None}))
    second = click(_REQ, key, *_SETTINGS, gr.SelectData(None, {"index": [75, 30], "value": None}))
    assert next(first)[4].startswith("focus point (5, 30)")  # its draft
    assert next(second)[4].startswith("focus point (75, 30)")  # the newer click's draft
    late = list(first)  # the first click's preview finishes last: it must not show
    assert all(o is None or isinstance(o, dict) or o == (5.0, 30.0) for o in late[0][1:]), late[0][4]
    status = next(second)[4]
    assert status.startswith("focus point (75, 30)") and "- preview" in status
    # A slider moved before the click's render came back keeps the click's focus.
    settings = list(_SETTINGS)
    settings[1] = 12
    out = _fn(ui_app, "on_settings")(_REQ, key, None, *settings)
    assert out[3].startswith("focus point (75, 30)")


def test_grain_box_keeps_the_photos_grain_in_the_preview_and_the_export(ui_app, tmp_path):
    """The command line's --grain in the UI: a noisy photo blurred behind its focal
    plane keeps its grain there (the preview and the export), and the status says so."""
    from test_grain import _hh_sigma, _two_planes

    photo, img = _two_planes(tmp_path)
    depth = str(tmp_path / "p-disparity.npy")
    key = _fn(ui_app, "on_photo")(_REQ, str(photo), depth, "disparity", False, "", *_SETTINGS)[0]
    assert any(d.fn.__name__ == "on_settings" for d in _dep(ui_app, "grain", "change"))
    settings = list(_SETTINGS)
    settings[1] = 12
    shown = {}
    for grain in (False, True):
        settings[15] = grain
        out = _fn(ui_app, "on_settings")(_REQ, key, (10, 80), *settings)
        assert ("grain added back" in out[3]) == grain, out[3]
        shown[grain] = np.asarray(out[0][1], np.float32)[8:-8, 140:-8, 1] / 255
        path = _fn(ui_app, "on_export")(_REQ, key, (10, 80), "png8", "physical", *settings)
        shown[grain, "export"] = np.asarray(Image.open(path), np.float32)[8:-8, 140:-8, 1] / 255
    for k in (None, "export"):
        plain, grainy = (shown[False] if k is None else shown[False, k]), (shown[True] if k is None else shown[True, k])
        assert _hh_sigma(grainy) > 2 * _hh_sigma(plain), k


def test_typed_slider_values_end_with_the_full_preview(ui_app, files):
    """Trial C, defect 3: a typed value (number box + Enter, arrow keys) sends no
    "release", so only the draft showed. Each slider's "change" renders the preview."""
    for elem in ("strength", "band"):
        deps = _dep(ui_app, elem, "change")
        assert any(getattr(d.fn, "__name__", "") in ("on_slider", "on_settings") for d in deps)
    key = _fn(ui_app, "on_photo")(_REQ, *files, "disparity", False, "", *_SETTINGS)[0]
    settings = list(_SETTINGS)
    settings[1] = 20
    draft = _fn(ui_app, "on_drag")(_REQ, key, None, *settings)
    assert "- draft" in draft[3]
    assert "- preview" in _fn(ui_app, "on_slider")(_REQ, key, None, *settings)[3]
    # A draft of the same value that comes back late leaves the preview on screen.
    assert all(isinstance(o, dict) for o in _fn(ui_app, "on_drag")(_REQ, key, None, *settings))


def test_depth_kind_radio_reprepares(ui_app, files):
    """Trial C, defect 4: "the depth file holds" did nothing after the upload."""
    fn = _fn(ui_app, "on_depth_kind")
    assert any(d.fn is fn for d in _dep(ui_app, "depth-kind", "change"))
    k1 = _fn(ui_app, "on_photo")(_REQ, *files, "disparity", False, "", *_SETTINGS)[0]
    out = fn(_REQ, files[0], files[1], "depth", False, "", *_SETTINGS)
    assert out[0] != k1 and session.get(out[0]).depth_kind == "depth"
    assert "- preview" in out[7] and out[8] is None
    # Without a depth file the radio changes nothing.
    assert all(isinstance(o, dict) for o in fn(_REQ, files[0], None, "disparity", False, "", *_SETTINGS))


def test_align_depth_box_aligns_a_depth_file_at_the_photos_size(ui_app, tmp_path):
    """The command line's --align-depth in the UI: a map at the photo's size with a soft
    step is used as it is until the box is ticked, then snapped to the photo's edge (the
    glow of a bright subject over its blurred background, bokehme-13)."""
    from test_depth_cli import _soft_map_photo

    photo, _, _ = _soft_map_photo(tmp_path)
    depth = str(tmp_path / "p-disparity.npy")
    fn = _fn(ui_app, "on_depth_kind")
    assert any(d.fn is fn for d in _dep(ui_app, "align-depth", "change"))

    def middle(key):
        d = session.get(key).full.disparity
        return int(((d > 0.2) & (d < 0.8)).sum())

    plain = _fn(ui_app, "on_photo")(_REQ, str(photo), depth, "disparity", False, "", *_SETTINGS)
    assert plain[0] is not None and not session.get(plain[0]).align_depth and middle(plain[0]) > 0, plain[7]
    aligned = fn(_REQ, str(photo), depth, "disparity", True, "", *_SETTINGS)
    assert aligned[0] != plain[0] and session.get(aligned[0]).align_depth and middle(aligned[0]) == 0, aligned[7]
    # Without a depth file the box changes nothing.
    assert all(isinstance(o, dict) for o in fn(_REQ, str(photo), None, "disparity", True, "", *_SETTINGS))


def test_removed_depth_or_photo_is_not_used_and_new_photo_empties_download(ui_app, files, tmp_path):
    """Trial C, defects 5 and 6: removing the depth file or the photo left them live
    (status, renders, export); a new photo kept the previous export for download."""
    clears = {getattr(f.fn, "__name__", "") for e in ("photo", "depth") for f in _dep(ui_app, e, "clear")}
    assert {"on_photo_removed", "on_depth"} <= clears
    out = _fn(ui_app, "on_photo")(_REQ, *files, "disparity", False, "", *_SETTINGS)
    assert "d.npy" in out[7] and out[8] is None  # the Download panel is emptied
    out = _fn(ui_app, "on_depth")(_REQ, files[0], None, "disparity", False, "", *_SETTINGS)
    # Here the photo alone is refused (sharp, no depth network): nothing stays live.
    assert (out[0] is None or session.get(out[0]).depth_path is None) and "d.npy" not in out[7] and out[8] is None
    out = _fn(ui_app, "on_photo_removed")(_REQ)
    assert out[0] is None and out[2] is None and out[4] is None and out[8] is None
    assert "upload a photo" in _fn(ui_app, "on_settings")(_REQ, None, None, *_SETTINGS)[3]


# -- user trial D (handlers called as Gradio calls them) ------------------------------

LENS_BLUR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "phone-depth" / "motorola-lensblur-gdepth.jpg"


def _skipped(out) -> bool:
    return all(isinstance(o, dict) and o.get("__type__") == "update" and len(o) == 1 for o in out)


def test_messages_name_the_ui_controls_not_cli_options(ui_app, files, tmp_path):
    """Trial D, defect 3: the UI quoted CLI options ("pass --depth FILE", "use --strength").
    One table (app.UI_WORDS) words every message shown by the UI with its controls."""
    from refocus.depth import _options
    from refocus.depth.estimate import unavailable_message
    from refocus.io.limits import check_pixels
    from refocus.pipeline.photo import NO_STATED_LENS
    from refocus.ui.app import UI_WORDS, ui_message

    with pytest.raises(Exception) as budget:
        check_pixels(60000, 60000, "huge.png", 10**8)
    pipeline_lines = [
        _options(), NO_STATED_LENS, unavailable_message("a/b", "offline", True), str(budget.value),
        "--f-number needs metric depth (a distance map in metres: --depth FILE --depth-kind depth); use --strength",
        "d.npy: read as disparity (larger = nearer); pass --depth-kind depth if it holds distances",
        "invalid --strength (-k): Input should be less than or equal to 1000, got 2000",
    ]
    for line in pipeline_lines:
        shown = ui_message(line)
        # What only the UI's start can change is said as the command that starts it.
        assert not re.search(r"(?<![\w-])--?[a-z]", shown.replace("refocus --max-megapixels N ui", "")), shown
    assert ui_message(_options()).startswith('upload a "Depth or disparity map"')
    assert set(UI_WORDS) >= {"--depth FILE", "--depth-model PATH", "--strength", "--f-number", "--focus"}
    # In the handlers: the sharp photo alone is refused, in the UI's words.
    alone = tmp_path / "alone.jpg"
    alone.write_bytes(Path(files[0]).read_bytes())
    out = _fn(ui_app, "on_photo")(_REQ, str(alone), None, "disparity", False, "", *_SETTINGS)
    assert out[0] is None and "in focus everywhere" in out[7] and "Depth or disparity map" in out[7] and "--" not in out[7]


def test_ui_does_not_force_hf_hub_offline(monkeypatch):
    """Trial D, defect 4: the UI set HF_HUB_OFFLINE=1 (blocking the depth network's one
    download) and then told the user to unset it. It leaves the variable to the user."""
    from refocus.ui import app

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    app._offline_env()
    assert "HF_HUB_OFFLINE" not in os.environ
    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"  # still offline towards Gradio
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    app._offline_env()
    assert os.environ["HF_HUB_OFFLINE"] == "1"  # the user's own setting stays


def test_a_click_under_a_mask_is_not_used_after_the_mask_is_removed(ui_app, files, tmp_path):
    """Trial D, defect 5: a click made while a focus mask was set (and not used) became
    the focus once the mask was removed. Removing the mask now returns to the focus
    from before it: the last click made before the mask (here at x=5)."""
    import gradio as gr

    m = np.zeros((30, 40), np.uint8)
    m[10:20, 30:36] = 255
    Image.fromarray(m).save(tmp_path / "mask.png")
    key = _fn(ui_app, "on_photo")(_REQ, *files, "disparity", False, "", *_SETTINGS)[0]
    click = _fn(ui_app, "on_click")
    list(click(_REQ, key, *_SETTINGS, gr.SelectData(None, {"index": [5, 30], "value": None})))
    masked = list(_SETTINGS)
    masked[9] = str(tmp_path / "mask.png")
    assert _fn(ui_app, "on_settings")(_REQ, key, (5.0, 30.0), *masked)[3].startswith("focus mask")
    under_mask = list(click(_REQ, key, *masked, gr.SelectData(None, {"index": [75, 30], "value": None})))
    assert all(_skipped(o) for o in under_mask), "the click under the mask changed something"
    status = _fn(ui_app, "on_settings")(_REQ, key, (5.0, 30.0), *_SETTINGS)[3]  # mask removed
    assert status.startswith("focus point (5, 30)"), status


@pytest.mark.parametrize("what", ["own lens of a photo that states none", "mask of another aspect ratio"])
def test_an_error_does_not_leave_the_old_preview_on_screen(ui_app, files, tmp_path, what):
    """Trial D, defect 6: after an error the previous settings' preview stayed on screen
    as if the new settings had made it. The panels are emptied and the status says why."""
    from refocus.ui.app import OWN_LENS_MODE

    key = _fn(ui_app, "on_photo")(_REQ, *files, "disparity", False, "", *_SETTINGS)[0]
    settings = list(_SETTINGS)
    settings[1] = 12  # a preview on screen first
    assert _fn(ui_app, "on_settings")(_REQ, key, None, *settings)[0] is not None
    if what.startswith("own lens"):
        settings[0] = OWN_LENS_MODE
    else:
        Image.fromarray(np.full((10, 60), 255, np.uint8)).save(tmp_path / "wide.png")
        settings[9] = str(tmp_path / "wide.png")
    result, depth_view, coc_view, status = _fn(ui_app, "on_settings")(_REQ, key, None, *settings)
    assert result is None and depth_view is None and coc_view is None
    assert status.startswith("error: ") and "--" not in status
    # The same settings again are rendered again (nothing is taken to be on screen).
    assert not _skipped(_fn(ui_app, "on_settings")(_REQ, key, None, *settings))


def test_rim_and_ring_sliders_shape_the_preview(ui_app, files):
    """The command line's --rim and --ring in the UI: they reach the renderer (the
    preview changes and the status names them)."""
    key = _fn(ui_app, "on_photo")(_REQ, *files, "disparity", False, "", *_SETTINGS)[0]
    shown = {}
    for name, rim, ring in (("plain", 0.0, 0.0), ("rim", 1.0, 0.0), ("ring", 0.0, 0.6)):
        settings = list(_SETTINGS)
        settings[1], settings[13], settings[14] = 30, rim, ring
        out = _fn(ui_app, "on_settings")(_REQ, key, (10, 30), *settings)
        shown[name] = np.asarray(out[0][1], np.float32)
        assert ("rim +1" in out[3]) == (name == "rim") and ("ring 0.6" in out[3]) == (name == "ring"), out[3]
    assert np.abs(shown["rim"] - shown["plain"]).max() > 2 and np.abs(shown["ring"] - shown["plain"]).max() > 2


def test_blade_controls_only_enabled_for_the_blades_aperture(ui_app):
    """Trial D, defect 7: Blades and Curvature could be moved with the disc aperture,
    where they do nothing."""
    comps = {b.elem_id: b for b in ui_app.blocks.values() if getattr(b, "elem_id", None) in ("blades", "rotation", "curvature")}
    assert set(comps) == {"blades", "rotation", "curvature"}
    assert all(c.interactive is False for c in comps.values()), "enabled with the default disc aperture"
    assert any(d.fn.__name__ == "on_aperture" for d in _dep(ui_app, "aperture", "change"))
    on_aperture = _fn(ui_app, "on_aperture")
    # (blades, rotation, curvature, rim, ring): a custom image carries its own rim and ring.
    interactive = lambda shape: [u["interactive"] for u in on_aperture(shape)]  # noqa: E731
    assert interactive("disc") == [False, False, False, True, True]
    assert interactive("blades") == [True, True, True, True, True]
    assert interactive("custom") == [False, True, False, False, False]


def test_the_slider_a_blur_mode_ignores_is_greyed_out(ui_app):
    """Found 2026-12-07: in f-number mode the strength slider stayed live (a typed 70
    re-rendered the same picture), and in strength mode the f-number slider."""
    comps = {b.elem_id: b for b in ui_app.blocks.values() if getattr(b, "elem_id", None) in ("strength", "f-number")}
    assert comps["f-number"].interactive is False and comps["strength"].interactive is not False  # strength mode at start
    assert any(d.fn.__name__ == "on_blur_mode" for d in _dep(ui_app, "blur-mode", "change"))
    on_blur_mode = _fn(ui_app, "on_blur_mode")
    interactive = lambda mode: [u["interactive"] for u in on_blur_mode(mode)]  # noqa: E731  (strength, f-number)
    from refocus.ui.app import FULL_FRAME_MODE, OWN_LENS_MODE

    assert interactive("strength") == [True, False]
    assert interactive("f-number") == [False, True]
    assert interactive(FULL_FRAME_MODE) == [False, True]
    assert interactive(OWN_LENS_MODE) == [False, False]


def test_photo_gets_the_pipelines_default_blur(ui_app, files):
    """Trial D, defect 8: the UI started every photo at strength 15, while the CLI (no -k)
    uses the lens a Lens Blur photo states, else 1.5 % of the long side. A new photo
    now sets the blur controls to the pipeline's default for it."""
    from refocus.pipeline.refocuser import default_refocuser
    from refocus.ui.app import OWN_LENS_MODE

    out = _fn(ui_app, "on_photo")(_REQ, *files, "disparity", False, "", *_SETTINGS)
    cli_k = default_refocuser().prepare(files[0], RefocusConfig(depth_path=files[1])).strength(RefocusConfig(), 0.0)
    assert out[9] == "strength" and out[10]["value"] == pytest.approx(cli_k, abs=0.05)
    assert f"strength {cli_k:.1f} px" in out[7]
    # The controls' change events that follow find that render on screen already.
    settings = list(_SETTINGS)
    settings[0], settings[1] = out[9], out[10]["value"]
    assert _skipped(_fn(ui_app, "on_settings")(_REQ, out[0], None, *settings))
    if not LENS_BLUR.exists():
        pytest.skip(f"{LENS_BLUR} not found (shared data)")
    out = _fn(ui_app, "on_photo")(_REQ, str(LENS_BLUR), None, "disparity", False, "", *_SETTINGS)
    own = default_refocuser().prepare(str(LENS_BLUR), RefocusConfig()).own_lens
    assert own is not None and out[9] == OWN_LENS_MODE
    assert out[10]["value"] == pytest.approx(own.strength_px, abs=0.05)
    assert f"strength {own.strength_px:.1f} px (full size)" in out[7]


@pytest.mark.parametrize("cuda", [False, True])
def test_genfocus_is_not_offered_without_a_cuda_gpu(monkeypatch, files, tmp_path, cuda):
    """Trial D, defect 9: the generative engine was offered on a CPU-only machine, where
    one image takes hours. Without CUDA it is shown disabled, saying why, and refused."""
    pytest.importorskip("gradio")
    import torch

    import refocus.pipeline.genfocus as genfocus
    from refocus.ui.app import build_app

    monkeypatch.setattr(genfocus, "available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    engine = next(b for b in build_app("cpu").blocks.values() if getattr(b, "elem_id", None) == "engine")
    assert engine.visible and engine.interactive is cuda
    assert ("CUDA" in engine.info) is not cuda
    if not cuda:
        import gradio as gr

        app = build_app("cpu")
        session._cache.clear()
        key = session.load(*files)
        with pytest.raises(gr.Error, match="CUDA"):
            _fn(app, "on_export")(_REQ, key, None, "png8", "genfocus", *_SETTINGS)


def test_export_reports_its_progress(ui_app, files, tmp_path, monkeypatch):
    """Trial D, defect 10: a full-size export (a 12 MP HEIC: ~100 s) showed no progress.
    The export reports its stages to a Gradio progress bar."""
    import gradio as gr

    import refocus.ui.session as s

    fn = _fn(ui_app, "on_export")
    assert any(isinstance(p.default, gr.Progress) for p in inspect.signature(fn).parameters.values())
    monkeypatch.setattr(s, "WORK_PIXELS", 1200)  # a working copy: the export runs the whole pipeline
    key = session.load(*files)
    said = []
    out = session.export(key, RefocusConfig(focus_xy=(70, 30), strength=4), tmp_path, "png8", progress=lambda f, t: said.append((f, t)))
    assert read_image(out)[0].shape == (60, 80, 3)
    texts = " | ".join(t for _, t in said)
    assert "depth" in texts and "rendering" in texts and "writing" in texts, texts
    assert [f for f, _ in said] == sorted(f for f, _ in said)
    # DeblurNet, most of a large export, counts its windows.
    from refocus.pipeline.refocuser import default_refocuser, reporting

    import refocus.deblur.infer as infer

    monkeypatch.setattr(infer, "auto_tile", lambda *a: 32)  # windows, as a 12 MP photo has on a CPU
    said.clear()
    image = np.random.default_rng(3).random((48, 64, 3)).astype(np.float32)
    aif, _ = reporting(default_refocuser(), lambda f, t: said.append((f, t)), "full size: ").deblurrer(image, "cpu")
    assert aif.shape == image.shape and any("window" in t for _, t in said), said


def test_loading_a_photo_reports_its_progress(ui_app, files):
    """A 12 MP HEIC took 25-40 s to load behind Gradio's bare spinner: the upload now
    reports its stages (and DeblurNet its windows), and the photo kept for the later
    renders reports nothing (those belong to other requests)."""
    import gradio as gr

    fn = _fn(ui_app, "on_photo")
    assert any(isinstance(p.default, gr.Progress) for p in inspect.signature(fn).parameters.values())
    said = []
    session._cache.clear()
    key = session.load(*files, progress=lambda f, t: said.append((f, t)))
    texts = " | ".join(t for _, t in said)
    assert "reading the photo" in texts and "depth" in texts, texts
    assert [f for f, _ in said] == sorted(f for f, _ in said)
    n = len(said)
    session.render(key, RefocusConfig(focus_xy=(70, 30), strength=4))
    assert len(said) == n  # the render reported nothing to the finished upload
