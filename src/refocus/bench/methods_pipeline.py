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
