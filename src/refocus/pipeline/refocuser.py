"""The pipeline object: swappable components composed, and the one decision
"deblur, then render".

A :class:`Refocuser` is built from six components. Each is a plain callable
(a function, or a small class when it carries state or attributes); any object
with the same call replaces it:

========================  ===================================================  ==========================
component                 call                                                 default
========================  ===================================================  ==========================
``depth``                 ``(image, path, cfg, notes) -> (disparity, source,   :func:`~refocus.pipeline.stages.load_disparity`
                          metric_range)``; an ``own_blur_px`` attribute on
                          the tuple, when present, is the blur range of a
                          depth read from the photo's own blur
``blur_estimate``         ``(image, disparity) -> input_blur_px``              :func:`~refocus.pipeline.sharpness.input_blur_map`
``deblurrer``             ``(image, device) -> (all_in_focus, defocus_px)``    :class:`DeblurNetDeblurrer`
``renderer``              ``(base, coc_px, cfg) -> image``                     :class:`LayeredRenderer`
``keep_sharp``            ``(rendered, input, coc_px, input_blur_px,           :func:`keep_sharp_input`
                          keep_sharp_px) -> image`` (linear light), or None
``own_lens``              ``(path, full_shape, depth_source, notes) ->         :func:`~refocus.pipeline.stages.load_own_lens`
                          OwnLens | None``: the lens the file states, or None
========================  ===================================================  ==========================

Arrays are numpy (torch tensors are accepted back): images H x W x 3 float32, sRGB
in [0, 1] unless ``linear_light``; the disparity (H, W) normalised to [0, 1], larger
= nearer; blur and CoC maps (H, W) in px. What a component returns is checked
(:func:`checked_depth`, :func:`checked_blur`, :func:`checked_deblurred`,
:func:`checked_render`): a wrong shape, NaN or an unnormalised disparity is a one-line
:class:`~refocus.errors.RefocusError` naming the component.

A renderer says how it works through two attributes: ``linear_light`` (it blurs
linear light, as a lens does; otherwise it takes and returns sRGB) and
``adds_blur`` (it can add only the blur an already blurred input lacks; a
generative BokehNet, trained on all-in-focus inputs, cannot, and is then always
given the all-in-focus image). A component with a ``check(cfg)`` method is asked
before any work (the generative engine resolves its weights there, in seconds).

:func:`default_refocuser` is the physical engine (``refocus refocus``); the
generative engine is the same object with Genfocus's DeblurNet and BokehNet as the
deblurrer and the renderer (:func:`refocus.pipeline.genfocus.run.genfocus_refocuser`).
Every caller -- the one-shot :func:`refocus.pipeline.refocus`, the UI, focus
pulls, batches and the benchmark -- goes through :meth:`Refocuser.render_focus`
or :meth:`Refocuser.render`, so the decision is taken in one place.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from refocus.depth import DEFOCUS_ESTIMATE_SOURCE
from refocus.errors import RefocusError
from refocus.io import ImageInfo, linear_to_srgb
from refocus.pipeline.config import RefocusConfig
from refocus.pipeline.photo import PreparedPhoto, _resize
from refocus.pipeline import stages

#: Input blur radius (px) under which the input counts as sharp.
SHARP_INPUT_PX = 1.0
#: Sharpening (input blur minus the new |CoC|, px) at which the all-in-focus image
#: takes over from the input, fully at SHARPEN_FROM_PX + 1: less than that is left
#: to the input with the blur it lacks (issue 12: DeblurNet's output is worse than
#: the input wherever little or nothing must be removed, e.g. all 6 deblur cases of
#: a real Lytro capture, where the input's blur is under 1 px).
SHARPEN_FROM_PX = 1.0
#: Largest difference (sRGB as displayed, any channel) between the render and the
#: input at which the input's pixel is put back whole; none is put back at twice
#: it, so the blend moves no pixel by more than this (2.6/255): invisible.
#: Along a depth edge whose CoC passes through 0, the render is (rightly) covered
#: by the blurred side nearer than the focal plane, and putting the input back
#: there drew a dotted sharp outline (issue 12, bokehme-21, focus 694,507, K = 45).
#: Until 2026-12-07 this was 0.05 in linear light, which in the shadows is up to
#: 0.25 in sRGB: dark sharp dots were still put back through a dark blurred nearer
#: side (bokehme-3, focus value 0.5, K = 80; one pixel 22,12,0 against the render's
#: 53,47,37). Set from the bound above, not from data; checked on bokehme-3, -13
#: and -21 with their disparity (focus values 0.3/0.5/0.7, K 20 and 60, no boost,
#: |CoC| < 0.2, sharp input): of the pixels no blurred nearer side covers
#: (297,273), 99.6 % of the weight is still put back (90 % of them differ by
#: under 0.002 in 8 of the 9 renders, 0.015 in the ninth); of those it covers
#: (4,262), 16 % instead of 57 %, each by at most this much.
KEEP_AGREE_SRGB = 0.01
#: ``all_in_focus_source`` of a Lens Blur file's stored original.
STORED_ORIGINAL = "stored original"
#: Share of the pixels that must need sharpening before a network pass is worth it
#: (fewer is noise in the blur estimate).
DEBLUR_MIN_SHARE = 0.002


def merged_config(cfg, fields: dict) -> RefocusConfig:
    """``cfg`` (a :class:`RefocusConfig`, a dict of its fields or None) with ``fields``,
    settings given as keyword arguments, over it: checked as one config, so a focus
    given both ways is refused as any two focus settings are."""
    if not fields:
        return RefocusConfig.coerce(cfg)
    if cfg is None:
        return RefocusConfig.build(**fields)
    base = RefocusConfig.coerce(cfg)
    # The aperture as the object it is: a custom shape's image is excluded from its dump.
    return RefocusConfig.build(**{**base.model_dump(exclude={"aperture"}), "aperture": base.aperture, **fields})


# -- what a component returns ------------------------------------------------------
# Components are the user's own callables: what they return is checked here, once,
# so that a wrong shape or a NaN is one line naming the component, not an IndexError
# deep in the renderer's compiled loops or a silently cropped or NaN photo.


def _host_array(value) -> np.ndarray:
    """A component's array output as numpy (a torch tensor on any device included)."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _finite(arr: np.ndarray) -> bool:
    # min and max carry any NaN or inf without a full-size mask.
    return arr.size == 0 or bool(np.isfinite(arr.min()) and np.isfinite(arr.max()))


