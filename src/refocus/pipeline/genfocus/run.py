"""The whole pipeline with the generative engine: refocus's depth and focus selection,
Genfocus's DeblurNet (optionally fed refocus's DeblurNet as its pre-deblur input), then
Genfocus's BokehNet on the signed CoC map."""

from __future__ import annotations

from refocus.pipeline.config import RefocusConfig
from refocus.pipeline.genfocus.engine import GenfocusOptions, get_engine


def tasks_for(deblur: bool, options: GenfocusOptions) -> list[str]:
    """The LoRAs a run needs (checked before any work)."""
    return (["deblur-pre" if options.pre_deblur else "deblur"] if deblur else []) + ["bokeh"]


def generative_all_in_focus(engine, image, device: str = "cpu", progress=None):
    """Genfocus DeblurNet on ``image``; with the pre-deblur variant, refocus's DeblurNet first."""
    pre = None
    if engine.options.pre_deblur:
        from refocus.pipeline.stages import run_deblur

        pre = run_deblur(image, device=device)[0]
    return engine.deblur(image, pre_deblurred=pre, progress=progress)


class GenfocusDeblurrer:
    """Genfocus's DeblurNet as the :class:`~refocus.pipeline.refocuser.Refocuser`'s
    deblurrer (no defocus map)."""

    def __init__(self, engine, progress=None):
        self.engine, self.progress = engine, progress

    def check(self, cfg: RefocusConfig) -> None:
        self.engine.check_weights(tasks_for(True, self.engine.options)[:1])

    def __call__(self, image, device: str = "cpu"):
        return generative_all_in_focus(self.engine, image, device, self.progress), None


class GenfocusRenderer:
    """Genfocus's BokehNet as the renderer: sRGB in and out, always from an
    all-in-focus image (it was trained on such inputs; it cannot add only the blur
    an input lacks). The aperture, quality and highlight settings have no
    counterpart in BokehNet and are not used."""

    linear_light = False
    adds_blur = False

    def __init__(self, engine, progress=None):
        self.engine, self.progress = engine, progress

    def check(self, cfg: RefocusConfig) -> None:
        self.engine.check_weights(["bokeh"])

    def __call__(self, image, coc_px, cfg: RefocusConfig):
        return self.engine.bokeh(image, coc_px, progress=self.progress)


def genfocus_refocuser(options: GenfocusOptions | None = None, progress=None):
    """The generative engine: a :class:`~refocus.pipeline.refocuser.Refocuser` with
    refocus's depth and focus selection and Genfocus's DeblurNet and BokehNet.
    ``cfg.deblur == "never"`` gives BokehNet the photo itself as its all-in-focus input."""
    from refocus.pipeline.refocuser import Refocuser

    engine = get_engine(options or GenfocusOptions())
    return Refocuser(deblurrer=GenfocusDeblurrer(engine, progress), renderer=GenfocusRenderer(engine, progress), keep_sharp=None)


def refocus_generative(image, cfg: RefocusConfig, options: GenfocusOptions | None = None, progress=None):
    """Like :func:`refocus.pipeline.refocus`, with Genfocus's networks for both stages
    (:func:`genfocus_refocuser`)."""
    return genfocus_refocuser(options, progress).refocus(image, cfg)
