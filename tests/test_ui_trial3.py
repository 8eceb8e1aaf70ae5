"""Trial 3 of the web UI, as a photographer uses it: a second upload in the same tab,
a click or an export before the photo is ready, rapid clicks, the status line of a
large photo, and a restart of ``refocus ui`` right after stopping it.

The browser test needs Gradio, Playwright's Python package and a Chromium at
/usr/bin/chromium (never downloaded); it skips with the reason otherwise.
"""

from __future__ import annotations

import os
import re
import socket
import time
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from refocus.ui import session
from test_ui_session import _SETTINGS, _ui_files

_REQ = SimpleNamespace(session_hash="trial3-tab")


@pytest.fixture()
def files(tmp_path):
    return _ui_files(tmp_path)


@pytest.fixture(scope="module")
def ui_app():
    pytest.importorskip("gradio")
    from refocus.ui.app import build_app

    return build_app("cpu")


@pytest.fixture(autouse=True)
def _empty_cache():
    session._cache.clear()
    yield
    session._cache.clear()


def _fn(app, name):
    return next(f.fn for f in app.fns.values() if getattr(f.fn, "__name__", "") == name)


def _dep(app, elem_id, event):
    """The event's server-side listeners (a browser-only one, js without fn, is left out:
    the photo's upload also sets the status to "loading" in the page)."""
    ids = {b._id for b in app.blocks.values() if getattr(b, "elem_id", None) == elem_id}
    return [f for f in app.fns.values() if f.fn is not None and any(t[0] in ids and t[1] == event for t in f.targets)]


def _skipped(outputs) -> bool:
    return all(isinstance(o, dict) and o.get("__type__") == "update" and len(o) == 1 for o in outputs)


def test_a_photo_upload_takes_the_file_unprocessed(ui_app, tmp_path):
    """Defect 1: the photo panel is an output of its own upload (its stand-in, or
    gr.skip()). Any update makes Gradio rebuild the component for that tab, without the
    preprocess that hands a file over undecoded: the second bad file uploaded in a tab
    failed inside Gradio (Pillow's UnidentifiedImageError, "Error" in 8 panels, a
    traceback in the server's log). The upload now takes Gradio's raw payload."""
    (dep,) = _dep(ui_app, "photo", "upload")
    assert dep.preprocess is False, "the photo's upload goes through Gradio's Image.preprocess (Pillow)"
    bad = tmp_path / "holiday.jpg"
    bad.write_text("this is not a photo\n")
    payload = {"path": str(bad), "url": None, "size": None, "orig_name": bad.name, "mime_type": None, "is_stream": False,
               "meta": {"_type": "gradio.FileData"}}
    out = _fn(ui_app, "on_photo")(_REQ, payload, None, "disparity", False, "", *_SETTINGS)
    status = out[7]
    assert out[0] is None and status.startswith("error: cannot read image holiday.jpg") and "/tmp" not in status, status


def test_a_photo_upload_reads_raw_depth_and_mask_payloads(ui_app, files, tmp_path):
    """The raw payloads of the same event (depth map, focus mask) are read as paths too."""
    m = np.zeros((30, 40), np.uint8)
    m[10:20, 30:36] = 255
    Image.fromarray(m).save(tmp_path / "mask.png")
    settings = list(_SETTINGS)
    settings[9] = {"path": str(tmp_path / "mask.png"), "orig_name": "mask.png", "meta": {"_type": "gradio.FileData"}}
    out = _fn(ui_app, "on_photo")(_REQ, {"path": files[0]}, {"path": files[1]}, "disparity", False, "", *settings)
    assert out[0] is not None and out[7].startswith("focus mask"), out[7]


def test_a_click_before_the_photo_is_ready_is_a_warning(ui_app):
    """Defect 2: a click on a photo whose preparation failed (or is still running) said
    "upload a photo first" beside the uploaded photo, marked the panels "Error" and
    printed a traceback in the server's log. It is now a warning that leaves the
    panels and the status line (its error) as they are."""
    import gradio as gr

    click = _fn(ui_app, "on_click")
    with pytest.warns(UserWarning, match="no photo is ready yet"):  # gr.Warning outside a request
        out = list(click(_REQ, None, *_SETTINGS, gr.SelectData(None, {"index": [5, 30], "value": None})))
    assert len(out) == 1 and _skipped(out[0])


