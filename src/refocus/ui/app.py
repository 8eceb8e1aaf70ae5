"""The Gradio web UI (``refocus ui``; needs the ``refocus[ui]`` extra).

Fully offline: analytics off, system fonts only, nothing fetched from the internet;
binds 127.0.0.1 unless told otherwise. Logic lives in :mod:`refocus.ui.session`.
"""

# No `from __future__ import annotations`: Gradio recognises the gr.SelectData
# parameter by its (evaluated) annotation.
import json
import os
import re
import tempfile
import time
from pathlib import Path

import numpy as np

from refocus.errors import RefocusError, as_user_error, debug_requested
from refocus.render.config import RenderConfig

#: Upload size limit given to Gradio (per file; :func:`refocus.ui.session.check_request`
#: also bounds a request's files together).
DEFAULT_MAX_FILE_SIZE = "200mb"
#: Events waiting in the queue at most; more are refused ("queue full") instead of
#: piling up behind a slow one (2 run at once, one export at a time).
QUEUE_SIZE = 16
#: Seconds a slider's value must stay put before the full preview renders (drafts
#: show it meanwhile): a drag then costs no preview per step.
SLIDER_SETTLE_S = 0.3
_dirs: dict[str, str] = {}


def _user_error(exc: Exception) -> RefocusError:
    """The one line for any failure, as the command line gives it (:func:`as_user_error`);
    with REFOCUS_DEBUG=1 an unexpected one is raised, for its traceback."""
    if not isinstance(exc, RefocusError) and debug_requested():
        raise exc
    return as_user_error(exc)


def ui_dirs() -> dict[str, str]:
    """This process's folders for uploads (Gradio's cache) and exports, under one
    ``refocus-ui-*`` folder that is removed at exit (:func:`cleanup`)."""
    if not _dirs:
        import atexit

        root = tempfile.mkdtemp(prefix="refocus-ui-")
        _dirs.update(root=root, uploads=os.path.join(root, "uploads"), exports=os.path.join(root, "exports"))
        os.makedirs(_dirs["uploads"])
        os.makedirs(_dirs["exports"])
        atexit.register(cleanup)
    return dict(_dirs)


def cleanup() -> None:
    """Remove the uploads and exports of this process (also run at exit)."""
    import shutil

    if _dirs:
        shutil.rmtree(_dirs["root"], ignore_errors=True)
        _dirs.clear()
_SYSTEM_FONTS = ["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica", "Arial", "sans-serif"]
_MONO_FONTS = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"]


def _offline_env() -> None:
    # Must be set before gradio is imported: it reads them at import time.
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    # Uploads go to our own folder, removed at exit (Gradio's default, /tmp/gradio,
    # outlives the server).
    os.environ.setdefault("GRADIO_TEMP_DIR", ui_dirs()["uploads"])
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    # HF_HUB_OFFLINE is not set here: Gradio makes no hub requests (the page stays
    # offline without it), and forcing it blocked the depth network's one download that
    # the README promises for photos without depth, then told the user to unset a
    # variable they never set. A user's own HF_HUB_OFFLINE is respected.


def import_gradio():
    """Import Gradio offline, or explain how to install it."""
    _offline_env()
    try:
        import gradio as gr
    except ImportError:
        raise RefocusError("the web UI needs Gradio: pip install 'refocus[ui]'") from None
    return gr


#: The status while a photo loads (set in the browser, see the upload event).
LOADING = ("loading the photo: its depth, DeblurNet where it is needed, a first render "
           "(the first photo also loads the networks: up to half a minute)")
#: A control that does not apply to the chosen aperture (Blades and Curvature for a
#: disc) is disabled; Gradio draws a disabled slider as an enabled one (a lighter track,
#: its label and number as before), so the UI trial took Blades for usable. Dimmed here.
CSS = ".block:has(input[type=range]:disabled) { opacity: 0.45; }"


def theme():
    gr = import_gradio()
    return gr.themes.Default(font=_SYSTEM_FONTS, font_mono=_MONO_FONTS)


def upload_image(**kwargs):
    """A ``gr.Image`` (``type="filepath"``) that hands the uploaded file's path over
    without opening it.

    Gradio's own ``Image.preprocess`` runs ``PIL.Image.open`` on every upload, even with
    ``type="filepath"`` and ``image_mode=None``: a text file named .jpg, or a PNG that
    declares 60000x60000 pixels (Pillow's decompression-bomb check), then failed inside
    Gradio with Pillow's text. Here the file goes to the pipeline as it is, which
    answers with the CLI's one-line message (its pixel budget, checked first).

    The instance's ``preprocess`` is replaced rather than subclassing ``gr.Image``:
    Gradio writes a ``.pyi`` stub beside the module of every component class defined
    (``app.pyi`` appeared in the installed package). The replacement lives on this
    instance only: once an event returns an update for the component (``gr.skip()``
    included), Gradio builds a fresh ``gr.Image`` for that browser tab, with Pillow's
    check back. An upload event of a component that is also an output therefore takes
    its files unprocessed (``preprocess=False``, :func:`payload_path`).
    """
    gr = import_gradio()
    image = gr.Image(type="filepath", **kwargs)
    gradio_preprocess = image.preprocess

    def preprocess(payload):
        if payload is not None and getattr(payload, "path", None):
            return str(payload.path)
        return gradio_preprocess(payload)

    image.preprocess = preprocess
    return image


