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
    from refocus.pipeline.core import PreparedPhoto
    from refocus.pipeline.sharpness import input_blur_map

    if case.disparity is None or case.strength is None or case.focus_disparity is None:
        raise MethodUnavailable("the pipeline needs disparity, strength and focus (no-depth track not supported yet)")
    d = np.asarray(case.disparity, dtype=np.float32)
    lo, hi = float(d.min()), float(d.max())
    span = max(hi - lo, 1e-12)
    dn = (d - lo) / span
    photo = PreparedPhoto(image=case.input, disparity=dn, input_blur_px=input_blur_map(case.input, dn))
    cfg = RefocusConfig(highlight_gain=0.0, aperture=case.aperture) if case.aperture is not None else RefocusConfig(highlight_gain=0.0)
    fd, k = (case.focus_disparity - lo) / span, case.strength * span
    from refocus.render import coc_map

    use_aif = photo.use_all_in_focus(cfg, [coc_map(dn, fd, k)])
    img, _ = photo.render(cfg, fd, k, use_all_in_focus=use_aif)
    return img


register("refocus", "pipeline", _pipeline, needs_disparity=True, description="depth -> DeblurNet (where it helps) -> layered renderer, keep-sharp rule")