def checked_depth(loaded, shape: tuple[int, int]) -> tuple[np.ndarray, str, Any]:
    """The ``depth`` component's ``(disparity, source, metric_range)``, checked: the
    disparity (H, W) at the photo's size, finite, normalised to [0, 1]."""
    if not isinstance(loaded, (tuple, list)) or len(loaded) != 3:
        raise RefocusError(f"the depth component must return (disparity, source, metric_range), got {_described(loaded)}")
    disp = _host_array(loaded[0])
    if disp.shape != tuple(shape):
        raise RefocusError(f"the depth component returned a disparity of shape {disp.shape} for an image of {tuple(shape)}")
    disp = disp.astype(np.float32, copy=False)
    lo, hi = (float(disp.min()), float(disp.max())) if disp.size else (0.0, 0.0)
    if not (np.isfinite(lo) and np.isfinite(hi)):  # min and max carry any NaN or inf
        raise RefocusError("the depth component returned a disparity with NaN or infinite values")
    if lo < -1e-4 or hi > 1 + 1e-4:
        raise RefocusError(
            f"the depth component returned disparity in [{lo:g}, {hi:g}]; it must be normalised to [0, 1] (larger = nearer)"
        )
    return disp, loaded[1], loaded[2]


def checked_blur(input_blur_px, shape: tuple[int, int]) -> np.ndarray:
    """The ``blur_estimate`` component's (H, W) blur radius map, px (NaN: unknown)."""
    b = _host_array(input_blur_px)
    if b.shape != tuple(shape):
        raise RefocusError(f"the blur_estimate component returned shape {b.shape} for an image of {tuple(shape)}")
    return b.astype(np.float32, copy=False)