#: The command line's options, as the pipeline's messages quote them, and the UI's
#: controls that do the same: :func:`ui_message` shows every message with these words
#: (phrases first, the longest match wins). Options with no control name what to
#: change where the UI is started.
UI_WORDS = {
    "--strength auto (UI: the photo's own lens)": '"Blur set by: the photo\'s own lens"',
    "pass --depth FILE with a depth or disparity map": 'upload a "Depth or disparity map"',
    "pass --depth FILE": 'upload a "Depth or disparity map"',
    "pass --depth-model PATH to a downloaded one": 'give "Depth network" the folder of a downloaded one',
    "pass --depth-model PATH or --depth FILE": 'give "Depth network" a downloaded model\'s folder, or upload a "Depth or disparity map"',
    "pass --depth-model PATH": 'give "Depth network" a downloaded model\'s folder',
    "pass --depth-kind depth": 'set "The depth file holds" to depth',
    "--depth FILE --depth-kind depth": 'a "Depth or disparity map" with "The depth file holds: depth"',
    "--depth FILE": 'a "Depth or disparity map"',
    "--depth-kind depth": '"The depth file holds: depth"',
    "--depth-kind": '"The depth file holds"',
    "--depth-model PATH": 'a model folder in "Depth network"',
    "--depth-model": '"Depth network"',
    "--depth": '"Depth or disparity map"',
    "--strength auto": '"Blur set by: the photo\'s own lens"',
    "--strength (-k)": '"Strength K"',
    "--strength": '"Blur set by: strength"',
    "-k": '"Strength K"',
    "give the sensor's width along the long side, e.g. --sensor-width 17.3 (Micro Four Thirds), or use --strength":
        'set "Blur set by: strength" (the sensor width is an option of the command line only: refocus refocus --sensor-width MM)',
    "--sensor-width MM": "refocus refocus --sensor-width MM (command line only)",
    "--f-number": '"Blur set by: f-number"',
    "--full-frame": '"Blur set by: f-number, full-frame equivalent"',
    "--focus X,Y": "a click on the photo",
    "--focus MASK": 'the "Focus mask"',
    "--focus": 'the focus (a click or the "Focus mask")',
    "--aperture": '"Aperture"',
    "--blades": '"Blades"',
    "--rotation": '"Rotation"',
    "--curvature": '"Blade curvature"',
    "--max-megapixels or REFOCUS_MAX_MEGAPIXELS": "REFOCUS_MAX_MEGAPIXELS=N or refocus --max-megapixels N ui where the UI is started",
    "--max-megapixels": "refocus --max-megapixels N ui",
    "use --device cpu": "start the UI with refocus ui --device cpu",
    "--device": "refocus ui --device",
    "try --offload": "set REFOCUS_GENFOCUS_OFFLOAD=1 where the UI is started",
    "--offload": "REFOCUS_GENFOCUS_OFFLOAD=1",
    "--genfocus-weights DIR": "REFOCUS_GENFOCUS_WEIGHTS=DIR",
    "--genfocus-weights": "REFOCUS_GENFOCUS_WEIGHTS",
    "--base-model PATH": "REFOCUS_GENFOCUS_BASE_MODEL=PATH",
    "--base-model": "REFOCUS_GENFOCUS_BASE_MODEL",
    "--genfocus-steps": "REFOCUS_GENFOCUS_STEPS",
}
_UI_WORDS_RE = re.compile(
    r"(?<![\w-])(?:" + "|".join(re.escape(k) for k in sorted(UI_WORDS, key=len, reverse=True)) + r")(?![\w-])"
)


