"""The whole pipeline with the generative engine: refocus's depth and focus selection,
Genfocus's DeblurNet (optionally fed refocus's DeblurNet as its pre-deblur input), then
Genfocus's BokehNet on the signed CoC map."""

from __future__ import annotations

import time

from refocus.pipeline.config import RefocusConfig
from refocus.pipeline.genfocus.engine import GenfocusOptions, get_engine


def tasks_for(deblur: bool, options: GenfocusOptions) -> list[str]:
    """The LoRAs a run needs (checked before any work)."""
    return (["deblur-pre" if options.pre_deblur else "deblur"] if deblur else []) + ["bokeh"]


def generative_all_in_focus(engine, image, device: str = "cpu", progress=None):
    """Genfocus DeblurNet on ``image``; with the pre-deblur variant, refocus's DeblurNet first."""
    pre = None
    if engine.options.pre_deblur:
        from refocus.pipeline.core import run_deblur

        pre = run_deblur(image, device=device)[0]
    return engine.deblur(image, pre_deblurred=pre, progress=progress)


def refocus_generative(image, cfg: RefocusConfig, options: GenfocusOptions | None = None, progress=None):
    """Like :func:`refocus.pipeline.refocus`, with Genfocus's networks for both stages.

    ``cfg.deblur == "never"`` gives BokehNet the photo itself as its all-in-focus input.
    The aperture, quality and highlight settings have no counterpart in BokehNet and
    are not used.
    """
    from refocus.pipeline.core import RefocusResult, output_info, prepare

    options = options or GenfocusOptions()
    engine = get_engine(options)
    deblur = cfg.deblur != "never"
    # The weights (a download of tens of GB, or a one-line refusal) before the depth work.
    engine.check_weights(tasks_for(deblur, options))
    t = {}
    t0 = time.perf_counter()
    photo = prepare(image, cfg)
    t["load_and_depth"] = time.perf_counter() - t0
    fd = photo.focus_disparity(cfg)
    k = photo.strength(cfg, fd)
    coc = photo.coc(cfg, fd, k)
    t0 = time.perf_counter()
    aif = generative_all_in_focus(engine, photo.image, cfg.device, progress) if deblur else photo.image
    t["deblur"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = engine.bokeh(aif, coc, progress=progress)
    t["render"] = time.perf_counter() - t0
    return RefocusResult(
        image=out, all_in_focus=aif, disparity=photo.disparity, coc_px=coc, input_blur_px=photo.input_blur_px,
        focus_disparity=fd, strength=k, deblurred=deblur, info=output_info(photo.info, cfg), config=cfg,
        depth_source=photo.depth_source, notes=photo.notes, timings_s=t,
    )