def checked_deblurred(out, image_shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray | None]:
    """The ``deblurrer``'s ``(all_in_focus, defocus_px or None)``, checked: the image
    at the input's shape and finite (uint8/uint16 scaled to [0, 1]), the defocus map
    (H, W) when given."""
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise RefocusError(f"the deblurrer must return (all_in_focus, defocus_px or None), got {_described(out)}")
    aif = _host_array(out[0])
    if aif.shape != tuple(image_shape):
        raise RefocusError(f"the deblurrer returned shape {aif.shape} for an image of shape {tuple(image_shape)}")
    if aif.dtype.kind in "ui":
        from refocus.io import as_float_rgb

        aif = as_float_rgb(aif)[0]  # scaled by its integer type, as any input image
    aif = aif.astype(np.float32, copy=False)
    lo, hi = (float(aif.min()), float(aif.max())) if aif.size else (0.0, 0.0)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise RefocusError("the deblurrer returned an image with NaN or infinite values")
    defocus = out[1]
    if defocus is not None:
        defocus = _host_array(defocus)
        if defocus.shape != tuple(image_shape[:2]):
            raise RefocusError(
                f"the deblurrer returned a defocus map of shape {defocus.shape} for an image of {tuple(image_shape[:2])} "
                "(return None when there is none)"
            )
        defocus = defocus.astype(np.float32, copy=False)
    # DeblurNet's output is checked twice (run_deblur, then the Refocuser): an output
    # already in range is not copied again (12 bytes per pixel).
    return (aif if lo >= 0 and hi <= 1 else np.clip(aif, 0, 1)), defocus


def checked_render(out, shape: tuple[int, ...]) -> np.ndarray:
    """The ``renderer``'s image: the shape of the image it was given, finite."""
    arr = _host_array(out) if out is not None else np.empty(0)
    if arr.shape != tuple(shape):
        got = "None" if out is None else f"shape {arr.shape}"
        raise RefocusError(f"the renderer returned {got} for an image of shape {tuple(shape)}")
    arr = arr.astype(np.float32, copy=False)
    if not _finite(arr):
        raise RefocusError("the renderer returned an image with NaN or infinite values")
    return arr


def _described(value) -> str:
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)}"
    shape = getattr(value, "shape", None)
    return f"{type(value).__name__} of shape {tuple(shape)}" if shape is not None else type(value).__name__


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


def residual_coc(coc_px: np.ndarray, input_blur_px: np.ndarray) -> np.ndarray:
    """The CoC still to render onto an input that carries its own blur b:
    ``sign(c) sqrt(max(c^2 - b^2, 0))`` (radii of successive blurs add in quadrature
    for the second moments of disc kernels), b the :func:`subtractable_blur`."""
    from refocus.render.backends import cpu_backend

    return cpu_backend().residual_coc(coc_px, subtractable_blur(input_blur_px))


def keep_sharp_input(
    rendered_linear: np.ndarray, input_linear: np.ndarray, coc_px: np.ndarray, input_blur_px: np.ndarray, keep_sharp_px: float
) -> np.ndarray:
    """Put the input's own pixels back where they are already what was asked for.

    Weight 1 where the new |CoC| <= ``keep_sharp_px`` and the input was sharp
    there, falling linearly to 0 at twice that radius (no visible seam); and only
    where the render agrees with the input (:data:`KEEP_AGREE_SRGB`): where a
    blurred nearer surface spreads over an in-focus pixel, the render is right.
    """
    if keep_sharp_px <= 0:
        return rendered_linear
    from refocus.render.backends import cpu_backend

    return cpu_backend().blend_kept(rendered_linear, input_linear, coc_px, input_blur_px, float(keep_sharp_px), SHARP_INPUT_PX,
                                    KEEP_AGREE_SRGB)


# -- the default components ------------------------------------------------------


class DeblurNetDeblurrer:
    """refocus's DeblurNet (:func:`refocus.deblur.deblur`): all-in-focus image and
    defocus map (px). ``progress(done, total)``, when given, hears of each window done
    (at full size on a CPU DeblurNet is most of a render: a 12 MP photo, ~2 min on 2 cores)."""

    def __init__(self, progress=None):
        self.progress = progress

    def __call__(self, image: np.ndarray, device: str = "cpu") -> tuple[np.ndarray, np.ndarray | None]:
        return stages.run_deblur(image, device=device, progress=self.progress)