@pytest.mark.parametrize("case", ["no photo", "bad setting"])
def test_export_errors_print_no_traceback(ui_app, files, case):
    """Defect 3: every export refusal was a gr.Error that Gradio prints with its
    traceback in the server's log; the page shows its one line, the log nothing."""
    import gradio as gr

    key = None
    settings = list(_SETTINGS)
    if case == "bad setting":
        key = _fn(ui_app, "on_photo")(_REQ, *files, "disparity", False, "", *_SETTINGS)[0]
        settings[3] = "custom"  # no "Custom aperture shape" uploaded
    with pytest.raises(gr.Error) as exc:
        _fn(ui_app, "on_export")(_REQ, key, None, "png8", "physical", *settings)
    assert exc.value.print_exception is False
    assert "\n" not in str(exc.value.message)


def test_a_superseded_click_renders_no_preview(ui_app, files, monkeypatch):
    """Defect 4: with rapid clicks every click rendered its full preview after its draft,
    even when a newer click had come meanwhile and the preview could never be shown
    (eight quick clicks on a 1.4 MP photo took ~17 s to settle on 2 cores)."""
    import gradio as gr

    key = _fn(ui_app, "on_photo")(_REQ, *files, "disparity", False, "", *_SETTINGS)[0]
    renders = []
    real = session.render
    monkeypatch.setattr(session, "render", lambda *a, **k: renders.append(k.get("draft", False)) or real(*a, **k))
    click = _fn(ui_app, "on_click")
    first = click(_REQ, key, *_SETTINGS, gr.SelectData(None, {"index": [5, 30], "value": None}))
    assert next(first)[4].startswith("focus point (5, 30)")  # its draft is shown
    second = click(_REQ, key, *_SETTINGS, gr.SelectData(None, {"index": [75, 30], "value": None}))
    assert next(second)[4].startswith("focus point (75, 30)")
    renders.clear()
    rest = list(first)
    assert renders == [], "the superseded click rendered its preview"
    assert all(_skipped(o[1:]) for o in rest)
    status = next(second)[4]
    assert status.startswith("focus point (75, 30)") and "- preview" in status


def test_the_status_gives_the_photos_own_size(ui_app, files, monkeypatch):
    """Defect 5: a large photo (prepared on a working copy) read "focus point (966, 768)
    ... preview 866x1154 of 1224x1632" for a 1932x2576 photo: the point and K are in the
    photo's pixels, the size was the working copy's, as if the export would be that small."""
    monkeypatch.setattr(session, "WORK_PIXELS", 1200)
    out = _fn(ui_app, "on_photo")(_REQ, *files, "disparity", False, "", *_SETTINGS)
    assert session.get(out[0]).full.scale < 1
    assert re.search(r"- preview \d+x\d+ of 80x60;", out[7]), out[7]
    assert "working copy" in out[7]  # the note says what the preview was made from


def test_the_ui_restarts_on_its_port_right_after_it_stopped():
    """Defect 6: `refocus ui` refused to start on the port of a UI stopped a moment ago
    ("port 7860 is in use") while the old connections were in TIME_WAIT (a minute);
    the server itself (uvicorn, SO_REUSEADDR) could listen there. A port where a program
    still listens is refused as before (test_ui_command)."""
    if os.name == "nt":
        pytest.skip("TIME_WAIT reuse is the POSIX case")
    from refocus.cli.cmd_ui import check_can_listen

    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    srv.listen()
    client = socket.create_connection(("127.0.0.1", port))
    conn, _ = srv.accept()
    conn.close()  # the server side closes first: its end of the connection waits in TIME_WAIT
    time.sleep(0.05)
    client.close()
    srv.close()
    check_can_listen("127.0.0.1", port)


# -- in a real browser ----------------------------------------------------------------

# The browser, its flags and the server fixture of the first browser tests (one server
# per module, as there).
from test_ui_browser import ARGS, CHROMIUM, ui_url  # noqa: E402, F401


