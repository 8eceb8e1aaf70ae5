"""Registry of methods evaluated by ``refocus bench quality``, and the baselines.

A method is a function ``fn(case) -> image`` taking a :class:`Case` and returning an
sRGB float32 H x W x 3 image in [0, 1] of the same size as ``case.input``. Register
one per task::

    from refocus.bench.methods import register, MethodUnavailable

    def my_deblur(case):
        weights = find_my_weights()
        if weights is None:
            raise MethodUnavailable("DeblurNet weights not found (set REFOCUS_DEBLUR_WEIGHTS)")
        return run(case.input)

    register("deblur", "deblurnet", my_deblur, needs_disparity=False)

Tasks (all images sRGB; disparity px per view step on light fields, larger = nearer;
``coc_px = strength * (disparity - focus)``):

``bokeh``
    ``input`` is all-in-focus; render ``target``, the photo focused at
    ``case.focus_disparity`` with ``case.strength`` (px per unit disparity).
``deblur``
    ``input`` is a defocused photo (focused at ``case.input_focus_disparity`` when
    known); recover the all-in-focus ``target``.
``refocus``
    ``input`` is a photo focused at ``case.input_focus_disparity``; produce the photo
    focused at ``case.focus_disparity``. ``case.disparity`` is None on the no-depth
    track.

A method that cannot run (missing weights, optional package, no disparity in the
case) raises :class:`MethodUnavailable`; the benchmark skips it with the message as
a note in the report. Methods registered with ``needs_disparity=True`` are skipped
automatically on cases without disparity.

The other stages' methods live in this package (``methods_deblur``,
``methods_pipeline``, ``methods_genfocus``: the benchmark sits above the stages it
measures) and are registered by :func:`load_plugins`, which imports each by name, so
that importing this module stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from refocus.errors import RefocusError

TASKS = ("bokeh", "deblur", "refocus")

class MethodUnavailable(Exception):
    """Raised by a method that cannot run here (the reason becomes a report note)."""


@dataclass
class Case:
    """One benchmark case: an input, its ground truth and what a method may use.

    Attributes
    ----------
    task, dataset, name:
        Identify the case (``name`` is unique within task and dataset).
    input, target:
        sRGB float32 H x W x 3 in [0, 1].
    disparity:
        H x W float32 (larger = nearer) in the units of ``strength``, or None.
    strength:
        K, CoC radius per unit of disparity, px (the aperture radius R in view steps
        on light fields). None when unknown.
    focus_disparity:
        Focal plane of the target (bokeh, refocus), disparity units; None otherwise.
    input_focus_disparity:
        Focal plane of the input (deblur, refocus) when known.
    crop_px:
        Border excluded from the metrics, px.
    aperture:
        The aperture of the target's lens (:class:`refocus.aperture.ApertureConfig`),
        None for a disc.
    meta:
        Free-form details written to the JSON report (R, percentile names...).
    """

    task: str
    dataset: str
    name: str
    input: np.ndarray
    target: np.ndarray
    disparity: np.ndarray | None = None
    strength: float | None = None
    focus_disparity: float | None = None
    input_focus_disparity: float | None = None
    crop_px: int = 0
    aperture: object | None = None
    meta: dict = field(default_factory=dict)

    def coc_px(self, focus: float | None = None) -> np.ndarray:
        """Signed CoC radius map ``strength * (disparity - focus)``, px (default: the target focus)."""
        if self.disparity is None or self.strength is None:
            raise MethodUnavailable("needs disparity and strength")
        f = self.focus_disparity if focus is None else focus
        if f is None:
            raise MethodUnavailable("case has no focus disparity")
        from refocus.render import coc_map  # the one CoC formula

        return coc_map(self.disparity, f, self.strength)


@dataclass(frozen=True)
class Method:
    """A registered method."""

    task: str
    name: str
    fn: Callable[[Case], np.ndarray]
    needs_disparity: bool = False
    description: str = ""
    opt_in: bool = False


_REGISTRY: dict[str, dict[str, Method]] = {t: {} for t in TASKS}
_plugins_loaded = False


def register(
    task: str,
    name: str,
    fn: Callable[[Case], np.ndarray],
    *,
    needs_disparity: bool = False,
    description: str = "",
    replace: bool = True,
    opt_in: bool = False,
) -> None:
    """Add (or replace) a method for ``task`` under ``name``.

    Parameters
    ----------
    task:
        ``"bokeh"``, ``"deblur"`` or ``"refocus"``.
    name:
        Short name used in reports and ``--methods`` (no commas).
    fn:
        ``fn(case) -> sRGB H x W x 3 image``; raise :class:`MethodUnavailable` to skip.
    needs_disparity:
        Skip automatically on cases without disparity.
    description:
        One line shown in the report.
    replace:
        When False, registering an existing name is an error.
    opt_in:
        Run only when named in ``--methods`` (a method that downloads tens of GB or
        needs a large GPU must not start because a user ran the default benchmark).
    """
    if task not in _REGISTRY:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    if not name or "," in name:
        raise ValueError(f"invalid method name {name!r}")
    if not replace and name in _REGISTRY[task]:
        raise ValueError(f"method {name!r} already registered for {task}")
    _REGISTRY[task][name] = Method(task, name, fn, needs_disparity, description, opt_in)


def load_plugins() -> list[str]:
    """Register the other stages' methods (once); returns notes on those that failed.

    The modules are named here, one import each, rather than found by string: a
    renamed or missing module is then an import error a test sees, not a method that
    silently disappears from the report. They are imported inside the function
    because each imports this module (for :class:`Case` and :func:`register`).
    """
    global _plugins_loaded
    notes: list[str] = []
    if _plugins_loaded:
        return notes
    _plugins_loaded = True
    for name, load in (("deblur", _load_deblur), ("pipeline", _load_pipeline), ("genfocus", _load_genfocus)):
        try:
            load()
        except Exception as exc:  # a broken stage must not stop the benchmark
            notes.append(f"{name} methods: import failed ({exc.__class__.__name__}: {exc})")
    return notes


def _load_deblur() -> None:
    from refocus.bench import methods_deblur  # noqa: F401  (registers on import)


def _load_pipeline() -> None:
    from refocus.bench import methods_pipeline  # noqa: F401  (registers on import)


def _load_genfocus() -> None:
    # Opt-in methods (registered with opt_in=True); importing needs neither diffusers nor a GPU.
    from refocus.bench import methods_genfocus  # noqa: F401  (registers on import)


def methods_for(task: str, names: list[str] | None = None) -> list[Method]:
    """Registered methods of ``task`` in registration order (opt-in ones only when
    named), optionally only ``names``."""
    if task not in _REGISTRY:
        raise RefocusError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    reg = _REGISTRY[task]
    if names is None:
        return [m for m in reg.values() if not m.opt_in]
    return [reg[n] for n in names if n in reg]


def all_method_names() -> set[str]:
    """Names registered for any task."""
    return {n for reg in _REGISTRY.values() for n in reg}


# ---------------------------------------------------------------------------
# Baselines
# ---------------------------------------------------------------------------


def gaussian_blur_by_coc(image_linear: np.ndarray, coc_px: np.ndarray, sigma_step: float = 0.25) -> np.ndarray:
    """Naive defocus: per-pixel Gaussian blur of sigma ``|coc_px| / 2``, no occlusion handling.

    The image is blurred with a stack of Gaussians at sigmas quantised to multiples
    of ``sigma_step`` px; each pixel takes the linear interpolation between the two
    levels around its own sigma. It gathers from neighbours whatever their depth, so
    in-focus edges bleed into blurred backgrounds and vice versa (the classic
    artefact the layered renderer avoids).

    Parameters
    ----------
    image_linear:
        H x W x 3 float32, linear light.
    coc_px:
        H x W signed CoC radius, px (only the magnitude is used).
    sigma_step:
        Spacing of the Gaussian stack, px.

    Returns
    -------
    H x W x 3 float32, linear light.
    """
    from scipy.ndimage import gaussian_filter

    sigma = np.abs(np.asarray(coc_px, dtype=np.float32)) / 2.0
    top = float(sigma.max())
    if top < 1e-3:
        return np.asarray(image_linear, dtype=np.float32).copy()
    n = int(np.ceil(top / sigma_step)) + 1
    pos = sigma / sigma_step
    lo = np.clip(np.floor(pos).astype(np.int64), 0, n - 1)
    frac = (pos - lo)[..., None].astype(np.float32)
    out = np.zeros_like(image_linear, dtype=np.float32)
    for level in range(n + 1):
        s = level * sigma_step
        cur = image_linear if s == 0 else gaussian_filter(image_linear, sigma=(s, s, 0), mode="nearest")
        # Level l carries weight (1 - frac) where lo == l and frac where lo == l - 1.
        w = np.where(lo == level, 1 - frac[..., 0], 0) + (np.where(lo == level - 1, frac[..., 0], 0) if level else 0)
        out += w[..., None].astype(np.float32) * cur
    return out.astype(np.float32)


def _input_unchanged(case: Case) -> np.ndarray:
    return case.input


def _gaussian_coc(case: Case) -> np.ndarray:
    from refocus.io.color import linear_to_srgb, srgb_to_linear

    out = gaussian_blur_by_coc(srgb_to_linear(case.input), case.coc_px())
    return np.clip(linear_to_srgb(out), 0.0, 1.0).astype(np.float32)


def _renderer(quality: str, highlight_gain: float = 0.0) -> Callable[[Case], np.ndarray]:
    def fn(case: Case) -> np.ndarray:
        from refocus.io.color import linear_to_srgb, srgb_to_linear
        from refocus.render import RenderConfig, render_linear

        from refocus.aperture import ApertureConfig

        cfg = RenderConfig(highlight_gain=highlight_gain, quality=quality, aperture=case.aperture or ApertureConfig())
        out = render_linear(srgb_to_linear(case.input), case.coc_px(), cfg)
        return np.clip(linear_to_srgb(out), 0.0, 1.0).astype(np.float32)

    return fn


def _register_baselines() -> None:
    for task in TASKS:
        register(task, "input", _input_unchanged, description="input unchanged (lower bound)")
    register(
        "bokeh",
        "gaussian-coc",
        _gaussian_coc,
        needs_disparity=True,
        description="per-pixel Gaussian blur, sigma = |CoC|/2, linear light, no occlusion handling",
    )
    register(
        "bokeh",
        "ours",
        _renderer("balanced"),
        needs_disparity=True,
        description="layered renderer, render_linear(quality='balanced', highlight_gain=0)",
    )
    # What a user gets by default: the clipped-highlight boost on. The light fields have
    # no light beyond clipping (the boost can only cost there); the synthetic scenes'
    # point lights are far brighter than 1, as real lights are.
    from refocus.render import RenderConfig

    default_gain = RenderConfig().highlight_gain
    register(
        "bokeh",
        "ours-default",
        _renderer("balanced", default_gain),
        needs_disparity=True,
        description=f"layered renderer with the highlight boost on, as shipped (render_linear(quality='balanced'), highlight_gain {default_gain:g})",
    )
    register(
        "bokeh",
        "ours-high",
        _renderer("high"),
        needs_disparity=True,
        description="layered renderer, render_linear(quality='high', highlight_gain=0)",
    )
    # Refocus with known depth, without recovering the all-in-focus image first: the
    # input is blurred again by the new CoC R*(d - s2). It cannot sharpen what the
    # input blurred, so it is the naive reference of the issue (32.34 / 0.204).
    register(
        "refocus",
        "naive",
        _gaussian_coc,
        needs_disparity=True,
        description="blur the input by the new CoC |R(d - s2)| (gaussian-coc, no deblurring)",
    )
    register(
        "refocus",
        "ours-no-deblur",
        _renderer("balanced"),
        needs_disparity=True,
        description="layered renderer on the (defocused) input with the new CoC, no deblurring",
    )


_register_baselines()
