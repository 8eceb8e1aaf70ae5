"""Turning command-line style option values into :class:`RefocusConfig` (shared by
``refocus refocus``, ``animate``, ``batch`` and the UI)."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import ValidationError

from refocus.errors import RefocusError
from refocus.pipeline.config import RefocusConfig, settings_error

#: Output formats :func:`refocus.io.write_image` can write.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp")
#: Files ``--focus`` reads as a mask image.
MASK_SUFFIXES = IMAGE_SUFFIXES + (".bmp", ".gif")


def parse_numbers(text: str, n: int, what: str, *, example: str | None = None, given: str | None = None) -> tuple[float, ...]:
    """``"12,34"`` -> (12.0, 34.0); a one-line error otherwise, quoting ``given`` (what
    the user typed, when ``text`` was cut out of it) and ``example`` (how to write it)."""
    parts = [p for p in str(text).replace(";", ",").split(",")]
    try:
        vals = tuple(float(p) for p in parts)
    except ValueError:
        vals = ()
    if len(vals) != n or not all(v == v and abs(v) != float("inf") for v in vals):
        if example is None:
            example = ",".join(["12", "34", "56", "78"][:n])
        count = "a number" if n == 1 else f"{n} numbers"
        raise RefocusError(f"{what} must be {count} like {example}, got {(given if given is not None else text)!r}")
    return vals


def parse_focus(focus: str | os.PathLike | None) -> dict:
    """``--focus`` value -> config fields: ``"X,Y"``, ``"x0,y0,x1,y1"`` (box), a mask
    image's path, or ``"auto"``."""
    if focus is None or str(focus).strip().lower() in ("", "auto"):
        return {}
    text = str(focus)
    n = len(text.split(","))
    # An image's name first: "subject, v2.png" was read as a point and refused.
    if Path(text).suffix.lower() in MASK_SUFFIXES or (n == 1 and Path(text).exists()):
        if not Path(text).is_file():
            raise RefocusError(f"--focus mask not found: {text}")
        return {"focus_mask": text}
    if n == 4:
        return {"focus_box": parse_numbers(text, 4, "--focus box")}
    if n == 1:
        raise RefocusError(f"--focus must be X,Y (pixels), a box X0,Y0,X1,Y1, a mask image or auto, got {text!r}")
    if n != 2:  # "12,34,56" was answered "must be 2 numbers", as if a box were not allowed
        raise RefocusError(f"--focus must be 2 numbers, a point X,Y, or 4, a box X0,Y0,X1,Y1 (pixels), got {text!r}")
    return {"focus_xy": parse_numbers(text, 2, "--focus")}


def parse_focus_value(value: str | float) -> dict:
    """``--focus-value`` -> ``{"focus_value": v}`` (normalised disparity, 0..1) or, written
    with ``m`` (``2.5m``), ``{"focus_distance_m": z}`` (metres; needs metric depth)."""
    text = str(value).strip()
    if text.lower().endswith("m"):
        (z,) = parse_numbers(text[:-1], 1, "--focus-value in metres", example="2.5m", given=text)
        if z <= 0:
            raise RefocusError(f"--focus-value in metres must be a distance > 0, got {text!r}")
        return {"focus_distance_m": z}
    try:
        v = float(text)
    except ValueError:
        v = float("nan")
    if not 0.0 <= v <= 1.0:
        raise RefocusError(f"--focus-value must be a normalised disparity 0 (far) .. 1 (near), or a distance like 2.5m, got {text!r}")
    return {"focus_value": v}


def build_aperture(aperture: str = "disc", blades: int = 6, rotation: float = 0.0, curvature: float = 0.0, cats_eye: float = 0.0,
                   rim: float = 0.0, ring: float = 0.0):
    """``--aperture disc|polygon|PATH.png`` and its shape options -> ApertureConfig."""
    from refocus.aperture import aperture_from_spec

    spec = str(aperture)
    if spec not in ("disc", "circle", "polygon", "blades"):
        if Path(spec).is_dir():
            raise RefocusError(f"--aperture {spec} is a folder: give disc, polygon or an image file of the shape")
        if not Path(spec).exists():
            if Path(spec).suffix.lower() in MASK_SUFFIXES or "/" in spec or "\\" in spec:
                raise RefocusError(f"--aperture image not found: {spec}")
            raise RefocusError(f"--aperture must be disc, polygon or an image file; {spec!r} is none of them")
    try:
        return aperture_from_spec(spec, blades=blades, rotation_deg=rotation, curvature=curvature, cats_eye=cats_eye, rim=rim, ring=ring)
    except ValidationError as exc:  # out-of-range blades, curvature, a NaN rotation...
        raise settings_error(exc) from None


def parse_focus_range(spec: str) -> dict:
    """``--focus-range A:B`` -> ``{"focus_range": (a, b)}`` in normalised disparity, or
    ``A m:B m`` (``1.5m:2.5m``, or ``1.5:2.5m``: one unit for both) ->
    ``{"focus_range_m": (a, b)}`` in metres."""
    text = str(spec).replace(" ", "").lower()
    ends = text.split(":")
    if len(ends) != 2 or not all(ends):
        raise RefocusError(f"--focus-range must be A:B (normalised disparity, e.g. 0.4:0.7) or in metres (1.5m:2.5m), got {spec!r}")
    in_m = [e.endswith("m") for e in ends]
    if in_m == [True, False]:
        raise RefocusError(f"--focus-range: give both ends in metres (1.5m:2.5m) or neither, got {spec!r}")
    if any(in_m):
        a, b = parse_numbers(",".join(e.removesuffix("m") for e in ends), 2, "--focus-range in metres", example="1.5m:2.5m", given=spec)
        if not (a > 0 and b > 0):
            raise RefocusError(f"--focus-range in metres needs two distances > 0, got {spec!r}")
        return {"focus_range_m": (a, b)}
    a, b = parse_numbers(",".join(ends), 2, "--focus-range", example="0.4:0.7", given=spec)
    if not (0.0 <= a <= 1.0 and 0.0 <= b <= 1.0):  # was "invalid settings: ...", naming no option
        raise RefocusError(f"--focus-range ends are normalised disparities 0 (far) .. 1 (near), or distances written "
                           f"with m (1.5m:2.5m), got {spec!r}")
    return {"focus_range": (a, b)}