def test_second_upload_and_click_after_an_error_in_one_tab(ui_url, tmp_path, capfd):
    """Defects 1 and 2 through the real server, in one tab: a photo whose depth map does
    not fit, a click on it, then a text file named .jpg twice. Each says its one line;
    no panel shows "Error" and the server prints no traceback."""
    from playwright.sync_api import sync_playwright

    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(tmp_path / "shot.jpg")
    np.save(tmp_path / "square.npy", np.zeros((50, 50), np.float32))
    bad = [tmp_path / "holiday.jpg", tmp_path / "notes.jpg"]
    for b in bad:
        b.write_text("this is not a photo\n" + b.name)
    capfd.readouterr()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(ui_url, wait_until="load", timeout=90_000)
        page.wait_for_selector("#status", timeout=60_000)
        status = page.locator("#status")
        page.locator("#depth input[type=file]").set_input_files(str(tmp_path / "square.npy"))
        page.wait_for_timeout(1000)
        page.locator("#photo input[type=file]").set_input_files(str(tmp_path / "shot.jpg"))
        status.get_by_text(re.compile("different aspect ratio")).wait_for(timeout=60_000)
        box = page.locator("#photo img").first.bounding_box()
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.get_by_text(re.compile("no photo is ready yet")).first.wait_for(timeout=30_000)
        assert "different aspect ratio" in status.inner_text(), "the click replaced the error"
        assert not page.get_by_text(re.compile(r"^Error$")).count(), "a panel shows Error after the click"
        page.locator("#depth button[aria-label='Clear']").first.click()
        page.wait_for_function("() => !document.querySelector('#status').innerText.includes('aspect')", timeout=60_000)
        for b in bad:  # after a load that failed, and after a second one
            page.locator("#photo input[type=file]").set_input_files(str(b))
            status.get_by_text(re.compile(r"^error: cannot read image " + re.escape(b.name))).wait_for(timeout=60_000)
            assert not page.get_by_text(re.compile(r"^Error$")).count(), f"{b.name}: a panel shows Error"
        browser.close()
    log = capfd.readouterr()
    assert "Traceback" not in log.out + log.err and "UnidentifiedImageError" not in log.out + log.err