def payload_path(value):
    """The server path of an upload as an event receives it: a path already, or (with
    ``preprocess=False``) Gradio's file payload, a dict with its ``path``."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict):
        return value.get("path")
    path = getattr(value, "path", None) or getattr(value, "name", None)
    return None if path is None else str(path)


#: What a click or an export without a prepared photo says (the photo panel may show
#: one that is still loading, or that failed: the status line then says why).
NOT_READY = "no photo is ready yet: upload one and wait for its preview (after an error, the status line says what to fix)"


def _upload_dirs() -> list[str]:
    """Where Gradio keeps uploads (ours, or another GRADIO_TEMP_DIR / its default)."""
    dirs = [os.environ.get("GRADIO_TEMP_DIR"), _dirs.get("uploads"), os.path.join(tempfile.gettempdir(), "gradio")]
    return [d.rstrip(os.sep) for d in dirs if d]


def ui_message(text: str, uploads=()) -> str:
    """A pipeline message as the UI shows it: the UI's controls instead of the CLI's
    options (:data:`UI_WORDS`), and an uploaded file by its own name, not the server's
    temporary path (``/tmp/gradio/<hash>/photo.png`` -> ``photo.png``)."""
    text = " ".join(str(text).split())  # one line
    for path in sorted({str(p) for p in uploads if p}, key=len, reverse=True):
        text = text.replace(path, Path(path).name)
    for d in _upload_dirs():
        text = re.sub(re.escape(d) + r"[/\\](?:[^\s'\"]*[/\\])?([^/\\\s'\"]+)", r"\1", text)
    return _UI_WORDS_RE.sub(lambda m: UI_WORDS[m.group(0)], text)


def _u8(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)


#: The blur mode that reads the f-number as a full-frame equivalent (RefocusConfig.full_frame).
FULL_FRAME_MODE = "f-number, full-frame equivalent"
#: The blur mode that keeps the lens the photo states (Lens Blur; RefocusConfig.own_lens).
OWN_LENS_MODE = "the photo's own lens"
#: The shape controls each aperture choice uses (:func:`_config` reads them); the
#: others are disabled while it is chosen.
APERTURE_CONTROLS = {"disc": ("rim", "ring"), "blades": ("blades", "rotation", "curvature", "rim", "ring"), "custom": ("rotation",)}
#: The slider each "Blur set by" mode reads (the photo's own lens reads neither: its K
#: is shown in the strength slider).
BLUR_CONTROLS = {"strength": ("strength",), "f-number": ("f_number",), FULL_FRAME_MODE: ("f_number",), OWN_LENS_MODE: ()}
#: The strength slider's range at least (a photo's default K may widen it).
STRENGTH_MAX = 80
#: The highlight boost slider's start: the renderer's own default.
BOOST_DEFAULT = float(RenderConfig.model_fields["highlight_gain"].default)


def _config(focus, blur_mode, strength, f_number, aperture, blades, rotation, curvature, custom_path, band=0.0, mask_path=None,
            deblur: bool = True, boost: float = BOOST_DEFAULT, cats_eye: float = 0.0, rim: float = 0.0, ring: float = 0.0,
            grain: bool = False, device: str = "auto"):
    from refocus.aperture import ApertureConfig, load_aperture_image
    from refocus.pipeline.config import RefocusConfig

    eye = {"cats_eye": float(cats_eye or 0.0)}
    drawn = {"rim": float(rim or 0.0), "ring": float(ring or 0.0)}  # a custom image carries its own
    if aperture == "blades":
        ap = ApertureConfig(shape="polygon", blades=int(blades), rotation_deg=float(rotation), curvature=float(curvature), **eye,
                            **drawn)
    elif aperture == "custom":
        if not custom_path:
            raise RefocusError('upload an image in "Custom aperture shape" for the custom aperture')
        ap = ApertureConfig(shape="custom", image=load_aperture_image(custom_path), rotation_deg=float(rotation), **eye)
    else:
        ap = ApertureConfig(**eye, **drawn)
    # An uploaded focus mask decides the focus until it is removed (a click then has no say).
    kw = {"focus_mask": str(mask_path)} if mask_path else {"focus_xy": tuple(focus)} if focus else {}
    if blur_mode in ("f-number", FULL_FRAME_MODE):
        kw["f_number"] = float(f_number)
        kw["full_frame"] = blur_mode == FULL_FRAME_MODE
    elif blur_mode == OWN_LENS_MODE:
        kw["own_lens"] = True
    else:
        kw["strength"] = float(strength)
    # Unticked: the photo itself is blurred (the CLI's --no-deblur), never DeblurNet's output.
    return RefocusConfig.build(aperture=ap, device=device, focus_band=float(band or 0.0), deblur="auto" if deblur else "never",
                               highlight_gain=float(boost), grain=bool(grain), **kw)


def build_app(device: str = "auto"):
    """The Gradio Blocks app (not launched). ``device``: where DeblurNet and the
    renderer run (``auto``: the GPU when there is one)."""
    gr = import_gradio()
    from refocus.depth.estimate import DEFAULT_DEPTH_MODEL
    from refocus.depth.preview import depth_overlay
    from refocus.pipeline.genfocus import available as genfocus_available
    from refocus.pipeline.visual import coc_to_rgb
    from refocus.ui import session

    export_dir = ui_dirs()["exports"]

    def _md_escape(text: str) -> str:
        # The status is Markdown: a file name's * or _ must not start emphasis.
        return "".join("\\" + ch if ch in "\\`*_[]<>#|" else ch for ch in text)

    def _uploads(key, *paths):
        """The request's uploaded files (for messages: their names, not the server's paths)."""
        try:
            entry = session.get(key) if key else None
        except RefocusError:
            entry = None
        extra = (entry.source_path, entry.depth_path) if entry is not None else ()
        return [p if isinstance(p, str) or p is None else getattr(p, "name", None) for p in (*paths, *extra)]

    def _say(exc, uploads) -> str:
        """The one line the UI shows for an error (also as a pop-up): the CLI's message
        in the UI's words."""
        msg = ui_message(str(exc), uploads)
        gr.Warning(msg)
        return msg

    def _start_words(cfg, p, deblurred) -> str:
        # What the blur starts from: unticking "Deblur first" changed nothing on a photo
        # that DeblurNet was not needed for, and the status did not say why (the UI trial).
        from refocus.pipeline.refocuser import STORED_ORIGINAL

        if deblurred:
            return "from the stored original" if p.all_in_focus_source == STORED_ORIGINAL else "from DeblurNet's all-in-focus"
        if cfg.deblur == "never":
            return "from the photo as it is (Deblur first unticked)"
        return "from the photo as it is (no deblurring needed: nowhere more blurred than asked)"

    def _update(key, focus, *settings, draft=False):
        """Re-render the preview (or the smaller draft); returns the outputs shared by
        every event: the before/after pair, the depth view, the CoC view, the status."""
        *settings, show_depth = settings
        entry = session.get(key)
        cfg = _config(focus, *settings, device=device)
        # "Show depth" only changes what is drawn over the render: ticking it re-rendered
        # the same preview (7 s with cat's-eye, the UI trial).
        sig = (tuple(focus) if focus else None, tuple(settings), draft)
        last = entry.last_render
        if last is not None and last[0] == sig:
            img, coc, fd, deblurred = last[1]
        else:
            r = session.render_result(key, cfg, draft=draft)
            img, coc, fd, deblurred = r.image, r.coc_px, r.focus_disparity, r.deblurred
            entry.last_render = (sig, (img, coc, fd, deblurred))
        p = entry.draft if draft else entry.preview
        k = p.strength(cfg, fd) / p.scale
        where = ("mask (remove it to click)" if cfg.focus_mask else f"point ({focus[0]:.0f}, {focus[1]:.0f})" if focus else "auto")
        # The photo's own size: clicks, K and the export are in its pixels (a working
        # copy's size is in the notes).
        h, w = entry.full_shape if all(entry.full_shape) else entry.full.shape
        status = (
            f"focus {where}: disparity {fd:.3f}, strength {k:.1f} px (full size) - {'draft' if draft else 'preview'}"
            f" {p.shape[1]}x{p.shape[0]} of {w}x{h}; depth from {entry.full.depth_source}; {_start_words(cfg, p, deblurred)}"
        )
        # The settings whose effect a small preview may not show (the UI trial could not
        # tell whether they were applied).
        if cfg.aperture.cats_eye > 0:
            status += f"; cat's-eye {cfg.aperture.cats_eye:g}"
        if cfg.aperture.rim:
            status += f"; rim {cfg.aperture.rim:+g}"
        if cfg.aperture.ring:
            status += f"; ring {cfg.aperture.ring:g}"
        if cfg.grain:
            status += "; grain added back where blurred"
        if cfg.highlight_gain is not None and cfg.highlight_gain != BOOST_DEFAULT:
            status += f"; highlight boost {cfg.highlight_gain:g}"
        if cfg.focus_band > 0:
            near, far = min(1.0, fd + cfg.focus_band / 2), max(0.0, fd - cfg.focus_band / 2)
            status += f"; sharp from disparity {far:.3f} to {near:.3f}"
            if p.metric_range is not None:
                # PreparedPhoto.distance_m: a band reaching a +inf sky ends at infinity (1e9 m before).
                ends = (p.distance_m(v) for v in (near, far))
                status += " ({} to {})".format(*(f"{z:.2f} m" if np.isfinite(z) else "infinity" for z in ends))
        notes = session.notes(key)
        uploads = _uploads(key) if notes else []  # once, not per note: this runs on every drag
        for n in notes:
            status += f"\n\nnote: {_md_escape(ui_message(n, uploads))}"
        # What renders sharp: the band (or plane) and the sub-pixel CoC around it.
        depth_img = depth_overlay(p.disparity, np.abs(coc) <= 0.5, p.image)
        after = 0.5 * img + 0.5 * depth_img if show_depth else img
        return (_u8(p.image), _u8(after)), _u8(depth_img), _u8(coc_to_rgb(coc, p.image)), status

    display_dir = os.path.join(ui_dirs()["root"], "display")
    os.makedirs(display_dir, exist_ok=True)
    skip4 = (gr.skip(),) * 4
    empty = "upload a photo, then click on it to set the focus"

    def _client(request) -> str:
        # Renders are ordered per browser tab (session.ask); direct calls share one.
        return getattr(request, "session_hash", None) or "local"

    def _failed(client, sig, exc, uploads):
        """A render's error: the panels are emptied (the old preview must not pass for
        the new settings' result) and the status says why, unless a newer request has
        taken over the screen meanwhile."""
        if not session.is_latest(client, sig):
            return skip4
        session.shown(client, None)
        return None, None, None, "error: " + _md_escape(_say(exc, uploads))

    def _display(photo_path):
        """The Photo panel's stand-in for a photo the browser cannot show (HEIC), else None."""
        try:
            # Of the same pixel size, so clicks still map to the photo.
            copy = session.display_copy(photo_path, display_dir) if photo_path else None
        except RefocusError:
            return None  # the load says what is wrong with the file
        return None if copy is None else str(copy)

    def _load(request, token, photo_path, depth_file, depth_kind, align_depth, depth_model, settings, display=None, defaults=False,
              progress=None):
        """Prepare the photo (and depth) and render it. The outputs: key, focus, source
        photo, Photo panel, before/after, depth view, CoC view, status, Download; with
        ``defaults`` also the blur mode and strength, set to the pipeline's default
        for this photo (as the CLI without -k: a Lens Blur photo's own lens).

        ``token``: the tab's load number (session.begin_upload). A load overtaken by a
        newer one (another photo, a depth map, a removal) changes nothing on screen: the
        panels would show one photo and the renders and the export use another."""
        client = _client(request)
        shown = gr.skip() if display is None else display
        keep = (gr.skip(), gr.skip()) if defaults else ()
        stale = (gr.skip(),) * (9 + len(keep))
        if not photo_path:
            session.set_view(client, None)
            return None, None, None, shown, None, None, None, "upload a photo", None, *keep
        depth_path = payload_path(depth_file)
        settings = list(settings)
        try:
            # The radio and the box always have a value; they only mean something for a depth file.
            say = None if progress is None else (lambda f, text: progress(f, desc=text))
            key = session.load(photo_path, depth_path, depth_kind if depth_path else None, device=device, depth_model=depth_model,
                               progress=say, align_depth=bool(align_depth and depth_path))
            if not session.upload_is_current(client, token):
                return stale
            # The controls as they are now: a slider moved during the load (seconds, half
            # a minute for a HEIC) rendered the old photo, or nothing.
            settings = list(session.tab_settings(client) or settings)
            if defaults:
                own, k = session.default_blur(key)
                settings[0], settings[1] = (OWN_LENS_MODE if own else "strength"), round(k, 1)
                keep = (settings[0], gr.update(value=settings[1], maximum=max(STRENGTH_MAX, float(np.ceil(k)))))
                session.set_defaults_photo(client, photo_path)
            # A new photo or depth: earlier renders in flight are stale, the focus is auto.
            session.set_view(client, key)
            try:
                slider, depth_img, coc_img, status = _update(key, None, *settings)
            except Exception as exc:
                exc = _user_error(exc)
                # The photo is ready; the settings are not (f-number on relative depth,
                # custom aperture without its image): the photo stays, so that changing
                # them renders it (it was dropped, and no control did anything after).
                if not session.upload_is_current(client, token):
                    return stale
                session.shown(client, None)
                msg = "error: " + _md_escape(_say(exc, _uploads(key, settings[7], settings[9])))
                return key, None, photo_path, shown, None, None, None, msg, None, *keep
            if not session.upload_is_current(client, token):
                return stale
            # The controls' change events that follow (new defaults) find it on screen.
            session.shown(client, (key, None, tuple(settings)))
        except Exception as exc:
            exc = _user_error(exc)
            if not session.upload_is_current(client, token):
                return stale
            # Nothing of the previous photo or depth may stay live: the renders and the
            # export would use what the panels no longer show.
            session.set_view(client, None)
            msg = "error: " + _md_escape(_say(exc, [photo_path, depth_path]))
            return None, None, photo_path, shown, None, None, None, msg, None, *keep
        # The previous export belonged to other inputs: the Download panel is emptied.
        return key, None, photo_path, shown, slider, depth_img, coc_img, status, None, *keep

    def on_photo(request: gr.Request, photo_path, depth_file, depth_kind, align_depth, depth_model, *settings,
                 progress=gr.Progress()):
        # Unprocessed payloads (the upload event's preprocess=False): file dicts to paths.
        photo_path = payload_path(photo_path)
        settings = tuple(payload_path(v) if isinstance(v, dict) else v for v in settings)
        # First: a depth map uploaded while this photo loads is for this photo (on_depth).
        token = session.begin_upload(_client(request), photo_path, settings)
        # A browser cannot show every photo (HEIC): the panel gets a stand-in (_display).
        # A 12 MP HEIC takes 25-40 s to prepare: the photo panel shows what runs.
        return _load(request, token, photo_path, depth_file, depth_kind, align_depth, depth_model, settings, _display(photo_path),
                     defaults=True, progress=progress)

    def on_depth(request: gr.Request, source, depth_file, depth_kind, align_depth, depth_model, *settings):
        # The photo as uploaded (the panel may hold its stand-in); a depth file, its
        # removal or a new depth network re-prepares it.
        client = _client(request)
        # The tab's newest photo: ``source`` is set only once a photo's load has finished,
        # and a depth map uploaded while it loads was dropped (the photo then rendered
        # without it, or said "no depth for this photo" beside the uploaded map).
        photo = session.tab_photo(client) or source
        if not photo:
            return (gr.skip(),) * 11
        token = session.begin_upload(client, photo, settings)
        if photo != source or not session.has_defaults_of(client, photo):
            # A photo still loading: this load replaces its own, which set the photo's
            # blur defaults (the previous photo's strength, or its own-lens mode, stayed).
            # Or one whose load failed (no depth): its defaults were never set.
            return _load(request, token, photo, depth_file, depth_kind, align_depth, depth_model, settings, _display(photo),
                         defaults=True)
        return (*_load(request, token, photo, depth_file, depth_kind, align_depth, depth_model, settings), gr.skip(), gr.skip())

    def on_depth_kind(request: gr.Request, source, depth_file, depth_kind, align_depth, depth_model, *settings):
        # The radio and the align box: they mean nothing without a depth file.
        if not depth_file:
            return (gr.skip(),) * 11
        return on_depth(request, source, depth_file, depth_kind, align_depth, depth_model, *settings)

    def on_photo_removed(request: gr.Request):
        session.begin_upload(_client(request), None)  # a load still running is for nothing now
        session.set_view(_client(request), None)
        return None, None, None, gr.skip(), None, None, None, empty, None

    # Gradio finds the event data by the annotation of a positional parameter, so
    # the settings are spelled out here.
    def on_click(request: gr.Request, key, blur_mode, strength, f_number, aperture, blades, rotation, curvature, custom, band, mask, deblur,
                 boost, cats_eye, rim, ring, grain, show, evt: gr.SelectData):
        settings = (blur_mode, strength, f_number, aperture, blades, rotation, curvature, custom, band, mask, deblur, boost, cats_eye, rim,
                    ring, grain, show)
        if key is None:
            # A click needs a photo on the panel: this one is still loading or failed to
            # load. Said as a pop-up; the panels and the status (its error) stay.
            gr.Warning(NOT_READY)
            yield (gr.skip(), *skip4)
            return
        if mask:
            # The mask decides the focus until it is removed. The click is neither used
            # nor kept: removing the mask returns to the focus from before it (the last
            # click made before the mask, or auto), never to a click the screen never showed.
            gr.Info('the "Focus mask" sets the focus: remove it to focus with a click')
            yield (gr.skip(), *skip4)
            return
        x, y = (float(v) for v in evt.index[:2])
        client = _client(request)
        # Recorded before rendering: a slider moved meanwhile renders this focus too.
        session.set_view(client, key, (x, y))
        sig = (key, (x, y), settings)
        session.ask(client, sig)
        try:
            # The draft first (about 4x faster), then the preview replaces it; a newer
            # click or setting makes both stale.
            out = _update(key, (x, y), *settings, draft=True)
            if not session.may_show(client, sig, draft=True):
                yield ((x, y), *skip4)
                return
            yield ((x, y), *out)
            if not session.is_latest(client, sig):
                # A newer click or setting came meanwhile: this preview could not show.
                yield ((x, y), *skip4)
                return
            out = _update(key, (x, y), *settings)
            yield ((x, y), *out) if session.may_show(client, sig) else ((x, y), *skip4)
        except Exception as exc:
            yield ((x, y), *_failed(client, sig, _user_error(exc), _uploads(key, custom, mask)))

    def _settings(request, key, focus, settings, draft=False, wait=0.0):
        client = _client(request)
        session.note_settings(client, settings)  # a load running now renders with them
        if key is None:
            # A photo still loading, or one that failed: its status (progress, error) stays.
            return skip4 if session.tab_photo(client) else (*skip4[:3], gr.skip() if draft else empty)
        focus = session.view_focus(client, key, focus)
        sig = (key, focus, tuple(settings))
        if not session.ask(client, sig):
            return skip4
        if wait:
            time.sleep(wait)
            if not session.is_latest(client, sig):
                return skip4  # moved on: the newer value's own event renders it
        try:
            out = _update(key, focus, *settings, draft=draft)
        except Exception as exc:
            return _failed(client, sig, _user_error(exc), _uploads(key, settings[7], settings[9]))
        return out if session.may_show(client, sig, draft) else skip4

    def on_settings(request: gr.Request, key, focus, *settings):
        return _settings(request, key, focus, settings)

    def on_slider(request: gr.Request, key, focus, *settings):
        # Every committed slider value (mouse, typed number, arrow keys) ends with the
        # preview; while the value keeps moving (a drag) the drafts show it instead.
        return _settings(request, key, focus, settings, wait=SLIDER_SETTLE_S)

    def on_drag(request: gr.Request, key, focus, *settings):
        return _settings(request, key, focus, settings, draft=True)

    def on_aperture(shape):
        uses = APERTURE_CONTROLS.get(shape, ())
        return tuple(gr.update(interactive=name in uses) for name in ("blades", "rotation", "curvature", "rim", "ring"))

    def on_blur_mode(mode):
        # The slider the mode ignores is greyed out: in f-number mode a typed strength
        # re-rendered the same picture and the slider looked live (found 2026-12-07).
        uses = BLUR_CONTROLS.get(mode, ())
        return tuple(gr.update(interactive=name in uses) for name in ("strength", "f_number"))

    # Progress is found by a positional parameter's default: the settings are spelled out.
    def on_export(request: gr.Request, key, focus, fmt, engine, blur_mode, strength, f_number, aperture, blades, rotation, curvature,
                  custom, band, mask, deblur, boost, cats_eye, rim, ring, grain, show, progress=gr.Progress()):
        if key is None:
            raise gr.Error(NOT_READY, print_exception=False)
        focus = session.view_focus(_client(request), key, focus)
        settings = (blur_mode, strength, f_number, aperture, blades, rotation, curvature, custom, band, mask, deblur, boost, cats_eye,
                    rim, ring, grain)
        why = session.genfocus_unusable() if engine == "genfocus" else None
        if why is not None:  # the radio is disabled then; a request may still ask
            raise gr.Error(f"the generative engine (genfocus) {why}: export with the physical engine", print_exception=False)
        try:
            cfg = _config(focus, *settings, device=device)
            path = session.export(key, cfg, export_dir, fmt, engine=engine, progress=lambda f, text: progress(f, desc=text))
        except Exception as exc:
            # print_exception=False: the one line in the page, no traceback in the server's log.
            raise gr.Error(ui_message(str(_user_error(exc)), _uploads(key, custom, mask)), print_exception=False) from None
        return str(path)

    genfocus_why = session.genfocus_unusable() if genfocus_available() else None
    # delete_cache: Gradio also removes its cached uploads hourly and on shutdown.
    with gr.Blocks(title="refocus", analytics_enabled=False, delete_cache=(3600, 3600)) as app:
        key = gr.State(None)
        focus = gr.State(None)
        source = gr.State(None)  # the photo as uploaded (the panel may show a stand-in)
        gr.Markdown("### refocus - upload a photo, then click on it to set the focus")
        with gr.Row():
            with gr.Column(scale=1):
                # upload_image: Gradio hands over the uploaded file as is, undecoded; the
                # pipeline checks it (pixel budget first) and says what is wrong with it.
                photo = upload_image(label="Photo (click to focus)", image_mode=None, sources=["upload"], elem_id="photo")
                # No fixed height: Gradio's drop zone needs its own (a 90 px box clipped
                # its "Drop File Here" text under the label).
                depth_file = gr.File(
                    label="Depth or disparity map (optional)",
                    file_types=[".png", ".npy", ".pfm", ".tif", ".tiff", ".exr"], type="filepath", elem_id="depth",
                )
                depth_kind = gr.Radio(["disparity", "depth"], value="disparity", label="The depth file holds", elem_id="depth-kind")
                align_depth = gr.Checkbox(
                    False, label="Align the depth file with the photo's edges", elem_id="align-depth",
                    info="a map smaller than the photo always is; tick for one at the photo's size whose steps are soft "
                    "(the command line's --align-depth)",
                )
                depth_model = gr.Textbox(
                    label="Depth network for photos without depth (hub id or local folder; Enter reloads)",
                    placeholder=DEFAULT_DEPTH_MODEL, elem_id="depth-model",
                )
                # A new photo sets these two to the pipeline's default for it (session.default_blur).
                blur_mode = gr.Radio(["strength", "f-number", FULL_FRAME_MODE, OWN_LENS_MODE], value="strength", label="Blur set by", elem_id="blur-mode")
                strength = gr.Slider(0, STRENGTH_MAX, value=15, step=0.1, label="Strength K (px at full size)", elem_id="strength")
                f_number = gr.Slider(0.95, 22, value=2.8, step=0.05, label="f-number (needs metric depth and EXIF)", interactive=False,
                                     elem_id="f-number")
                band = gr.Slider(
                    0, 0.5, value=0, step=0.01, label="In-focus depth band (0 = one plane; green in the CoC view)", elem_id="band"
                )
                aperture = gr.Radio(["disc", "blades", "custom"], value="disc", label="Aperture", elem_id="aperture")
                # Enabled only for the aperture choices that use them (on_aperture).
                blades = gr.Slider(3, 16, value=6, step=1, label="Blades", elem_id="blades", interactive=False)
                rotation = gr.Slider(0, 360, value=0, step=1, label="Rotation (degrees)", elem_id="rotation", interactive=False)
                curvature = gr.Slider(0, 1, value=0, step=0.05, label="Blade curvature", elem_id="curvature", interactive=False)
                cats_eye = gr.Slider(
                    0, 1, value=0, step=0.05, label="Cat's-eye (lemon-shaped discs towards the corners, as a fast lens; slower preview)", elem_id="cats-eye"
                )
                rim = gr.Slider(
                    -1, 1, value=0, step=0.05, elem_id="rim",
                    label="Rim (> 0: bright-rimmed soap bubbles behind the focal plane, soft discs in front; < 0 the reverse)",
                )
                ring = gr.Slider(0, 0.9, value=0, step=0.05, label="Ring (a mirror lens's central obstruction)", elem_id="ring")
                boost = gr.Slider(
                    0, 8, value=BOOST_DEFAULT, step=0.1, elem_id="boost",
                    label="Highlight boost (small clipped lights bloom into bright discs; 0 = off)",
                )
                custom = upload_image(
                    label="Custom aperture shape (white = open)", image_mode=None, sources=["upload"], height=120,
                    elem_id="custom-aperture",
                )
                focus_mask = upload_image(
                    label="Focus mask (optional: white or opaque = the subject; replaces clicks until removed)",
                    image_mode=None, sources=["upload"], height=120, elem_id="focus-mask",
                )
                deblur = gr.Checkbox(
                    True, label="Deblur first (DeblurNet, where the photo is more blurred than asked)", elem_id="deblur",
                    info="untick to blur the photo as it is (the command line's --no-deblur)",
                )
                grain = gr.Checkbox(
                    False, label="Keep the photo's grain in blurred areas", elem_id="grain",
                    info="adds back the noise the blur averaged away, as a lens blurs before the sensor (--grain)",
                )
            with gr.Column(scale=2):
                result = gr.ImageSlider(label="Before / after (preview)", elem_id="result", interactive=False)
                status = gr.Markdown("upload a photo, then click on it to set the focus", elem_id="status")
                with gr.Row():
                    depth_view = gr.Image(
                        label="Depth: bright = near, hatched = in focus", interactive=False, elem_id="depth-view"
                    )
                    coc_view = gr.Image(label="Blur: orange front, blue behind, green sharp", interactive=False, elem_id="coc-view")
                show_depth = gr.Checkbox(False, label="Show depth over the result (in-focus band hatched)", elem_id="show-depth")
                with gr.Row():
                    fmt = gr.Dropdown([("PNG 16-bit", "png16"), ("PNG 8-bit", "png8"), ("JPEG (keeps EXIF)", "jpeg")], value="png16", label="Export format")
                    # The generative engine takes ~a minute per image on a large GPU: offered for
                    # the export only, where its packages are installed, and usable only with
                    # a CUDA GPU (on the CPU it would take hours).
                    engine = gr.Radio(
                        ["physical", "genfocus"], value="physical", label="Engine for the export", elem_id="engine",
                        visible=genfocus_available(), interactive=genfocus_why is None,
                        info="genfocus: Genfocus's generative models (FLUX.1-dev; large GPU)" if genfocus_why is None
                        else f"genfocus (Genfocus's generative models) {genfocus_why}",
                    )
                    export_btn = gr.Button("Export full resolution", elem_id="export")
                export_file = gr.File(label="Download", interactive=False, elem_id="export-file")

        settings = [blur_mode, strength, f_number, aperture, blades, rotation, curvature, custom, band, focus_mask, deblur, boost,
                    cats_eye, rim, ring, grain, show_depth]
        loaded = [key, focus, source, photo, result, depth_view, coc_view, status, export_file]
        # With the blur controls, which a new photo's load sets to its defaults (also a
        # depth map's load that replaces a new photo's own, see on_depth).
        loaded_defaults = [*loaded, blur_mode, strength]
        depth_inputs = [source, depth_file, depth_kind, align_depth, depth_model, *settings]
        # preprocess=False: the photo panel is an output too (see upload_image).
        # "multiple": with Gradio's default ("once") a photo or map uploaded while another
        # loaded was dropped, its panel showing it over the other's result; the loads now
        # run, and only the tab's newest reaches the screen (session.begin_upload).
        # Said in the browser the moment the upload ends: the status kept the previous
        # photo's text (or the upload hint) through a first load of 26 s (the UI trial).
        photo.upload(None, None, [status], js=f"() => {json.dumps(LOADING)}", queue=False, show_progress="hidden")
        photo.upload(on_photo, [photo, depth_file, depth_kind, align_depth, depth_model, *settings], loaded_defaults, preprocess=False,
                     trigger_mode="multiple")
        photo.clear(on_photo_removed, None, loaded, trigger_mode="multiple")
        depth_file.upload(on_depth, depth_inputs, loaded_defaults, trigger_mode="multiple")
        depth_file.clear(on_depth, depth_inputs, loaded_defaults, trigger_mode="multiple")
        depth_kind.change(on_depth_kind, depth_inputs, loaded_defaults)
        align_depth.change(on_depth_kind, depth_inputs, loaded_defaults)
        depth_model.submit(on_depth, depth_inputs, loaded_defaults, trigger_mode="multiple")
        # "multiple": with Gradio's default ("once") a click during a render was dropped;
        # session.ask/may_show let only the newest click reach the screen.
        photo.select(on_click, [key, *settings], [focus, result, depth_view, coc_view, status], trigger_mode="multiple")
        aperture.change(on_aperture, [aperture], [blades, rotation, curvature, rim, ring], queue=False, show_progress="hidden")
        blur_mode.change(on_blur_mode, [blur_mode], [strength, f_number], queue=False, show_progress="hidden")
        outputs = [result, depth_view, coc_view, status]
        for comp in settings:
            if isinstance(comp, gr.Slider):
                # Drafts while the slider moves; the preview once its value settles.
                # "change" comes for every new value (drag, typed number + Enter, arrow
                # keys); "release" only for a mouse release or the number box's blur.
                comp.input(on_drag, [key, focus, *settings], outputs, trigger_mode="always_last", show_progress="hidden")
                comp.change(on_slider, [key, focus, *settings], outputs, trigger_mode="always_last", show_progress="hidden")
            else:
                comp.change(on_settings, [key, focus, *settings], outputs, trigger_mode="always_last", show_progress="hidden")
        # "always_last": a click during an export was dropped ("once"), and the Download
        # kept the file of the settings from before; now the newest click runs after it.
        export_btn.click(on_export, [key, focus, fmt, engine, *settings], [export_file], concurrency_limit=1, trigger_mode="always_last")
    return app


def launch(
    host: str = "127.0.0.1", port: int = 7860, max_file_size: str | int = DEFAULT_MAX_FILE_SIZE, block: bool = True, device: str = "auto"
):
    """Start the UI server. Returns the app (and does not block with ``block=False``)."""
    app = build_app(device)
    app.queue(default_concurrency_limit=2, max_size=QUEUE_SIZE)
    try:
        app.launch(
            server_name=host,
            server_port=port,
            max_file_size=max_file_size,
            theme=theme(),
            css=CSS,
            share=False,
            inbrowser=False,
            ssr_mode=False,
            prevent_thread_lock=not block,
            quiet=not block,
            show_error=True,
        )
    except OSError as exc:
        cleanup()
        raise RefocusError(f"cannot start the UI on {host}:{port}: {exc.strerror or exc}") from None
    if block:
        cleanup()
    return app