class LayeredRenderer:
    """The physical renderer (:func:`refocus.render.render_linear`): layered
    scatter-as-gather in linear light, with the config's aperture, quality,
    device and highlight boost, on ``threads`` (a
    :class:`~refocus.render.threads.RenderThreads`; None: the process's shared one)."""

    linear_light = True
    adds_blur = True

    def __init__(self, threads=None, smooth_sum: bool = True):
        self.threads = threads
        self.smooth_sum = smooth_sum  # RenderConfig.smooth_sum

    def __call__(self, base_linear: np.ndarray, coc_px: np.ndarray, cfg: RefocusConfig) -> np.ndarray:
        from refocus.render import RenderConfig, render_linear

        device = {"cpu": "cpu", "cuda": "cuda", "auto": "auto"}.get(cfg.device, "cpu")
        overrides: dict[str, Any] = {"aperture": cfg.aperture, "quality": cfg.quality, "device": device, "smooth_sum": self.smooth_sum}
        if cfg.highlight_gain is not None:
            overrides["highlight_gain"] = cfg.highlight_gain
        if cfg.highlight_threshold is not None:
            overrides["highlight_threshold"] = cfg.highlight_threshold
        return render_linear(base_linear, coc_px, RenderConfig(**overrides), threads=self.threads)


def _input_blur_map(image: np.ndarray, disparity: np.ndarray) -> np.ndarray:
    from refocus.pipeline.sharpness import input_blur_map

    return input_blur_map(image, disparity)


@dataclass
class Rendered:
    """One render of a prepared photo and what was decided for it: ``image`` (H, W, 3)
    float32 sRGB in [0, 1], ``coc_px`` (H, W) the signed CoC asked for (px),
    ``focus_disparity`` (normalised disparity), ``strength`` (K, px), ``deblurred``
    (whether the all-in-focus image was used)."""

    image: np.ndarray
    coc_px: np.ndarray
    focus_disparity: float
    strength: float
    deblurred: bool