def build_config(
    *,
    focus: str | None = None,
    focus_value: float | str | None = None,
    focus_range: str | None = None,
    strength: float | str | None = None,
    f_number: float | None = None,
    full_frame: bool = False,
    sensor_width_mm: float | None = None,
    aperture: str = "disc",
    blades: int = 6,
    rotation: float = 0.0,
    curvature: float = 0.0,
    cats_eye: float = 0.0,
    rim: float = 0.0,
    ring: float = 0.0,
    depth: str | os.PathLike | None = None,
    depth_kind: str | None = None,
    depth_model: str | None = None,
    align_depth: bool = False,
    no_deblur: bool = False,
    grain: bool = False,
    device: str = "cpu",
    quality: str = "balanced",
    highlight_gain: float | None = None,
    max_megapixels: float | None = None,
    highlight_threshold: float | None = None,
) -> RefocusConfig:
    """All CLI options -> one validated :class:`RefocusConfig`.

    ``max_megapixels`` given sets the process's pixel budget (depth files, embedded
    maps and batch workers included); None keeps the setting.
    """
    from refocus.io.limits import max_pixels, set_max_megapixels

    if max_megapixels is not None:
        set_max_megapixels(max_megapixels)
    max_megapixels = max_pixels() / 1e6
    fields = parse_focus(focus)
    if focus_value is not None:
        if fields:
            raise RefocusError("give either --focus or --focus-value, not both")
        fields.update(parse_focus_value(focus_value))
    if focus_range is not None:
        if fields:
            raise RefocusError("give one of --focus, --focus-value and --focus-range")
        fields.update(parse_focus_range(focus_range))
    if depth is not None and not Path(depth).exists():
        raise RefocusError(f"depth map not found: {depth}")
    own_lens = isinstance(strength, str) and strength.strip().lower() == "auto"
    if own_lens:
        strength = None
    elif isinstance(strength, str):
        try:
            strength = float(strength)
        except ValueError:
            raise RefocusError(f"--strength takes a number of pixels or 'auto' (the photo's own lens), got {strength!r}") from None
    return RefocusConfig.build(
        **fields,
        strength=strength,
        own_lens=own_lens,
        f_number=f_number,
        full_frame=full_frame,
        sensor_width_mm=sensor_width_mm,
        aperture=build_aperture(aperture, blades, rotation, curvature, cats_eye, rim, ring),
        depth_path=None if depth is None else str(depth),
        depth_kind=depth_kind,
        depth_model=depth_model,
        align_depth=align_depth,
        deblur="never" if no_deblur else "auto",
        grain=grain,
        device=device,
        quality=quality,
        highlight_gain=highlight_gain,
        highlight_threshold=highlight_threshold,
        max_megapixels=max_megapixels,
    )


def check_output(
    output: str | os.PathLike,
    inputs: list[str | os.PathLike | None] = (),
    suffixes=IMAGE_SUFFIXES,
    unnamed: list[str | os.PathLike] = (),
    overwrite: bool = False,
    photo: str | os.PathLike | None = None,
    bytes_per_pixel: float | None = None,
) -> Path:
    """Refuse, before any work, an output that cannot be written or would hit an input.

    ``inputs``: every file the command reads (photo, depth, aperture image...);
    ``unnamed``: files written beside ``output`` (see :mod:`refocus.io.outputs`).
    With ``photo``, also refuse when the output's disk has less free space than the
    result will need (estimated from the photo's declared size: ``bytes_per_pixel``,
    or the image format's upper estimate).
    """
    from refocus.io.image import check_free_space, check_output_folder, estimate_output_bytes
    from refocus.io.limits import photo_size
    from refocus.io.outputs import check_outputs

    out = Path(output)
    if out.is_dir():  # first: "-o ." has no name to quote in the format message
        raise RefocusError(f"output {out} is a folder; give a file name")
    if out.suffix.lower() not in suffixes:
        raise RefocusError(f"unsupported output format {out.suffix or '(none)'} for {out.name}: use {', '.join(suffixes)}")
    check_outputs([out], inputs, unnamed, overwrite)
    check_output_folder(out)
    if photo is not None:
        size = photo_size(photo)
        if size is not None:
            w, h = size
            need = int(w * h * bytes_per_pixel) if bytes_per_pixel else estimate_output_bytes(w, h, out.suffix, 16)
            check_free_space(out, need)
    return out


def command_inputs(image, depth=None, aperture: str | None = None, focus: str | None = None) -> list:
    """The files a refocusing command reads: the photo, its depth map (given, or the
    neighbouring one :func:`refocus.depth.find_neighbour_depth` picks), an aperture
    image, a focus mask (``--focus`` naming a file)."""
    from refocus.depth import find_neighbour_depth
    from refocus.io.outputs import aperture_input

    if depth is None and image is not None:
        depth = find_neighbour_depth(image)
    mask = focus if focus is not None and Path(str(focus)).is_file() else None  # a comma in its name too
    return [image, depth, aperture_input(aperture), mask]
