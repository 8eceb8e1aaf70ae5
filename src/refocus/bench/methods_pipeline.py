"""The whole pipeline as the ``pipeline`` method of ``refocus bench quality``.

Imported (and so registered) by :func:`refocus.bench.methods.load_plugins`.
"""

from __future__ import annotations

import numpy as np

from refocus.bench.methods import Case, MethodUnavailable, register


def _pipeline(case: Case) -> np.ndarray:
    """Refocus ``case.input`` with the case's disparity: blur estimate, DeblurNet where
    it helps (when installed), layered renderer, keep-sharp rule."""
    from refocus.pipeline.config import RefocusConfig
    from refocus.pipeline.photo import PreparedPhoto
    from refocus.pipeline.refocuser import Refocuser

    if case.disparity is None or case.strength is None or case.focus_disparity is None:
        raise MethodUnavailable("the pipeline needs disparity, strength and focus (no-depth track not supported yet)")
    d = np.asarray(case.disparity, dtype=np.float32)
    lo, hi = float(d.min()), float(d.max())
    span = max(hi - lo, 1e-12)
    dn = (d - lo) / span
    pipeline = Refocuser()
    photo = PreparedPhoto(image=case.input, disparity=dn, input_blur_px=pipeline.blur_estimate(case.input, dn), refocuser=pipeline)
    cfg = RefocusConfig(highlight_gain=0.0, aperture=case.aperture) if case.aperture is not None else RefocusConfig(highlight_gain=0.0)
    fd, k = (case.focus_disparity - lo) / span, case.strength * span
    return pipeline.render_focus(photo, cfg, fd, k).image


register("refocus", "pipeline", _pipeline, needs_disparity=True, description="depth -> DeblurNet (where it helps) -> layered renderer, keep-sharp rule")


def _pipeline_own_blur(case: Case) -> np.ndarray:
    """The no-depth track: the pipeline given the photo alone, as offline without a depth
    network. Its depth and its lens come from the photo's own blur
    (:func:`refocus.pipeline.stages.load_disparity_from_blur`): disparity falls as the blur
    grows behind the sharpest (nearest) surface, and K is the blur between the sharpest
    and the most blurred surface (the lens the photo was taken with, at the same
    aperture, as the cases keep R); the focus is the case's click
    (``meta["focus_xy"]``). A photo in focus everywhere is refused, as by the command."""
    from refocus.errors import RefocusError
    from refocus.pipeline import stages
    from refocus.pipeline.config import RefocusConfig
    from refocus.pipeline.refocuser import Refocuser

    if case.disparity is not None or "focus_xy" not in case.meta:
        raise MethodUnavailable("runs on the no-depth track (a focus point, no depth)")
    pipeline = Refocuser(depth=stages.load_disparity_from_blur, own_lens=None)
    cfg = RefocusConfig(highlight_gain=0.0, focus_xy=tuple(case.meta["focus_xy"]),
                        **({"aperture": case.aperture} if case.aperture is not None else {}))
    try:
        photo = pipeline.prepare(case.input, cfg)
    except RefocusError as exc:
        raise MethodUnavailable(str(exc).split(";")[0]) from None
    # Depth read from the blur implies the blur along it, own_blur_px * (1 - d)
    # (Refocuser.prepare): its largest value is the photo's lens, K.
    k = float(np.max(photo.input_blur_px))
    return pipeline.render_focus(photo, cfg, strength=k).image


register("refocus", "pipeline-own-blur", _pipeline_own_blur,
         description="no depth given: depth and K from the photo's own blur, focus at a click (the offline fallback)")