@dataclass
class RefocusResult:
    """What :meth:`Refocuser.refocus` produced.

    Attributes
    ----------
    image : (H, W, 3) float32 sRGB, the refocused photo.
    all_in_focus : the image the blur was rendered from (DeblurNet's output, the
        original a Lens Blur file stores, or the input when deblurring was skipped or
        unavailable).
    disparity, coc_px : (H, W) float32 maps used.
    focus_disparity, strength : the focal plane and K (px) used.
    focus_distance_m : the focal plane's distance on metric depth (m), else None.
    deblurred : whether an all-in-focus image was used (see ``all_in_focus_source``).
    all_in_focus_source : ``"DeblurNet"`` (the deblurrer), ``"stored original"`` (Lens
        Blur), or ``""`` when none was used.
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
    all_in_focus_source: str = ""
    focus_distance_m: float | None = None


def output_info(info: ImageInfo | None, cfg: RefocusConfig) -> ImageInfo | None:
    """The metadata to write with a result rendered with ``cfg``: with ``f_number``,
    EXIF FNumber (and XMP's copy) becomes the simulated one and UserComment keeps the original."""
    if info is None or cfg.f_number is None:
        return info
    from dataclasses import replace

    from refocus.camera.exif import exif_with_f_number, xmp_with_f_number

    # A full-frame equivalent is not the lens's own f-number: FNumber keeps the taken one.
    xmp = info.xmp if cfg.full_frame else xmp_with_f_number(info.xmp, cfg.f_number)
    return replace(info, exif=exif_with_f_number(info.exif, cfg.f_number, full_frame=cfg.full_frame), xmp=xmp)


# -- the pipeline ------------------------------------------------------------------


@dataclass
class Refocuser:
    """depth -> blur estimate -> (deblurrer where it helps) -> renderer -> keep-sharp.

    Build one with other components to swap a stage, e.g.
    ``Refocuser(deblurrer=my_net)``; see the module docstring for each call.
    """

    depth: Callable = stages.load_disparity
    blur_estimate: Callable = _input_blur_map
    deblurrer: Callable = field(default_factory=DeblurNetDeblurrer)
    renderer: Any = field(default_factory=LayeredRenderer)
    keep_sharp: Callable | None = keep_sharp_input
    own_lens: Callable | None = stages.load_own_lens

    # -- before any work ---------------------------------------------------------
    def check(self, cfg: RefocusConfig) -> None:
        """Ask each component that can (``check(cfg)``) whether it will be able to run:
        missing weights are one line now, not after minutes of depth work."""
        for part in (self.depth, self.blur_estimate, self.deblurrer, self.renderer, self.keep_sharp):
            if cfg.deblur == "never" and part is self.deblurrer:
                continue
            check = getattr(part, "check", None)
            if callable(check):
                check(cfg)

    # -- the focus-independent work ---------------------------------------------
    def prepare(
        self, image, cfg: RefocusConfig | None = None, work_pixels: int | None = None, focus_points: tuple = (), **fields
    ) -> PreparedPhoto:
        """Load a photo and its depth, and estimate its blur (no deblurring yet).

        ``image`` is a path (str or pathlib) or an image array (H x W x 3 float sRGB in
        [0, 1]; uint8/uint16, grey H x W and RGBA are converted); ``cfg`` a
        :class:`RefocusConfig`, a dict of its fields or None (the defaults), ``fields``
        settings over it (``depth_path=...``: :func:`merged_config`). With ``work_pixels``, a photo
        larger than that is prepared on a working copy of that size (its
        :attr:`~PreparedPhoto.scale` < 1; focus points and strengths stay in the
        photo's own pixels). ``cfg.focus_xy`` and any other ``focus_points`` (x, y)
        the caller will use (a focus pull's ends) are checked against the photo first.
        """
        from refocus.depth.focus import check_point_inside, warn_if_fractions

        cfg = merged_config(cfg, fields)
        rgb, info, path = stages.load_photo(image, cfg)
        for x, y in (*focus_points, *([cfg.focus_xy] if cfg.focus_xy is not None else [])):
            check_point_inside(x, y, rgb.shape[1], rgb.shape[0])  # before minutes of depth work
            warn_if_fractions(x, y, rgb.shape[1], rgb.shape[0])
        if cfg.own_lens and not stages.states_a_lens(path):
            from refocus.pipeline.photo import NO_STATED_LENS

            raise RefocusError(NO_STATED_LENS)  # before minutes of depth work
        notes: list[str] = []
        scale = 1.0
        h, w = rgb.shape[:2]
        if work_pixels is not None and h * w > work_pixels:
            s = float(np.sqrt(work_pixels / (h * w)))
            nh, nw = max(1, int(h * s)), max(1, int(w * s))
            rgb = _resize(rgb, (nh, nw)).astype(np.float32)
            scale = nw / w
            notes.append(f"working copy {nw}x{nh} of the {w}x{h} photo; export renders the full size")
        loaded = self.depth(rgb, path, cfg, notes)
        disp, source, metric = checked_depth(loaded, rgb.shape[:2])
        own_blur_px = getattr(loaded, "own_blur_px", None)
        own = self.own_lens(path, (h, w), source, notes) if self.own_lens is not None else None
        # A Lens Blur file's stored original is its all-in-focus image whatever depth is
        # used; its lens (GFocus) is stated in its own GDepth map's terms, so it is only
        # used with that map (own_lens above).
        original = own.original if own is not None else (
            stages.load_stored_original(path, (h, w), notes) if self.own_lens is not None else None)
        if own is not None:
            from refocus.render import coc_map

            # The file says how the photo was blurred: that is its blur map, exactly.
            input_blur_px = np.abs(coc_map(disp, own.focus_disparity, own.strength_px * scale)).astype(np.float32)
        elif own_blur_px is not None:
            # A depth read from the blur implies the blur along it: one lens, in focus at
            # the nearest (sharpest) disparity. An independent edge-based estimate
            # disagreed with it (5.5 px where this depth put the largest blur, on an
            # exif-corpus photo), and renders then switched between re-blurring and
            # keeping the input in blotches.
            input_blur_px = (own_blur_px * (1.0 - disp)).astype(np.float32)
        else:
            input_blur_px = checked_blur(self.blur_estimate(rgb, disp), rgb.shape[:2])
        photo = PreparedPhoto(
            image=rgb, disparity=disp, input_blur_px=input_blur_px, info=info, depth_source=source,
            notes=notes, metric_range=metric, scale=scale, refocuser=self, source_shape=(h, w), own_lens=own,
        )
        if own is not None:
            notes.append(f"Lens Blur photo: its own lens has K {own.strength_px:.1f} px (full size) and its focal plane at "
                         f"disparity {own.focus_disparity:.3f}, where it stays unless a focus is given; --strength auto "
                         "(UI: the photo's own lens) keeps that lens")
        if original is not None:
            # A real all-in-focus photo beats any deblurring.
            photo.all_in_focus = original if scale == 1.0 else _resize(original, rgb.shape[:2])
            photo.all_in_focus_source = STORED_ORIGINAL
            # Said as what it is for: at its own focus and lens the photo itself is rendered
            # (the note "rendering from the original" then stood beside "deblurring skipped").
            notes.append("Lens Blur photo: it stores its original, which renders start from wherever they ask for less "
                         "blur than the photo has (no deblurring needed)")
        return photo

    # -- the one decision: deblur, then render -------------------------------------
    def needs_deblur(self, photo: PreparedPhoto, coc_px: np.ndarray) -> bool:
        """Whether an all-in-focus image can improve a render with this CoC.

        It cannot when the new blur is at least the input's everywhere: the input
        then only needs the extra blur, and where the new blur is tiny the input is
        already sharp and is kept. Where the input's blur is unknown (NaN: too few
        readable edges at that depth) and the new focus wants it sharp, the
        deblurrer is asked to measure it: a subject blurred beyond the edge
        readings' reach has no readable edges, and skipping it left the subject a
        refocus was meant to sharpen as blurred as it came (hci-antinous, refocus
        far -> near). A renderer that cannot add blur to a blurred input
        (``adds_blur`` False) always needs it.
        """
        if not getattr(self.renderer, "adds_blur", True):
            return True
        b = photo.input_blur_px
        new_blur_px = np.abs(coc_px)
        with np.errstate(invalid="ignore"):
            need = (b > SHARP_INPUT_PX) & (new_blur_px + 0.5 < b)
            need |= np.isnan(b) & (new_blur_px < SHARPEN_FROM_PX)
        return bool(need.mean() > DEBLUR_MIN_SHARE)

    def ensure_all_in_focus(self, photo: PreparedPhoto, mode: str = "auto", device: str = "cpu") -> bool:
        """Run the deblurrer once per photo (cached on it). Returns whether an
        all-in-focus image exists.

        With ``mode="auto"`` an unavailable deblurrer is a note, not an error (for a
        renderer that needs the all-in-focus image, ``auto`` is ``always``); with
        ``"always"`` it is an error; ``"never"`` does nothing.
        """
        if photo.all_in_focus is not None:
            return True
        if mode == "never" or photo.deblur_note:
            return False
        if not getattr(self.renderer, "adds_blur", True):
            mode = "always"
        try:
            out = self.deblurrer(photo.image, device)
        except RefocusError as exc:
            if mode == "always":
                raise
            photo.deblur_note = str(exc)
            photo.notes.append(f"{exc}; rendering from the input photo, with only the blur it lacks")
            return False
        aif, defocus = checked_deblurred(out, photo.image.shape)
        photo.all_in_focus = aif
        photo._aif_linear = None
        if defocus is not None and photo.depth_source != DEFOCUS_ESTIMATE_SOURCE:
            from refocus.pipeline.sharpness import pool_blur_by_disparity

            # DeblurNet's map reads blur in flat, textureless regions (3-4 px where
            # the true CoC is ~0.2): pooled per disparity over textured pixels, and
            # never above the edge-based estimate where that has one.
            photo.input_blur_px = pool_blur_by_disparity(
                np.abs(np.asarray(defocus, dtype=np.float32)), photo.disparity, photo.image, prior_px=photo.input_blur_px
            )
        return True

    def use_all_in_focus(self, photo: PreparedPhoto, cfg: RefocusConfig, coc_maps: list[np.ndarray], run: bool = True) -> bool:
        """Whether renders with these CoC maps use the deblurrer's output.
        ``cfg.deblur`` "never": no; "always": yes (running it when ``run``); "auto":
        when :meth:`needs_deblur` says it can help any of them. With ``run=False``
        (the UI's re-renders) only an output computed before is used."""
        if cfg.deblur == "never":
            return False
        need = cfg.deblur == "always" or any(self.needs_deblur(photo, c) for c in coc_maps)
        if not need:
            if cfg.deblur == "auto" and run:
                note = ("the photo is at most as blurred as asked everywhere: rendered from the photo itself, not its stored "
                        "original" if photo.all_in_focus_source == STORED_ORIGINAL else
                        "the input is already at most as blurred as asked everywhere: deblurring skipped")
                if note not in photo.notes:
                    photo.notes.append(note)
            return False
        if not run:
            return photo.all_in_focus is not None
        return self.ensure_all_in_focus(photo, cfg.deblur, cfg.device)

    # -- rendering ----------------------------------------------------------------
    def render(
        self,
        photo: PreparedPhoto,
        cfg: RefocusConfig | None = None,
        focus_disparity: float | None = None,
        strength: float | None = None,
        use_all_in_focus: bool | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Render the photo with a new focus.

        Parameters
        ----------
        cfg : the settings (aperture, quality, keep_sharp_px...): a :class:`RefocusConfig`,
            a dict of its fields, or None (the defaults).
        focus_disparity, strength : override the ones derived from ``cfg``: the focal
            plane in normalised disparity (0 farthest, 1 nearest) and K in px of the
            prepared photo (a working copy's, not the original's, when ``photo.scale`` < 1).
        use_all_in_focus : render from the deblurrer's output (default: when it exists).

        Returns
        -------
        image : (H, W, 3) float32 sRGB in [0, 1]
        coc_px : (H, W) float32, the signed CoC asked for (px).
        """
        cfg = RefocusConfig.coerce(cfg)
        fd = photo.focus_disparity(cfg) if focus_disparity is None else focus_disparity
        k = photo.strength(cfg, fd) if strength is None else strength
        coc = photo.coc(cfg, fd, k)  # checks both (refocus.render.coc_map)
        fd, k = float(fd), float(k)
        if use_all_in_focus is None:
            use_all_in_focus = photo.all_in_focus is not None
        if not getattr(self.renderer, "linear_light", True):
            # A renderer of sRGB images that cannot add blur (BokehNet) gets the
            # all-in-focus image and the whole CoC, and no keep-sharp blend.
            base = photo.all_in_focus if use_all_in_focus and photo.all_in_focus is not None else photo.image
            out = np.clip(checked_render(self.renderer(base, coc, cfg), base.shape), 0, 1)
            return self._grain(out, coc, photo, cfg, fd, k), coc
        if use_all_in_focus and photo.aif_linear is not None:
            base, coc_eff = self._sharpened_base(photo, coc)
        else:
            base, coc_eff = photo.linear, residual_coc(coc, photo.input_blur_px)
        out_lin = checked_render(self.renderer(base, coc_eff, cfg), base.shape)
        if self.keep_sharp is not None:
            out_lin = self.keep_sharp(out_lin, photo.linear, coc, photo.input_blur_px, cfg.keep_sharp_px)
        from refocus.render.threads import shared_threads

        threads = getattr(self.renderer, "threads", None) or shared_threads()
        out = linear_to_srgb(out_lin, run_ranges=threads.run_ranges)
        return self._grain(out, coc_eff, photo, cfg, fd, k), coc

    @staticmethod
    def _grain(out: np.ndarray, blur_px: np.ndarray, photo: PreparedPhoto, cfg: RefocusConfig, fd: float, k: float) -> np.ndarray:
        """With ``cfg.grain``, the photo's noise added back where the render blurred it
        by ``blur_px`` (what the renderer was given: where the input was already
        blurred, only the blur added to it averaged its noise)."""
        if not cfg.grain:
            return out
        from refocus.render.grain import add_grain, grain_seed

        return add_grain(out, blur_px, photo.noise, grain_seed(fd, k))

    def _sharpened_base(self, photo: PreparedPhoto, coc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The image to render from and the CoC to render with, when an all-in-focus
        image exists: that image with the full CoC where the new focus needs
        sharpening (the input blur exceeds the new |CoC| by more than
        :data:`SHARPEN_FROM_PX`), elsewhere the input with only the blur it lacks,
        blended over one pixel of needed sharpening."""
        if not getattr(self.renderer, "adds_blur", True):
            return photo.aif_linear, coc
        b = np.asarray(photo.input_blur_px, dtype=np.float32)
        # Unknown input blur: the network's output is used, as before any estimate.
        need = np.where(np.isfinite(b), b - np.abs(coc), np.inf)
        w = np.clip(need - SHARPEN_FROM_PX, 0.0, 1.0).astype(np.float32)
        if float(w.min()) >= 1.0:
            return photo.aif_linear, coc
        coc_in = residual_coc(coc, b)
        base = photo.linear + w[..., None] * (photo.aif_linear - photo.linear)
        return base.astype(np.float32), (coc_in + w * (coc - coc_in)).astype(np.float32)

    def render_focus(
        self,
        photo: PreparedPhoto,
        cfg: RefocusConfig | None = None,
        focus_disparity: float | None = None,
        strength: float | None = None,
        run: bool = True,
    ) -> Rendered:
        """The whole sequence for one setting: focal plane and K from ``cfg`` (or as
        given, as in :meth:`render`), the CoC, the deblur decision (running the
        deblurrer when ``run``), the render. Returns a :class:`Rendered` (``.image``
        float32 sRGB H x W x 3, ``.coc_px``, ``.focus_disparity``, ``.strength``,
        ``.deblurred``)."""
        cfg = RefocusConfig.coerce(cfg)
        fd = photo.focus_disparity(cfg) if focus_disparity is None else focus_disparity
        k = photo.strength(cfg, fd) if strength is None else strength
        coc = photo.coc(cfg, fd, k)  # checks both (refocus.render.coc_map)
        fd, k = float(fd), float(k)
        deblurred = self.use_all_in_focus(photo, cfg, [coc], run=run)
        img, coc = self.render(photo, cfg, fd, k, use_all_in_focus=deblurred)
        return Rendered(img, coc, fd, k, deblurred)

    # -- one photo, one setting ------------------------------------------------------
    def refocus(self, image, cfg: RefocusConfig | None = None, **fields) -> RefocusResult:
        """Refocus a photo (a path or an H x W x 3 array) with ``cfg`` and any settings
        ``fields`` over it (:func:`merged_config`): check the components, prepare,
        deblur where it helps, render."""
        cfg = merged_config(cfg, fields)
        self.check(cfg)
        t: dict[str, float] = {}
        t0 = time.perf_counter()
        photo = self.prepare(image, cfg)
        t["load_and_depth"] = time.perf_counter() - t0
        fd = photo.focus_disparity(cfg)
        k = photo.strength(cfg, fd)
        coc = photo.coc(cfg, fd, k)
        t0 = time.perf_counter()
        deblurred = self.use_all_in_focus(photo, cfg, [coc])
        t["deblur"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        out, coc = self.render(photo, cfg, fd, k, use_all_in_focus=deblurred)
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
            notes=photo.notes + photo.focus_notes(cfg, fd),
            timings_s=t,
            all_in_focus_source="" if not deblurred else (photo.all_in_focus_source or "DeblurNet"),
            focus_distance_m=photo.distance_m(fd),
        )


def default_refocuser() -> Refocuser:
    """The physical engine with the default components (they hold no state, so a
    new one costs nothing)."""
    return Refocuser()


class Reported:
    """A pipeline component that says when it starts (for a progress bar);
    everything else (attributes such as ``adds_blur``, ``check``) is the component's."""

    def __init__(self, part, say):
        self._part, self._say = part, say

    def __call__(self, *args, **kwargs):
        self._say()
        return self._part(*args, **kwargs)

    def __getattr__(self, name):
        part = self.__dict__.get("_part")
        if part is None or name.startswith("__"):
            raise AttributeError(name)
        return getattr(part, name)


def reporting(pipeline: Refocuser, progress, prefix: str = "") -> Refocuser:
    """``pipeline`` with its stages reporting to ``progress(fraction, prefix + text)``:
    the same pipeline and decisions, only announced; DeblurNet also reports each
    window. One rule for the CLI's progress bar and the UI's."""
    from dataclasses import replace

    say = lambda f, text: (lambda: progress(f, text))  # noqa: E731
    deblurrer = pipeline.deblurrer
    if type(deblurrer) is DeblurNetDeblurrer:
        deblurrer = DeblurNetDeblurrer(
            progress=lambda done, total: progress(0.15 + 0.7 * done / max(total, 1), f"{prefix}deblurring (DeblurNet), window {done} of {total}"))
    return replace(
        pipeline,
        depth=Reported(pipeline.depth, say(0.1, f"{prefix}depth")),
        # Fractions from a 12 MP HEIC on 2 cores: DeblurNet ~85 % of the whole.
        deblurrer=Reported(deblurrer, say(0.15, f"{prefix}deblurring (DeblurNet)")),
        renderer=Reported(pipeline.renderer, say(0.85, f"{prefix}rendering the new focus")),
    )