def test_a_photo_uploaded_while_another_loads_wins(ui_app, files, tmp_path, monkeypatch):
    """Defect 7: a Lens Blur JPEG (5 s to load), then at once a small JPEG: the small
    one's panel showed, but the first load finished last and took over the result,
    the status, the renders of clicks and the export (the flowers focused and exported
    under a photo of a house). A load overtaken by a newer one now changes nothing."""
    other = tmp_path / "second.jpg"
    Image.fromarray(np.random.default_rng(2).integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(other)
    on_photo = _fn(ui_app, "on_photo")
    real, newer = session.load, []

    def load(path, *a, **k):
        if path == files[0] and not newer:  # the second upload comes, and ends, meanwhile
            newer.append(on_photo(_REQ, str(other), files[1], "disparity", False, "", *_SETTINGS))
        return real(path, *a, **k)

    monkeypatch.setattr(session, "load", load)
    late = on_photo(_REQ, *files, "disparity", False, "", *_SETTINGS)
    assert session.get(newer[0][0]).source_path == str(other)
    assert _skipped(late), "the overtaken load replaced the newer photo's result"
    assert session.view_focus(_REQ.session_hash, newer[0][0], None) is None  # the newer photo's view


def test_a_depth_map_uploaded_while_the_photo_loads_is_used(ui_app, files, monkeypatch):
    """Defect 8: a depth map dropped while the photo was still loading was ignored (the
    photo's load had not set the tab's photo yet): the photo rendered without it, or
    said "no depth for this photo ... upload a Depth or disparity map" beside it."""
    on_depth = _fn(ui_app, "on_depth")
    real, depth_event = session.load, []

    def load(path, depth_path=None, *a, **k):
        if depth_path is None and not depth_event:  # the map arrives during the photo's load
            depth_event.append(on_depth(_REQ, None, files[1], "disparity", False, "", *_SETTINGS))
        return real(path, depth_path, *a, **k)

    monkeypatch.setattr(session, "load", load)
    first = _fn(ui_app, "on_photo")(_REQ, files[0], None, "disparity", False, "", *_SETTINGS)
    out = depth_event[0]
    assert isinstance(out[0], str), "the depth map uploaded during the photo's load was ignored"
    assert session.get(out[0]).depth_path == files[1], out[7]
    assert out[2] == files[0] and "depth from file d.npy" in out[7]
    assert _skipped(first), "the photo's own load, without the map, replaced the result"


def test_no_upload_or_export_is_dropped_while_another_runs(ui_app):
    """Defect 7, in the page: Gradio's default trigger ("once") dropped a photo or depth
    map uploaded while a load ran (the panel showed it over the other photo's result),
    and an export click made while an export ran (the Download kept the old settings')."""
    for elem, event in (("photo", "upload"), ("photo", "clear"), ("depth", "upload"), ("depth", "clear"), ("export", "click")):
        (dep,) = _dep(ui_app, elem, event)
        assert dep.trigger_mode != "once", f"{elem}.{event} drops a second event"


@pytest.mark.parametrize("load", ["new photo", "depth kind"])
def test_a_load_renders_the_controls_moved_while_it_ran(ui_app, files, monkeypatch, load):
    """Defect 9: "The depth file holds: depth" (a reload of 10-20 s), then the in-focus
    band set to 0.2 and "show depth" ticked while it ran: the reload finished with the
    settings from its start (no band, no depth overlay) under controls that showed them,
    and the export, made from the controls, differed from that preview."""
    banded = list(_SETTINGS)
    banded[8] = 0.3
    on_photo, on_settings = _fn(ui_app, "on_photo"), _fn(ui_app, "on_settings")
    key = None
    if load == "depth kind":
        key = on_photo(_REQ, *files, "disparity", False, "", *_SETTINGS)[0]
    real, moved = session.load, []

    def slow_load(*a, **k):
        if not moved:  # the band is moved while the load runs
            moved.append(on_settings(_REQ, key, None, *banded))
        return real(*a, **k)

    monkeypatch.setattr(session, "load", slow_load)
    if load == "new photo":
        out = on_photo(_REQ, *files, "disparity", False, "", *_SETTINGS)
    else:
        out = _fn(ui_app, "on_depth_kind")(_REQ, files[0], files[1], "depth", False, "", *_SETTINGS)
    assert "sharp from disparity" in out[7], out[7]
    if load == "new photo":  # no photo ready yet: the status of the load stays
        assert _skipped(moved[0])


def test_a_photo_whose_first_render_fails_stays_loaded(ui_app, files):
    """Defect 10: a photo that loaded fine but whose first render was refused by a
    setting ("Aperture: custom" without its image, "f-number" on relative depth) was
    dropped: changing the setting then did nothing (or said "upload a photo"), and the
    photo had to be uploaded again. It stays; the next setting renders it."""
    custom = list(_SETTINGS)
    custom[3] = "custom"
    out = _fn(ui_app, "on_photo")(_REQ, files[0], files[1], "disparity", False, "", *custom)
    assert out[7].startswith("error: ") and "Custom aperture shape" in out[7] and out[4] is None
    assert isinstance(out[0], str), "the loaded photo was dropped"
    fixed = _fn(ui_app, "on_settings")(_REQ, out[0], None, *_SETTINGS)
    assert fixed[0] is not None and fixed[3].startswith("focus auto"), fixed[3]


def test_a_depth_map_given_while_a_new_photo_loads_sets_the_photos_blur_defaults(ui_app, files, monkeypatch):
    """Review: the photo's own load is overtaken by the depth map's, and only the photo's
    set the blur controls to the photo's defaults: the new photo rendered with the
    previous photo's strength (77 px here), or in its own-lens mode."""
    on_depth = _fn(ui_app, "on_depth")
    real, depth_event = session.load, []
    previous = ("strength", 77, *_SETTINGS[2:])

    def load(path, depth_path=None, *a, **k):
        if depth_path is None and not depth_event:
            depth_event.append(on_depth(_REQ, None, files[1], "disparity", False, "", *previous))
        return real(path, depth_path, *a, **k)

    monkeypatch.setattr(session, "load", load)
    _fn(ui_app, "on_photo")(_REQ, files[0], None, "disparity", False, "", *previous)
    out = depth_event[0]
    assert len(out) == 11 and out[9] == "strength"
    own, k = session.default_blur(out[0])
    assert out[10]["value"] == round(k, 1) != 77
    assert "strength 77.0" not in out[7] and f"strength {round(k, 1):.1f}" in out[7], out[7]
