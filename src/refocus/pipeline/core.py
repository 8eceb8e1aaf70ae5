"""The stages composed: depth -> DeblurNet -> bokeh renderer.

:class:`PreparedPhoto` holds what is expensive and does not depend on the focus
(the photo, its disparity, its estimated input blur, the all-in-focus image once
computed), so that the UI and focus pulls re-render without recomputing them.
:func:`refocus` is the one-shot API behind ``refocus refocus``.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from refocus.errors import RefocusError
from refocus.io import ImageInfo, linear_to_srgb, read_image, srgb_to_linear
from refocus.pipeline.config import RefocusConfig

#: Input blur radius (px) under which the input counts as sharp.
SHARP_INPUT_PX = 1.0
#: Sharpening (input blur minus the new |CoC|, px) at which the all-in-focus image
#: takes over from the input, fully at SHARPEN_FROM_PX + 1: less than that is left
#: to the input with the blur it lacks (issue 12: DeblurNet's output is worse than
#: the input wherever little or nothing must be removed, e.g. all 6 deblur cases of
#: a real Lytro capture, where the input's blur is under 1 px).
SHARPEN_FROM_PX = 1.0


def residual_coc(coc_px: np.ndarray, input_blur_px: np.ndarray) -> np.ndarray:
    """The CoC still to render onto an input that carries its own blur b:
    ``sign(c) sqrt(max(c^2 - b^2, 0))`` (radii of successive blurs add in quadrature
    for the second moments of disc kernels), b the :func:`subtractable_blur`."""
    from refocus.render.backends import cpu_backend

    return cpu_backend().residual_coc(coc_px, subtractable_blur(input_blur_px))


def subtractable_blur(input_blur_px: np.ndarray) -> np.ndarray:
    """The part of an estimated input blur (px) the renderer subtracts from the new CoC.

    Both estimates (the edge readings of :mod:`refocus.pipeline.sharpness` and
    DeblurNet's map) are good to about +-1 px: on the real Lytro captures (true
    blur 0-1 px) both read 0.8-1.4 px everywhere, and subtracting that left the
    flowers that should be blurred 0.5-1 px nearly sharp (refocus, lytro1g-0002,
    R = 4, near -> far: 1.3 dB behind naive re-blurring there). Readings up to 1 px
    count as no measurable blur, those from 2 px fully; unknown (NaN) as 0.
    """
    b = np.where(np.isfinite(input_blur_px), input_blur_px, 0.0).astype(np.float32)
    return (b * np.clip(b - 1.0, 0.0, 1.0)).astype(np.float32)


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
    _linear: np.ndarray | None = field(default=None, repr=False)
    _aif_linear: np.ndarray | None = field(default=None, repr=False)

    @property
    def shape(self) -> tuple[int, int]:
        return self.image.shape[:2]

    @property
    def linear(self) -> np.ndarray:
        if self._linear is None:
            self._linear = srgb_to_linear(self.image)
        return self._linear

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
        if self.scale != 1.0 and (cfg.focus_xy is not None or cfg.focus_box is not None):
            s = self.scale
            upd = {"focus_xy": tuple(v * s for v in cfg.focus_xy)} if cfg.focus_xy is not None else {"focus_box": tuple(v * s for v in cfg.focus_box)}
            cfg = cfg.model_copy(update=upd)
        return select_focus(self.disparity, cfg, image=self.image)

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
        if self.metric_range is None:
            raise RefocusError(
                f"--focus-range in metres needs metric depth, and this photo's ({self.depth_source or 'depth'}) is relative: "
                "give the range in normalised disparity (e.g. 0.4:0.7), or use metric depth "
                "(--depth FILE --depth-kind depth with distances in metres, or --depth-model apple/DepthPro-hf)"
            )
        lo, hi = self.metric_range
        return tuple(sorted(((1.0 / z - lo) / (hi - lo) for z in cfg.focus_range_m), reverse=True))

    def strength(self, cfg: RefocusConfig, focus_disparity: float) -> float:
        """K in pixels of this photo (see :attr:`RefocusConfig.strength`)."""
        if cfg.strength is not None:
            return float(cfg.strength) * self.scale
        if cfg.f_number is not None:
            return strength_from_f_number(self, cfg.f_number, focus_disparity) * self.scale
        return 0.015 * max(self.shape)

    # -- deblurring -----------------------------------------------------------
    def needs_deblur(self, coc_px: np.ndarray, keep_sharp_px: float = 0.1) -> bool:
        """Whether an all-in-focus image can improve this render.

        It cannot when the new blur is at least the input's everywhere: the input
        then only needs the extra blur, and where the new blur is tiny the input is
        already sharp and is kept.
        """
        b = self.input_blur_px
        with np.errstate(invalid="ignore"):
            need = (b > SHARP_INPUT_PX) & (np.abs(coc_px) + 0.5 < b)
        # A handful of pixels (noise in the estimate) is not worth a network pass.
        return bool(need.mean() > 0.002)

    def ensure_all_in_focus(self, mode: str = "auto", device: str = "cpu") -> bool:
        """Run DeblurNet once (cached). Returns whether an all-in-focus image exists.

        With ``mode="auto"`` a missing DeblurNet is a note, not an error; with
        ``"always"`` it is an error; ``"never"`` does nothing.
        """
        if self.all_in_focus is not None:
            return True
        if mode == "never" or self.deblur_note:
            return False
        try:
            aif, defocus = run_deblur(self.image, device=device)
        except RefocusError as exc:
            if mode == "always":
                raise
            self.deblur_note = str(exc)
            self.notes.append(f"{exc}; rendering from the input photo, with only the blur it lacks")
            return False
        self.all_in_focus = aif
        self._aif_linear = None
        if defocus is not None and np.shape(defocus) == self.shape:
            from refocus.pipeline.sharpness import pool_blur_by_disparity

            # DeblurNet's map reads blur in flat, textureless regions (3-4 px where
            # the true CoC is ~0.2): pooled per disparity over textured pixels, and
            # never above the edge-based estimate where that has one.
            self.input_blur_px = pool_blur_by_disparity(
                np.abs(np.asarray(defocus, dtype=np.float32)), self.disparity, self.image, prior_px=self.input_blur_px
            )
        return True

    def use_all_in_focus(self, cfg: RefocusConfig, coc_maps: list[np.ndarray], run: bool = True) -> bool:
        """The one decision "deblur, then render": whether renders with these CoC maps
        use DeblurNet's output. ``cfg.deblur`` "never": no; "always": yes (running it
        when ``run``); "auto": when :meth:`needs_deblur` says it can help any of them.
        With ``run=False`` (the UI's re-renders) only an output computed before is
        used. Every caller (``refocus``, the UI, focus pulls, the benchmark) asks here.
        """
        if cfg.deblur == "never":
            return False
        need = cfg.deblur == "always" or any(self.needs_deblur(c, cfg.keep_sharp_px) for c in coc_maps)
        if not need:
            if cfg.deblur == "auto" and run:
                note = "the input is already at most as blurred as asked everywhere: deblurring skipped"
                if note not in self.notes:
                    self.notes.append(note)
            return False
        if not run:
            return self.all_in_focus is not None
        return self.ensure_all_in_focus(cfg.deblur, cfg.device)

    # -- rendering ------------------------------------------------------------
    def render(
        self,
        cfg: RefocusConfig,
        focus_disparity: float | None = None,
        strength: float | None = None,
        use_all_in_focus: bool | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Render the photo with a new focus.

        Parameters
        ----------
        cfg : the settings (aperture, quality, keep_sharp_px...).
        focus_disparity, strength : override the ones derived from ``cfg``.
        use_all_in_focus : render from DeblurNet's output (default: when it exists).

        Returns
        -------
        image : (H, W, 3) float32 sRGB in [0, 1]
        coc_px : (H, W) float32, the signed CoC asked for (px).
        """
        from refocus.render import RenderConfig, render_linear

        fd = self.focus_disparity(cfg) if focus_disparity is None else float(focus_disparity)
        k = self.strength(cfg, fd) if strength is None else float(strength)
        coc = self.coc(cfg, fd, k)
        if use_all_in_focus is None:
            use_all_in_focus = self.all_in_focus is not None
        if use_all_in_focus and self.aif_linear is not None:
            base, coc_eff = self._sharpened_base(coc)
        else:
            base, coc_eff = self.linear, residual_coc(coc, self.input_blur_px)
        overrides = {"aperture": cfg.aperture, "quality": cfg.quality, "device": _render_device(cfg.device)}
        if cfg.highlight_gain is not None:
            overrides["highlight_gain"] = cfg.highlight_gain
        out_lin = render_linear(base, coc_eff, RenderConfig(**overrides))
        out_lin = keep_sharp_input(out_lin, self.linear, coc, self.input_blur_px, cfg.keep_sharp_px)
        return linear_to_srgb(out_lin), coc

    def _sharpened_base(self, coc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The image to render from and the CoC to render with, when an all-in-focus
        image exists: that image with the full CoC where the new focus needs
        sharpening (the input blur exceeds the new |CoC| by more than
        :data:`SHARPEN_FROM_PX`), elsewhere the input with only the blur it lacks,
        blended over one pixel of needed sharpening."""
        b = np.asarray(self.input_blur_px, dtype=np.float32)
        # Unknown input blur: the network's output is used, as before any estimate.
        need = np.where(np.isfinite(b), b - np.abs(coc), np.inf)
        w = np.clip(need - SHARPEN_FROM_PX, 0.0, 1.0).astype(np.float32)
        if float(w.min()) >= 1.0:
            return self.aif_linear, coc
        coc_in = residual_coc(coc, b)
        base = self.linear + w[..., None] * (self.aif_linear - self.linear)
        return base.astype(np.float32), (coc_in + w * (coc - coc_in)).astype(np.float32)

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
        blur = _resize(np.where(np.isfinite(self.input_blur_px), self.input_blur_px, 1e6), (nh, nw)) * (nw / w)
        return replace(
            self,
            image=_resize(self.image, (nh, nw)),
            disparity=_resize(self.disparity, (nh, nw)),
            input_blur_px=blur.astype(np.float32),
            all_in_focus=aif,
            info=None,
            notes=list(self.notes),
            _linear=None,
            _aif_linear=None,
            scale=self.scale * nw / w,
        )


def _render_device(device: str) -> str:
    return {"cpu": "cpu", "cuda": "cuda", "auto": "auto"}.get(device, "cpu")


def _resize(a: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    a = np.asarray(a, dtype=np.float32)
    if a.ndim == 2:
        return np.asarray(Image.fromarray(a, "F").resize((hw[1], hw[0]), Image.BILINEAR), dtype=np.float32)
    chans = [np.asarray(Image.fromarray(np.ascontiguousarray(a[..., c]), "F").resize((hw[1], hw[0]), Image.BILINEAR)) for c in range(a.shape[2])]
    return np.clip(np.stack(chans, axis=2), 0, 1).astype(np.float32)


#: Largest difference (linear light, any channel) between the render and the input
#: at which the input's pixel is put back whole; none is put back at twice it.
#: Along a depth edge whose CoC passes through 0, the render is (rightly) covered
#: by the blurred side nearer than the focal plane, and putting the input back
#: there drew a dotted sharp outline (issue 12, bokehme-21, focus 694,507, K = 45).
#: Measured on bokehme-3, -13 and -21 with their disparity (render without the
#: boost, |CoC| < 1, sharp input): away from any blurred nearer side, 90 % of the
#: pixels differ by less than 0.021 and 99 % by less than 0.075; within 4 px of
#: one, the median difference is 0.02-0.12.
KEEP_AGREE_LINEAR = 0.05


def keep_sharp_input(
    rendered_linear: np.ndarray, input_linear: np.ndarray, coc_px: np.ndarray, input_blur_px: np.ndarray, keep_sharp_px: float
) -> np.ndarray:
    """Put the input's own pixels back where they are already what was asked for.

    Weight 1 where the new |CoC| <= ``keep_sharp_px`` and the input was sharp
    there, falling linearly to 0 at twice that radius (no visible seam); and only
    where the render agrees with the input (:data:`KEEP_AGREE_LINEAR`): where a
    blurred nearer surface spreads over an in-focus pixel, the render is right.
    """
    if keep_sharp_px <= 0:
        return rendered_linear
    from refocus.render.backends import cpu_backend

    return cpu_backend().blend_kept(rendered_linear, input_linear, coc_px, input_blur_px, float(keep_sharp_px), SHARP_INPUT_PX,
                                    KEEP_AGREE_LINEAR)


# -- stages (lazy imports: the stage packages are optional) ------------------


def run_deblur(image: np.ndarray, device: str = "cpu") -> tuple[np.ndarray, np.ndarray | None]:
    """Call DeblurNet; a missing or unusable one raises :class:`RefocusError`."""
    try:
        from refocus.deblur import deblur
    except ImportError:
        raise RefocusError("DeblurNet is not available in this installation (refocus.deblur.deblur missing)") from None
    # deblur() resolves "auto" (the GPU when there is one) and reports missing or
    # foreign weights and bad devices as RefocusError itself.
    aif, defocus = deblur(image, device=device)
    aif = np.clip(np.asarray(aif, dtype=np.float32), 0, 1)
    if aif.shape != image.shape:
        raise RefocusError(f"DeblurNet returned shape {aif.shape} for an image of shape {image.shape}")
    return aif, defocus


def load_disparity(
    image: np.ndarray, image_path: str | os.PathLike | None, cfg: RefocusConfig, notes: list[str]
) -> tuple[np.ndarray, str, tuple[float, float] | None]:
    """Normalised disparity (larger = nearer, [0, 1]) at the image's size, its source,
    and the metric disparity range (1/m) when the depth is known in metres."""
    from refocus.depth.prepare import prepare_disparity

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            from refocus.depth import get_depth
        except ImportError:
            get_depth = None
        if get_depth is not None:
            res = get_depth(
                image_path,
                depth_path=cfg.depth_path,
                depth_kind=cfg.depth_kind,
                model=cfg.depth_model,
                allow_estimate=True,
                image=image,
                device="cpu" if cfg.device == "auto" else cfg.device,
            )
            notes.extend(str(n) for n in getattr(res, "notes", []))
            d = np.asarray(res.disparity(), dtype=np.float32)
            source = str(getattr(res, "source", "depth"))
            metric = _metric_range(np.asarray(res.values), res.kind) if getattr(res, "metric", False) else None
            if d.shape != image.shape[:2]:
                d = prepare_disparity(d, "disparity", True, shape=image.shape[:2], guide=image)
        else:
            if cfg.depth_path is None:
                raise RefocusError(
                    "no depth map: pass --depth FILE (depth estimation is not available in this installation)"
                )
            from refocus.io import read_depth_file

            raw = read_depth_file(cfg.depth_path, max_pixels=int(cfg.max_megapixels * 1e6))
            # Float distance maps are taken to be in metres (integer PNGs rarely are).
            metric = _metric_range(raw, "depth") if cfg.depth_kind == "depth" and not Path(cfg.depth_path).suffix.lower() == ".png" else None
            d = prepare_disparity(raw, cfg.depth_kind or "disparity", True, shape=image.shape[:2], guide=image)
            source = f"file {Path(cfg.depth_path).name} ({cfg.depth_kind or 'disparity'})"
    for w in caught:
        notes.append(str(w.message).splitlines()[0])
    if not np.isfinite(d).all():
        raise RefocusError("depth stage returned non-finite disparity")
    return np.clip(d, 0, 1).astype(np.float32), source, metric


def _metric_range(values: np.ndarray, kind: str) -> tuple[float, float] | None:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v) & (v > 0)]
    if v.size == 0:
        return None
    disp = 1.0 / v if kind == "depth" else v
    lo, hi = float(disp.min()), float(disp.max())
    return (lo, hi) if hi > lo else None


def select_focus(disparity: np.ndarray, cfg: RefocusConfig, image: np.ndarray | None = None) -> float:
    """Focal-plane disparity for the focus setting of ``cfg`` (point, box, value or auto)."""
    from refocus.depth.focus import select_focus as _select

    choice = _select(disparity, point=cfg.focus_xy, box=cfg.focus_box, value=cfg.focus_value)
    return float(choice.focus_disparity)


def strength_from_f_number(photo: PreparedPhoto, f_number: float, focus_disparity: float) -> float:
    """K (px, for the normalised disparity) of this photo's camera at ``f_number``.

    Needs metric depth (to know the disparity span in 1/m and the focus distance)
    and the EXIF focal length and sensor size.
    """
    from refocus.camera import camera_from_exif, strength_for_normalised_disparity, strength_from_camera

    if photo.metric_range is None:
        raise RefocusError("--f-number needs metric depth (a distance map in metres: --depth FILE --depth-kind depth); use --strength")
    exif = photo.info.exif if photo.info is not None else None
    h, w = photo.shape
    cam = camera_from_exif(exif, (round(w / photo.scale), round(h / photo.scale))) if exif else None
    if cam is None or cam.focal_length_mm is None or cam.sensor_width_mm is None:
        raise RefocusError("--f-number needs the focal length and sensor size from EXIF, which this photo lacks; use --strength")
    lo, hi = photo.metric_range
    focus_per_m = lo + float(focus_disparity) * (hi - lo)
    if focus_per_m <= 0:
        raise RefocusError("the focal plane is at infinity; --f-number cannot be used there, use --strength")
    # K for the full photo; render() applies this copy's scale.
    k_metric = strength_from_camera(f_number, cam.focal_length_mm, cam.sensor_width_mm, 1.0 / focus_per_m, round(max(w, h) / photo.scale))
    return strength_for_normalised_disparity(k_metric, lo, hi)


def output_info(info: ImageInfo | None, cfg: RefocusConfig) -> ImageInfo | None:
    """The metadata to write with a result rendered with ``cfg``: with ``f_number``,
    EXIF FNumber becomes the simulated one and UserComment keeps the original."""
    if info is None or cfg.f_number is None:
        return info
    from refocus.camera.exif import exif_with_f_number

    return replace(info, exif=exif_with_f_number(info.exif, cfg.f_number))


# -- the one-shot API ----------------------------------------------------------


@dataclass
class RefocusResult:
    """What :func:`refocus` produced.

    Attributes
    ----------
    image : (H, W, 3) float32 sRGB, the refocused photo.
    all_in_focus : the image the blur was rendered from (DeblurNet's output, or
        the input when deblurring was skipped or unavailable).
    disparity, coc_px : (H, W) float32 maps used.
    focus_disparity, strength : the focal plane and K (px) used.
    deblurred : whether DeblurNet's output was used.
    notes : one-line remarks for the user (fallbacks, resampling).
    timings_s : seconds per stage.
    """

    image: np.ndarray
    all_in_focus: np.ndarray
    disparity: np.ndarray
    coc_px: np.ndarray
    input_blur_px: np.ndarray
    focus_disparity: float
    strength: float
    deblurred: bool
    info: ImageInfo | None
    config: RefocusConfig
    depth_source: str = ""
    notes: list[str] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)


def load_photo(image, cfg: RefocusConfig) -> tuple[np.ndarray, ImageInfo | None, Path | None]:
    """Accept a path or an array; return (sRGB float32 H x W x 3, info, path)."""
    if isinstance(image, (str, os.PathLike)):
        rgb, info = read_image(image, max_pixels=int(cfg.max_megapixels * 1e6))
        return rgb, info, Path(image)
    from refocus.io import as_float_rgb

    arr, alpha = as_float_rgb(image)
    if arr.shape[0] * arr.shape[1] > cfg.max_megapixels * 1e6:
        raise RefocusError(f"image has {arr.shape[0] * arr.shape[1] / 1e6:.0f} megapixels, over the limit of {cfg.max_megapixels:g}")
    return arr, ImageInfo(alpha=alpha), None


def prepare(image, cfg: RefocusConfig | None = None, **kwargs) -> PreparedPhoto:
    """Load a photo and its depth, and estimate its blur (no deblurring yet).

    ``image`` is a path or an H x W x 3 array; ``kwargs`` are :class:`RefocusConfig`
    fields.
    """
    cfg = cfg or RefocusConfig.build(**kwargs)
    from refocus.pipeline.sharpness import input_blur_map

    rgb, info, path = load_photo(image, cfg)
    notes: list[str] = []
    disp, source, metric = load_disparity(rgb, path, cfg, notes)
    blur = input_blur_map(rgb, disp)
    return PreparedPhoto(
        image=rgb, disparity=disp, input_blur_px=blur, info=info, depth_source=source, notes=notes, metric_range=metric
    )


def refocus(image, config: RefocusConfig | None = None, **kwargs) -> RefocusResult:
    """Refocus a photo: depth -> DeblurNet (where it helps) -> bokeh renderer.

    Parameters
    ----------
    image : path or (H, W, 3) array (float in [0, 1], uint8 or uint16)
        The photo. A path keeps EXIF, ICC profile and alpha for writing.
    config : RefocusConfig, optional
        All settings; alternatively give them as keyword arguments
        (``focus_xy=(x, y)``, ``strength=20``, ``depth_path=...``, ...).

    Returns
    -------
    RefocusResult
        ``result.image`` is the new photo (float32 sRGB); write it with
        ``refocus.io.write_image(path, result.image, result.info)``.
    """
    if config is not None and kwargs:
        config = config.model_copy(update=kwargs)
        config = RefocusConfig.build(**config.model_dump(exclude={"aperture"}), aperture=config.aperture)
    cfg = config or RefocusConfig.build(**kwargs)
    t = {}
    t0 = time.perf_counter()
    photo = prepare(image, cfg)
    t["load_and_depth"] = time.perf_counter() - t0
    fd = photo.focus_disparity(cfg)
    k = photo.strength(cfg, fd)
    coc = photo.coc(cfg, fd, k)
    t0 = time.perf_counter()
    deblurred = photo.use_all_in_focus(cfg, [coc])
    t["deblur"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    out, coc = photo.render(cfg, fd, k, use_all_in_focus=deblurred)
    t["render"] = time.perf_counter() - t0
    return RefocusResult(
        image=out,
        all_in_focus=photo.all_in_focus if deblurred else photo.image,
        disparity=photo.disparity,
        coc_px=coc,
        input_blur_px=photo.input_blur_px,
        focus_disparity=fd,
        strength=k,
        deblurred=deblurred,
        info=output_info(photo.info, cfg),
        config=cfg,
        depth_source=photo.depth_source,
        notes=photo.notes,
        timings_s=t,
    )
