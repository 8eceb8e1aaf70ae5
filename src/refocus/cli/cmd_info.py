"""``refocus info``: what a photo's file says about its camera, focus and depth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer


def _fmt(v, unit: str = "", digits: int = 3) -> str:
    return "—" if v is None else f"{v:.{digits}g}{unit}"


#: EXIF Orientation values in the words photo tools (exiftool) use.
_ORIENTATIONS = {
    1: "horizontal (normal)", 2: "mirror horizontal", 3: "rotate 180", 4: "mirror vertical",
    5: "mirror horizontal and rotate 270 CW", 6: "rotate 90 CW", 7: "mirror horizontal and rotate 90 CW",
    8: "rotate 270 CW",
}


def _orientation_words(orientation: int | None) -> str:
    if orientation is None:
        return "not stated: the pixels are taken as stored"
    if orientation == 1:
        return "1, horizontal (normal)"
    # The commands read every photo upright and write results upright, orientation 1.
    return f"{orientation}, {_ORIENTATIONS[orientation]}: read turned upright; results are stored upright (orientation 1)"


def _colour_words(mode: str, icc_name: str | None) -> str:
    """How the photo's pixels are stored, and how results keep them (refocus.io.image)."""
    words = {
        "L": "grey: results are grey", "LA": "grey with transparency: results are grey, alpha kept where the format has it",
        "I;16": "16-bit grey: results are grey", "I": "grey: results are grey", "1": "black and white: results are grey",
        "RGBA": "RGB with transparency: alpha kept where the format has it (JPEG: over white)",
        "RGB;16": "16-bit RGB: results keep 16 bits in PNG and TIFF",
        "RGBA;16": "16-bit RGB with transparency: results keep 16 bits in PNG and TIFF, alpha where the format has it",
        "LA;16": "16-bit grey with transparency: results are grey, 16 bits in PNG and TIFF",
        "CMYK": "CMYK: converted to RGB; results are RGB",
        "P": "palette colour: results are RGB", "F": "32-bit float grey",
    }.get(mode, mode)
    if icc_name is None:
        return words + ("; no ICC profile: plain conversion" if mode == "CMYK" else "; no ICC profile (sRGB taken)")
    kept = "used for the conversion, not kept (it describes ink)" if mode == "CMYK" else "kept in results"
    return f"{words}; ICC profile {icc_name!r}, {kept}"


def _f_number_words(cam, metric_depth: bool) -> str:
    """Whether ``--f-number`` can be used on this photo, and what it still needs."""
    words = {"focal_length_mm": "focal length", "sensor_width_mm": "sensor width"}
    missing = [name for name in words if getattr(cam, name) is None]
    if missing:
        lacking = [words[n] + (f" (EXIF {cam.refused(n)})" if cam.refused(n) else "") for n in missing]
        how = "; the sensor width comes from FocalLengthIn35mmFilm or FocalPlaneXResolution" if "sensor_width_mm" in missing else ""
        give = " (or give --sensor-width MM)" if missing == ["sensor_width_mm"] else ""
        return f"not usable: EXIF lacks the {' and '.join(lacking)}{how}{give}; use --strength (-k)"
    if metric_depth:
        return "usable: focal length, sensor width and the embedded metric depth are known (--full-frame too)"
    return ("usable with metric depth: --depth FILE --depth-kind depth (metres) or a metric --depth-model "
            "(e.g. apple/DepthPro-hf); --full-frame too")


def _decode(image: Path):
    """(pixels, None) as every command decodes them (:func:`refocus.io.read_image`),
    or (None, the error they raise)."""
    import warnings

    from refocus.errors import RefocusError
    from refocus.io import read_image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the commands say those; info lists the file's facts
            return read_image(image)[0], None
    except RefocusError as exc:
        return None, exc


def _grain_words(pixels: np.ndarray) -> str:
    """The photo's noise as --grain reads it (refocus.render.grain), in 8-bit levels."""
    from refocus.render.grain import estimate_noise

    sigma = estimate_noise(pixels).sigma()
    if not sigma.any():
        return "none measurable: --grain adds nothing"
    lo, hi = float(sigma.min()) * 255, float(sigma.max()) * 255
    spread = f"{lo:.1f}–{hi:.1f}" if hi - lo >= 0.1 else f"{hi:.1f}"
    return (f"{spread}/255 (sRGB standard deviation in its flattest parts, by brightness and channel; fine texture "
            "counts too): --grain keeps it where the new blur would smooth it away")


