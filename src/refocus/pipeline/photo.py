"""A photo prepared once for many renders: :class:`PreparedPhoto`.

It holds what is expensive and does not depend on the focus (the photo, its
disparity, its estimated input blur, the all-in-focus image once computed) and
the geometry of a focus setting (focal plane, strength K, signed CoC map), so
that the UI and focus pulls re-render without recomputing them. What to do with
it -- deblur or not, render how -- belongs to the :class:`~refocus.pipeline.refocuser.Refocuser`
that prepared it (:attr:`PreparedPhoto.pipeline`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from refocus.errors import RefocusError
from refocus.io import ImageInfo, srgb_to_linear
from refocus.pipeline.config import FOCUS_SETTINGS, RefocusConfig

if TYPE_CHECKING:
    from refocus.pipeline.refocuser import Refocuser

#: The one-line error for ``--strength auto`` on a photo that states no lens.
NO_STATED_LENS = (
    "--strength auto needs a photo that states its lens (a Google Lens Blur JPEG with GFocus and its GDepth map); "
    "for other photos give --strength or --f-number (fitting the lens from the photo's blur is not reliable: docs/depth.md)"
)

#: What to do instead of a distance in metres on depth that cannot place one.
_GIVE_FOCUS_INSTEAD = "give the focus as a point, box, mask or normalised disparity"

#: Default K as a fraction of the frame's long side (a shallow portrait look at any size).
DEFAULT_STRENGTH_FRACTION = 0.015
#: The longest side, in short sides, that the default K follows. Camera frames are at
#: most about 2:1 (3:2, 4:3, 16:9, 2:1); a wider frame is a panorama or a crop whose
#: blur belongs to the frames it was stitched or cut from, so its default K follows
#: twice its short side instead: 1.5 % of the long side gave a 12000 x 1500 panorama
#: 180 px of blur (a user trial), and a 6000 x 1 strip 90 px.
DEFAULT_STRENGTH_MAX_ASPECT = 2.0


def default_strength_px(shape: tuple[int, ...]) -> float:
    """The default blur strength K (px) of a frame of ``shape`` (H, W, ...): 1.5 % of
    its long side, with the long side taken as at most twice the short side."""
    long_px, short_px = max(shape[:2]), min(shape[:2])
    return DEFAULT_STRENGTH_FRACTION * min(long_px, DEFAULT_STRENGTH_MAX_ASPECT * short_px)


@dataclass
class OwnLens:
    """The lens a photo's file states it was rendered with (Google Lens Blur's GFocus).

    Attributes
    ----------
    focus_disparity : float
        Its focal plane, in the photo's normalised disparity.
    strength_px : float
        Its K for the normalised disparity, in the photo's full-size pixels.
    blur_at_infinity_px : float
        CoC radius of a point at infinity, full-size pixels.
    focal_distance : float
        Its focal plane in the depth map's own units.
    focal_point : (x, y) fractions of the upright frame, or None
    original : (H, W, 3) float32 sRGB or None
        The photo before the blur, stored beside it: an exact all-in-focus image.
    """

    focus_disparity: float
    strength_px: float
    blur_at_infinity_px: float
    focal_distance: float
    focal_point: tuple[float, float] | None = None
    original: np.ndarray | None = field(default=None, repr=False)


@dataclass
class PreparedPhoto:
    """A photo with everything the focus does not change.

    Attributes
    ----------
    image : (H, W, 3) float32 sRGB in [0, 1]
        The input photo, upright.
    disparity : (H, W) float32 in [0, 1]
        Larger = nearer, same size as ``image``.
    input_blur_px : (H, W) float32
        How blurred the input already is (disc radius, px): DeblurNet's defocus map
        once it ran, before that a cheap estimate (:mod:`refocus.pipeline.sharpness`).
    all_in_focus : (H, W, 3) float32 sRGB, or None
        DeblurNet's output, once computed.
    metric_range : (lo, hi) or None
        Disparity in 1/m at normalised disparity 0 and 1, when the depth is metric.
    scale : float
        Size of this copy relative to the photo (1, or less for previews): focus
        points and strengths in a config are in the photo's pixels and are scaled.
    refocuser : Refocuser or None
        The pipeline that prepared it, which renders it (None: the default one).
    source_shape : (H, W) or None
        Size of the photo itself, when this is a smaller copy of it.
    own_lens : OwnLens or None
        The lens the file states it was rendered with (Lens Blur), if any.
    all_in_focus_source : str
        Where ``all_in_focus`` came from when it was there before any deblurring
        (``"stored original"``: a Lens Blur file's), else ``""`` (the deblurrer's).
    """

    image: np.ndarray
    disparity: np.ndarray
    input_blur_px: np.ndarray
    info: ImageInfo | None = None
    depth_source: str = ""
    all_in_focus: np.ndarray | None = None
    deblur_note: str = ""
    metric_range: tuple[float, float] | None = None
    scale: float = 1.0
    notes: list[str] = field(default_factory=list)
    refocuser: Any = field(default=None, repr=False, compare=False)
    source_shape: tuple[int, int] | None = None
    own_lens: OwnLens | None = None
    all_in_focus_source: str = ""
    _linear: np.ndarray | None = field(default=None, repr=False)
    _aif_linear: np.ndarray | None = field(default=None, repr=False)
    _noise: Any = field(default=None, repr=False)

    @property
    def shape(self) -> tuple[int, int]:
        return self.image.shape[:2]

    @property
    def linear(self) -> np.ndarray:
        if self._linear is None:
            self._linear = srgb_to_linear(self.image)
        return self._linear

    @property
    def noise(self):
        """The photo's noise at this copy's size (:func:`refocus.render.grain.estimate_noise`),
        measured once: what ``grain`` adds back."""
        if self._noise is None:
            from refocus.render.grain import estimate_noise

            self._noise = estimate_noise(self.image)
        return self._noise

    @property
    def aif_linear(self) -> np.ndarray | None:
        if self.all_in_focus is None:
            return None
        if self._aif_linear is None:
            self._aif_linear = srgb_to_linear(self.all_in_focus)
        return self._aif_linear

    # -- focus and strength -------------------------------------------------
    def focus_disparity(self, cfg: RefocusConfig) -> float:
        """The focal plane's normalised disparity for ``cfg``'s focus setting (the
        middle of a focus range)."""
        band = self.focus_range(cfg)
        if band is not None:
            return float(sum(band)) / 2.0
        if cfg.focus_distance_m is not None:
            return self._disparity_for_distance(cfg.focus_distance_m, "a focus distance in metres (--focus-value, animate --from/--to)")
        if self.own_lens is not None and all(getattr(cfg, f) is None for f in FOCUS_SETTINGS):
            # No focus asked for: a Lens Blur photo states where its photographer focused
            # (GFocus); auto focus guessed another plane (the Motorola photo: 0.944
            # against its own 0.930), so the default render did not keep the photo's look.
            return float(self.own_lens.focus_disparity)
        if self.scale != 1.0 and (cfg.focus_xy is not None or cfg.focus_box is not None):
            cfg = cfg.model_copy(update=self._in_copy_px(cfg))
        return select_focus(self.disparity, cfg, image=self.image)

    def distance_m(self, focus_disparity: float) -> float | None:
        """The distance (m) of the plane at normalised ``focus_disparity`` on metric
        depth (``inf`` at or beyond zero disparity), or None on relative depth; the
        inverse of :meth:`_disparity_for_distance`."""
        if self.metric_range is None:
            return None
        lo, hi = self.metric_range
        per_m = lo + float(focus_disparity) * (hi - lo)
        return 1.0 / per_m if per_m > 0 else float("inf")

    def _disparity_for_distance(self, distance_m: float, what: str, instead: str = _GIVE_FOCUS_INSTEAD) -> float:
        """The normalised disparity of a distance (m) on metric depth; a one-line error
        naming ``what`` on depth that cannot place it (:meth:`_metric_range_for`)."""
        lo, hi = self._metric_range_for(what, instead)
        return (1.0 / distance_m - lo) / (hi - lo)

    def focus_notes(self, cfg: RefocusConfig, focus_disparity: float) -> list[str]:
        """A note when a focus distance the user gave lies outside the depth's range:
        allowed (a focal plane behind or in front of everything is a real lens
        setting), but a distance in the wrong unit or on the wrong map looks the same."""
        if cfg.focus_distance_m is None or self.metric_range is None or 0.0 <= focus_disparity <= 1.0:
            return []
        near, far = self.distance_m(1.0), self.distance_m(0.0)
        if focus_disparity < 0.0:
            return [f"the focus distance {cfg.focus_distance_m:g} m lies beyond the farthest point of the depth "
                    f"({far:.3g} m): everything is nearer than the focal plane and blurred"]
        return [f"the focus distance {cfg.focus_distance_m:g} m lies in front of the nearest point of the depth "
                f"({near:.3g} m): everything is behind the focal plane and blurred"]

    def _in_copy_px(self, cfg: RefocusConfig) -> dict:
        """``cfg``'s focus point or box, given in the photo's pixels, in this smaller copy's.

        Per axis and by pixel centres, clamped to the copy: with one rounded scale
        factor, the photo's last row or column (a click at its bottom edge) fell
        outside the copy (1600x900 at 20x11: y 880 -> 11) and was refused.
        """
        h, w = self.shape
        sh, sw = self.source_shape or (round(h / self.scale), round(w / self.scale))
        if cfg.focus_box is not None:
            x0, y0, x1, y1 = cfg.focus_box
            return {"focus_box": (x0 * w / sw, y0 * h / sh, x1 * w / sw, y1 * h / sh)}
        from refocus.depth.focus import check_point_inside

        x, y = cfg.focus_xy
        check_point_inside(x, y, sw, sh)  # in the photo's own size, as the user gave it
        cx = min(max((x + 0.5) * w / sw - 0.5, 0.0), w - 1.0)
        cy = min(max((y + 0.5) * h / sh - 0.5, 0.0), h - 1.0)
        return {"focus_xy": (cx, cy)}

    def coc(self, cfg: RefocusConfig, focus_disparity: float, strength: float) -> np.ndarray:
        """The signed CoC map (px) of ``cfg``: about ``focus_disparity``, or zero over
        the whole of ``cfg.focus_range``, or of a ``cfg.focus_band`` wide band centred
        on ``focus_disparity``."""
        from refocus.render import coc_map

        focus = focus_disparity
        band = self.focus_range(cfg)
        if band is not None:
            focus = band
        elif cfg.focus_band > 0:
            focus = (focus_disparity - cfg.focus_band / 2, focus_disparity + cfg.focus_band / 2)
        return coc_map(self.disparity, focus, strength)

    def focus_range(self, cfg: RefocusConfig) -> tuple[float, float] | None:
        """``cfg``'s focus range in normalised disparity (near end first), from
        ``focus_range`` or, through the metric depth, from ``focus_range_m``. A band in
        metres may reach beyond the scene's depth (ends outside [0, 1]): a focal plane
        in front of everything is a real lens setting too."""
        if cfg.focus_range is not None:
            return tuple(sorted(cfg.focus_range, reverse=True))
        if cfg.focus_range_m is None:
            return None
        ends = (self._disparity_for_distance(z, "--focus-range in metres", "give the range in normalised disparity (e.g. 0.4:0.7)")
                for z in cfg.focus_range_m)
        return tuple(sorted(ends, reverse=True))

    def _metric_range_for(self, what: str, instead: str = _GIVE_FOCUS_INSTEAD) -> tuple[float, float]:
        """The metric disparity range (1/m) that turns distances into normalised
        disparity; a one-line error naming ``what`` needed it when the depth is relative."""
        if self.metric_range is None:
            if float(np.ptp(self.disparity)) < 1e-6:
                # A constant map, metric or not, has no range to place a distance in: it
                # was called "relative" even for a map of distances in metres.
                raise RefocusError(f"{what} cannot be placed on this photo's depth ({self.depth_source or 'depth'}): "
                                   f"it is constant, one plane; {instead}")
            raise RefocusError(
                f"{what} needs metric depth, and this photo's ({self.depth_source or 'depth'}) is relative: "
                f"{instead}, or use metric depth "
                "(--depth FILE --depth-kind depth with a float map of distances in metres, .npy, .tif, .pfm or .exr; "
                "or --depth-model apple/DepthPro-hf)"
            )
        return self.metric_range

    def strength(self, cfg: RefocusConfig, focus_disparity: float) -> float:
        """K in pixels of this photo (see :attr:`RefocusConfig.strength`)."""
        if cfg.strength is not None:
            return float(cfg.strength) * self.scale
        if cfg.f_number is not None:
            return strength_from_f_number(self, cfg.f_number, focus_disparity, cfg.full_frame, cfg.sensor_width_mm) * self.scale
        if self.own_lens is not None:
            # The photo's own lens at the new focal plane: a fixed aperture keeps K
            # (blur per unit of disparity), whatever the focus.
            return self.own_lens.strength_px * self.scale
        if cfg.own_lens:
            raise RefocusError(NO_STATED_LENS)
        return default_strength_px(self.shape)


    # -- what the pipeline does with it (decided once, in the Refocuser) --------
    @property
    def pipeline(self) -> "Refocuser":
        """The :class:`~refocus.pipeline.refocuser.Refocuser` that renders this photo."""
        if self.refocuser is None:
            from refocus.pipeline.refocuser import default_refocuser

            self.refocuser = default_refocuser()
        return self.refocuser

    def needs_deblur(self, coc_px: np.ndarray, keep_sharp_px: float = 0.1) -> bool:
        """See :meth:`Refocuser.needs_deblur <refocus.pipeline.refocuser.Refocuser.needs_deblur>`."""
        return self.pipeline.needs_deblur(self, coc_px)

    def ensure_all_in_focus(self, mode: str = "auto", device: str = "cpu") -> bool:
        """See :meth:`Refocuser.ensure_all_in_focus <refocus.pipeline.refocuser.Refocuser.ensure_all_in_focus>`."""
        return self.pipeline.ensure_all_in_focus(self, mode, device)

    def use_all_in_focus(self, cfg: RefocusConfig, coc_maps: list[np.ndarray], run: bool = True) -> bool:
        """See :meth:`Refocuser.use_all_in_focus <refocus.pipeline.refocuser.Refocuser.use_all_in_focus>`."""
        return self.pipeline.use_all_in_focus(self, cfg, coc_maps, run=run)

    def render(self, cfg: RefocusConfig, focus_disparity: float | None = None, strength: float | None = None,
               use_all_in_focus: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
        """See :meth:`Refocuser.render <refocus.pipeline.refocuser.Refocuser.render>`."""
        return self.pipeline.render(self, cfg, focus_disparity, strength, use_all_in_focus)

    def resized(self, max_pixels: int) -> "PreparedPhoto":
        """A copy at most ``max_pixels`` large (for interactive previews).

        Blur radii scale with the image, so the copy renders with ``strength``
        and focus points scaled by the same factor (its :attr:`scale`).
        """
        h, w = self.shape
        if h * w <= max_pixels:
            return self
        s = float(np.sqrt(max_pixels / (h * w)))
        nh, nw = max(1, int(h * s)), max(1, int(w * s))
        aif = None if self.all_in_focus is None else _resize(self.all_in_focus, (nh, nw))
        # Unknown blur (NaN) stays unknown: a large stand-in value, as before, read as
        # "very blurred" and the preview added no blur there while the export did.
        known = np.isfinite(self.input_blur_px)
        weight = _resize(known.astype(np.float32), (nh, nw))
        blur_sum = _resize(np.where(known, self.input_blur_px, 0.0).astype(np.float32), (nh, nw))
        with np.errstate(invalid="ignore", divide="ignore"):
            blur = np.where(weight >= 0.5, blur_sum / weight, np.nan) * (nw / w)
        return replace(
            self,
            image=_resize(self.image, (nh, nw)),
            disparity=_resize(self.disparity, (nh, nw)),
            input_blur_px=blur.astype(np.float32),
            all_in_focus=aif,
            # The EXIF stays (--f-number reads the camera from it); an alpha channel
            # is resized with the image.
            info=None if self.info is None else replace(
                self.info, alpha=None if self.info.alpha is None else _resize(self.info.alpha, (nh, nw))
            ),
            notes=list(self.notes),
            _linear=None,
            _aif_linear=None,
            _noise=None,  # a smaller copy is less noisy
            scale=self.scale * nw / w,
        )



def _resize(a: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    a = np.asarray(a, dtype=np.float32)
    if a.ndim == 2:
        return np.asarray(Image.fromarray(a, "F").resize((hw[1], hw[0]), Image.BILINEAR), dtype=np.float32)
    chans = [np.asarray(Image.fromarray(np.ascontiguousarray(a[..., c]), "F").resize((hw[1], hw[0]), Image.BILINEAR)) for c in range(a.shape[2])]
    return np.clip(np.stack(chans, axis=2), 0, 1).astype(np.float32)



def select_focus(disparity: np.ndarray, cfg: RefocusConfig, image: np.ndarray | None = None) -> float:
    """Focal-plane disparity for the focus setting of ``cfg`` (point, box, mask, value or auto)."""
    from refocus.depth.focus import read_focus_mask
    from refocus.depth.focus import select_focus as _select

    mask = read_focus_mask(cfg.focus_mask, np.shape(disparity)[:2]) if cfg.focus_mask is not None else None
    choice = _select(disparity, point=cfg.focus_xy, box=cfg.focus_box, mask=mask, value=cfg.focus_value)
    return float(choice.focus_disparity)


def strength_from_f_number(photo: PreparedPhoto, f_number: float, focus_disparity: float, full_frame: bool = False,
                           sensor_width_mm: float | None = None) -> float:
    """K (px, for the normalised disparity) of this photo's camera at ``f_number``.

    Needs metric depth (to know the disparity span in 1/m and the focus distance)
    and the EXIF focal length and sensor size (``sensor_width_mm``, along the long
    side, given by the user replaces the EXIF's: many interchangeable-lens cameras
    do not state it). With ``full_frame``, of the camera
    with the same angle of view on a full-frame sensor (focal length and sensor both
    scaled by the crop factor, :func:`refocus.camera.crop_factor`).
    """
    from refocus.camera import camera_from_exif, crop_factor, strength_for_normalised_disparity, strength_from_camera

    if photo.metric_range is None:
        raise RefocusError("--f-number needs metric depth (a distance map in metres: --depth FILE --depth-kind depth); use --strength")
    exif = photo.info.exif if photo.info is not None else None
    name = photo.info.path.name if photo.info is not None and photo.info.path is not None else None
    h, w = photo.shape
    if not exif:
        where = f"{name}: " if name else ""
        raise RefocusError(f"{where}--f-number needs the focal length and sensor size from EXIF, and this photo has no EXIF; "
                           "use --strength")
    cam = camera_from_exif(exif, (round(w / photo.scale), round(h / photo.scale)), source=name)
    if sensor_width_mm is not None:
        # The user gives the whole sensor; a digitally zoomed photo covers a part of it,
        # as camera_from_exif's own width does (CameraInfo.digital_zoom).
        cam.sensor_width_mm = float(sensor_width_mm) / (cam.digital_zoom or 1.0)
    # Names the file, and the EXIF tag when its value was refused as implausible.
    cam.require("focal_length_mm", purpose="--f-number", hint="use --strength")
    cam.require("sensor_width_mm", purpose="--f-number",
                hint="give the sensor's width along the long side, e.g. --sensor-width 17.3 (Micro Four Thirds), or use --strength")
    focus_m = photo.distance_m(focus_disparity)
    if not np.isfinite(focus_m):
        raise RefocusError("the focal plane is at infinity; --f-number cannot be used there, use --strength")
    focal_mm, sensor_mm = cam.focal_length_mm, cam.sensor_width_mm
    if full_frame:
        crop = crop_factor(sensor_mm, max(w, h) / min(w, h))
        focal_mm, sensor_mm = focal_mm * crop, sensor_mm * crop
    # K for the full photo; render() applies this copy's scale.
    k_metric = strength_from_camera(f_number, focal_mm, sensor_mm, focus_m, round(max(w, h) / photo.scale))
    return strength_for_normalised_disparity(k_metric, *photo.metric_range)
