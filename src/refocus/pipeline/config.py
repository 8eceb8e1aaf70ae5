"""The one configuration object shared by the CLI, the Python API and the UI."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from refocus.aperture import ApertureConfig
from refocus.errors import RefocusError


#: The ways of setting the focus; a config takes at most one (none: automatic).
FOCUS_SETTINGS = ("focus_xy", "focus_value", "focus_distance_m", "focus_box", "focus_mask", "focus_range", "focus_range_m")


class RefocusConfig(BaseModel):
    """Everything that decides how a photo is refocused.

    Attributes
    ----------
    focus_xy:
        Focus on the surface under this pixel ``(x, y)``, in pixels of the upright
        (EXIF-rotated) input image.
    focus_value:
        Focus on this normalised disparity, 0 (farthest) .. 1 (nearest).
    focus_distance_m:
        Focus at this distance in metres (``--focus-value 2.5m``); needs metric depth,
        which converts it to normalised disparity. It may lie outside the scene's depth
        (in front of everything, or beyond it): a real lens setting too.
    focus_box:
        Focus on the median disparity inside ``(x0, y0, x1, y1)``, pixels.
    focus_mask:
        Focus on the median disparity inside a mask image: white (or, with an alpha
        channel, opaque) marks the subject, as a mask painted or exported by a photo
        editor. Any size with the photo's aspect ratio (it is resized to the depth map).
    focus_range:
        Keep a band of normalised disparity ``(a, b)`` sharp, the CoC growing from
        its ends outside it (a focus range); its middle stands for the focal plane
        where one is needed (``f_number``, reports).
    focus_range_m:
        The same band given as two distances in metres (either order); needs metric
        depth, which converts it to normalised disparity (``1.5m:2.5m`` on the CLI).
    focus_band:
        Width (normalised disparity) of a band kept sharp around the focal plane the
        other settings choose: the UI's "in-focus depth band"; 0 is one plane.
        With none of the focus settings above, the focus is chosen automatically.
    strength:
        K, the blur strength in pixels at the input's resolution: the CoC radius
        difference between the nearest and the farthest point. ``None`` (with no
        ``f_number``) means the lens the photo's file states (Google Lens Blur), else
        1.5 % of the image's long side (of twice its short side for frames wider
        than 2:1: :func:`refocus.pipeline.photo.default_strength_px`).
    own_lens:
        Require the photo's own lens (``--strength auto``): an error for a photo whose
        file states none, instead of the 1.5 % default.
    f_number:
        Derive K from the camera (EXIF focal length and sensor size) at this f-number
        instead of giving ``strength``.
    sensor_width_mm:
        The sensor's width along the image's long side (mm), for ``f_number`` when the
        EXIF does not state it (many interchangeable-lens cameras: Micro Four Thirds
        17.3, APS-C 23.5, full frame 36); given, it replaces the EXIF's.
    full_frame:
        Read ``f_number`` as a full-frame (35 mm) equivalent: the depth of field a
        36 mm wide sensor with the same field of view has at that f-number, as phone
        portrait modes and most photographers mean it. A phone's own lens at f/1.4
        blurs about 4.6 times less (a 13 Pro's main camera: K 2.6 px instead of 12).
    aperture:
        Aperture shape of the new lens: an :class:`ApertureConfig` (or a dict of its
        fields), or ``"disc"``, ``"polygon"`` or the path of an aperture image.
    depth_path, depth_kind:
        A depth/disparity map file (str or path) and what its values mean (``"disparity"``: larger
        = nearer, ``"depth"``: distance). Without a file the depth stage estimates one.
    align_depth:
        Align a depth map that already has the photo's size with the photo's edges
        too (the weighted median and the snap of soft steps,
        :func:`refocus.depth.refine.upsample_to_guide`); by default such a map is the
        user's word and used as it is (maps of another size are always aligned).
    depth_model:
        The depth network (hub id or local folder) used when the photo has no depth;
        None: :data:`refocus.depth.estimate.DEFAULT_DEPTH_MODEL` (Depth Anything V2
        Small), falling back to the photo's blur when it cannot be had.
    grain:
        Add back the photo's own noise where the new blur averaged it away, as a
        lens blurs before the sensor adds its noise (:mod:`refocus.render.grain`);
        off by default, since it adds noise a reference image does not have.
    deblur:
        ``"auto"``: run DeblurNet where it can help, fall back to the input with a
        note when it is not installed; ``"always"``: require it; ``"never"``.
    keep_sharp_px:
        Where the new |CoC| is below this radius (px) and the input was sharp there,
        the input pixels are kept (a refocus must never make such a region worse),
        fading out at twice it. The renderer itself now blurs sub-pixel CoCs by
        exactly their disc's second moment, and that blur is what a real capture
        with a small aperture needs: on the refocus cases of lytro1g-0001/-0002 and
        hci-antinous, 0.5 scored 59.81/52.63/34.25 dB (before those kernels), and
        with them 0.25, 0.1 and 0 scored 59.97/53.34/34.26, 60.72/53.80/34.26 and
        60.81/53.75/34.26. 0.1 keeps the input exactly on the focal plane.
    quality, highlight_gain, highlight_threshold, device:
        Passed to the renderer (see :class:`refocus.render.RenderConfig`); ``device``
        is also used by DeblurNet.
    max_megapixels:
        Refuse larger inputs (a clear error instead of running out of memory);
        default: the pixel budget of :mod:`refocus.io.limits`.
    """

    # NaN passes every ge/le bound unnoticed (comparisons with NaN are false), so
    # non-finite numbers are refused outright.
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    focus_xy: tuple[float, float] | None = None
    focus_value: float | None = Field(None, ge=0.0, le=1.0)
    focus_distance_m: float | None = Field(None, gt=0.0, allow_inf_nan=False)
    focus_box: tuple[float, float, float, float] | None = None
    focus_mask: str | None = None
    focus_range: tuple[float, float] | None = None
    focus_range_m: tuple[float, float] | None = None
    focus_band: float = Field(0.0, ge=0.0, le=1.0)
    strength: float | None = Field(None, ge=0.0, le=1000.0)
    f_number: float | None = Field(None, gt=0.0, le=128.0)
    sensor_width_mm: float | None = Field(None, gt=1.0, lt=200.0, allow_inf_nan=False)
    own_lens: bool = False
    full_frame: bool = False
    aperture: ApertureConfig = Field(default_factory=ApertureConfig)
    depth_path: str | None = None
    depth_kind: Literal["disparity", "depth"] | None = None
    align_depth: bool = False
    depth_model: str | None = None
    deblur: Literal["auto", "always", "never"] = "auto"
    grain: bool = False
    keep_sharp_px: float = Field(0.1, ge=0.0, le=10.0)
    quality: Literal["fast", "balanced", "high"] = "balanced"
    highlight_gain: float | None = Field(None, ge=0.0, le=1000.0)
    highlight_threshold: float | None = Field(None, ge=0.0, le=1.0)
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    # Default: the pixel-budget setting (REFOCUS_MAX_MEGAPIXELS, else 100), read when built.
    max_megapixels: float = Field(default_factory=lambda: _budget_megapixels(), gt=0.0)

    def __init__(self, **data):
        # Settings are user input: one line naming the option (RefocusError), in Python
        # as on the command line, not pydantic's multi-line ValidationError.
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise settings_error(exc) from None

    @field_validator("depth_path", "focus_mask", mode="before")
    @classmethod
    def _path_as_str(cls, value):
        # A notebook passes pathlib.Path as often as str.
        return os.fspath(value) if isinstance(value, os.PathLike) else value

    @field_validator("aperture", mode="before")
    @classmethod
    def _aperture_spec(cls, value):
        # "disc", "polygon" or an image path, as render_bokeh and --aperture take it.
        if isinstance(value, (str, os.PathLike)):
            from refocus.aperture import aperture_from_spec

            return aperture_from_spec(os.fspath(value))
        return value

    @model_validator(mode="after")
    def _one_of_each(self):
        given = [n for n in FOCUS_SETTINGS if getattr(self, n) is not None]
        if len(given) > 1:
            raise ValueError(f"give only one focus setting, got {' and '.join(given)}")
        if self.focus_range is not None and not all(0.0 <= v <= 1.0 for v in self.focus_range):
            raise ValueError("a focus range is two normalised disparities in [0, 1] (distances are written with m: 1.5m:2.5m)")
        if self.focus_range_m is not None and not all(0.0 < v < float("inf") for v in self.focus_range_m):
            raise ValueError("a focus range in metres is two distances > 0")
        if self.strength is not None and self.f_number is not None:
            raise ValueError("give either a strength (-k) or an f-number (--f-number), not both")
        if self.own_lens and (self.strength is not None or self.f_number is not None):
            raise ValueError("the photo's own lens (--strength auto) replaces -k and --f-number: give one of the three")
        if self.full_frame and self.f_number is None:
            raise ValueError("full_frame (--full-frame) qualifies an f-number: give f_number (--f-number) too")
        if self.sensor_width_mm is not None and self.f_number is None:
            raise ValueError("sensor_width_mm (--sensor-width) is for an f-number: give f_number (--f-number) too")
        return self

    @classmethod
    def build(cls, **kwargs) -> "RefocusConfig":
        """The constructor (invalid settings raise a one-line :class:`RefocusError`)."""
        return cls(**kwargs)

    @classmethod
    def coerce(cls, cfg) -> "RefocusConfig":
        """``cfg`` as a config: a :class:`RefocusConfig` itself, a dict of its fields, or
        None for the defaults; anything else is a one-line error."""
        if cfg is None:
            return cls()
        if isinstance(cfg, cls):
            return cfg
        if isinstance(cfg, dict):
            return cls(**cfg)
        raise RefocusError(f"cfg must be a RefocusConfig (or a dict of its fields), got {type(cfg).__name__}")

    def focus_description(self) -> str:
        """The focus setting, as a user would write it."""
        if self.focus_xy is not None:
            return f"point {self.focus_xy[0]:g},{self.focus_xy[1]:g}"
        if self.focus_value is not None:
            return f"disparity {self.focus_value:g}"
        if self.focus_distance_m is not None:
            return f"distance {self.focus_distance_m:g} m"
        if self.focus_box is not None:
            return "box " + ",".join(f"{v:g}" for v in self.focus_box)
        if self.focus_mask is not None:
            return f"mask {self.focus_mask}"
        if self.focus_range is not None:
            return "range {:g}:{:g}".format(*self.focus_range)
        if self.focus_range_m is not None:
            return "range {:g}m:{:g}m".format(*self.focus_range_m)
        return "auto"


#: The command-line option of each setting, so that a message names what the user typed
#: (the UI's controls carry the same names in their help texts).
OPTION_OF = {
    "strength": "--strength (-k)",
    "f_number": "--f-number",
    "own_lens": "--strength auto",
    "full_frame": "--full-frame",
    "sensor_width_mm": "--sensor-width",
    "focus_xy": "--focus X,Y",
    "focus_box": "--focus X0,Y0,X1,Y1",
    "focus_mask": "--focus MASK",
    "focus_value": "--focus-value",
    "focus_distance_m": "--focus-value (metres)",
    "focus_range": "--focus-range",
    "focus_range_m": "--focus-range (metres)",
    "focus_band": "focus band",
    "depth_kind": "--depth-kind",
    "align_depth": "--align-depth",
    "grain": "--grain",
    "depth_model": "--depth-model",
    "quality": "--quality",
    "highlight_gain": "--highlight-gain",
    "highlight_threshold": "--highlight-threshold",
    "device": "--device",
    "max_megapixels": "--max-megapixels",
    "shape": "--aperture",
    "blades": "--blades",
    "rotation_deg": "--rotation",
    "curvature": "--curvature",
    "cats_eye": "--cats-eye",
    "rim": "--rim",
    "ring": "--ring",
}


def settings_error(exc: ValidationError) -> RefocusError:
    """One line naming the option and what it accepts, from a settings model's
    validation error (refocus, render and aperture settings alike)."""
    err = exc.errors()[0]
    fields = [str(p) for p in err.get("loc", ()) if p != "__root__"]
    msg = str(err.get("msg", exc)).removeprefix("Value error, ")
    value = err.get("input")
    if not fields:
        return RefocusError(f"invalid settings: {msg}")
    option = OPTION_OF.get(fields[-1], ".".join(fields))
    got = f", got {value!r}" if isinstance(value, (int, float, str)) and not isinstance(value, bool) else ""
    return RefocusError(f"invalid {option}: {msg}{got}")


def _budget_megapixels() -> float:
    from refocus.io.limits import max_pixels

    return max_pixels() / 1e6