def info_cmd(
    image: Path = typer.Argument(..., help="The photo (JPEG, HEIC, PNG, TIFF, WebP)."),
) -> None:
    """Print size, camera, lens, exposure settings, focus distance and embedded depth."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from refocus.camera import read_camera_info
    from refocus.depth.embedded import find_embedded_depth

    cam = read_camera_info(image)
    emb, messages = find_embedded_depth(image)
    t = Table(show_header=False, box=None, pad_edge=False)
    t.add_column(style="bold")
    t.add_column()

    def row(label: str, value: str) -> None:
        t.add_row(label, escape(value))  # file names and EXIF text are not markup

    def flagged(value: str, *fields: str) -> str:
        # An EXIF value no camera writes is left out (refocus.camera.exif) and said here.
        why = [cam.ignored[f] for f in fields if f in cam.ignored]
        return value + "".join(f" (EXIF {w})" for w in why)

    row("file", str(image))
    shape = "portrait" if cam.height_px > cam.width_px else "landscape" if cam.width_px > cam.height_px else "square"
    row("size", f"{cam.width_px}x{cam.height_px} px, {shape} (upright)")
    pixels, damaged = _decode(image)
    if damaged is not None:
        # The header reads, the pixels do not: info said nothing of it and refocus then
        # stopped (found 2026-12-07 on a truncated camera JPEG of the EXIF corpus).
        t.add_row("pixels", f"[red]{escape(str(damaged))}[/red]: every command refuses this file")
    row("orientation", _orientation_words(cam.orientation))
    if cam.mode is not None:
        row("colour", _colour_words(cam.mode, cam.icc_name))
    row("camera", cam.camera or "—")
    row("lens", cam.lens or "—")
    row("f-number", flagged("—" if cam.f_number is None else f"f/{cam.f_number:.3g}", "f_number"))
    focal = _fmt(cam.focal_length_mm, " mm")
    if cam.focal_length_35mm:
        focal += f" ({cam.focal_length_35mm:.3g} mm in 35 mm terms)"
    row("focal length", flagged(focal, "focal_length_mm", "focal_length_35mm"))
    sensor = _fmt(cam.sensor_width_mm, " mm wide")
    if cam.sensor_width_source:
        sensor += f" (from the {cam.sensor_width_source})"
    if cam.sensor_width_mm and cam.digital_zoom:
        # A digitally zoomed photo is a crop of the sensor: the width (and K) is that of
        # the part it covers (the focal-plane resolution counts the image's pixels; the
        # 35 mm equivalent is taken to include the zoom, as cameras write it).
        sensor += (f"; digital zoom {cam.digital_zoom:.3g}x: the width of the sensor area the image covers "
                   f"(the whole sensor about {cam.sensor_width_mm * cam.digital_zoom:.3g} mm)")
    if cam.sensor_width_mm:
        from refocus.camera import crop_factor

        crop = crop_factor(cam.sensor_width_mm, max(cam.width_px, cam.height_px) / max(1, min(cam.width_px, cam.height_px)))
        if abs(crop - 1.0) > 0.05:
            # The factor between the lens's own f-number and its full-frame equivalent.
            sensor += f"; crop factor {crop:.2g}: --f-number N --full-frame blurs about {crop:.2g}x more than --f-number N"
    row("sensor", sensor)
    dist = _fmt(cam.focus_distance_m, " m")
    if cam.focus_distance_source:
        dist += f" ({cam.focus_distance_source})"
    row("focus distance", flagged(dist, "focus_distance_m"))
    near_far_m = None
    if emb is not None:
        h, w = emb.values.shape
        scale = "metric" if emb.metric else "relative"
        extent = ""
        if emb.metric:
            v = np.asarray(emb.values, dtype=np.float64)
            v = v[np.isfinite(v) & (v > 0)]
            if v.size:
                dist = v if emb.kind == "depth" else 1.0 / v
                near_far_m = (float(dist.min()), float(dist.max()))
                extent = f", {near_far_m[0]:.2f}–{near_far_m[1]:.2f} m"
        row("embedded depth", f"{emb.source}: {scale} {emb.kind}, {w}x{h}{extent}")
    else:
        row("embedded depth", "none" + (f" usable ({'; '.join(messages)})" if messages else ""))
    from refocus.depth import find_neighbour_depth

    beside = find_neighbour_depth(image)
    if beside is not None:
        # The commands take it before any embedded map (refocus.depth.get_depth).
        row("depth file", f"{beside.name} beside the photo: used without --depth"
            + (", before the embedded depth" if emb is not None else ""))
    k = cam.strength()
    missing = cam.missing_for_strength()
    if k is not None:
        row("blur gain K", f"{k:.4g} px·m (CoC radius = K·(1/z − 1/z_focus), z in m)")
    elif near_far_m is not None and all("focus distance" in m for m in missing):
        # Metric depth gives the focus distance: the depth under the chosen focus.
        row("blur gain K", "from the depth at the focus point (metric depth): --f-number works")
    else:
        row("blur gain K", "not computable: missing " + ", ".join(missing))
    row("--f-number", _f_number_words(cam, emb is not None and emb.metric))
    if pixels is not None:
        row("grain", _grain_words(pixels))
    if cam.rendered:
        row("rendered by refocus", cam.rendered)
    if near_far_m is not None:
        a, b = near_far_m
        row("focus range", f"in metres on this depth, e.g. --focus-range {a + (b - a) / 3:.1f}m:{a + 2 * (b - a) / 3:.1f}m")
    if emb is not None:
        from refocus.pipeline.stages import load_own_lens

        notes: list[str] = []
        own = load_own_lens(image, (cam.height_px, cam.width_px), emb.source, notes)
        if own is not None:
            where = "" if own.focal_point is None else f" (the point {own.focal_point[0]:.0%}, {own.focal_point[1]:.0%} of the frame)"
            row("photo's own lens", f"Google Lens Blur: focal plane at depth {own.focal_distance:.4g} (the depth map's units){where}, "
                f"normalised disparity {own.focus_disparity:.3f}; blur at infinity {own.blur_at_infinity_px:.1f} px radius; "
                f"K {own.strength_px:.3g} px: --strength auto (the default for this photo) keeps it at a new focal plane")
            row("original", "stored: renders start from it, no deblurring" if own.original is not None else "not stored or not usable" + (f" ({notes[-1]})" if notes else ""))
    Console().print(t)
    if damaged is not None:
        # The report is printed for what the header still tells, but a script running
        # `refocus info` over a folder learns of the damage from the exit status too.
        raise damaged


def register(app: typer.Typer) -> None:
    app.command("info")(info_cmd)
