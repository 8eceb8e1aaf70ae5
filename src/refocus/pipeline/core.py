"""The one-shot API: :func:`prepare` and :func:`refocus` with the default
:class:`~refocus.pipeline.refocuser.Refocuser` (the physical engine).

The pieces live in their own modules and are re-exported here, where callers
have always found them: :class:`PreparedPhoto` (:mod:`.photo`), the pipeline
object and its decision constants (:mod:`.refocuser`), the calls into the stage
packages (:mod:`.stages`).
"""

from __future__ import annotations

from refocus.pipeline.config import RefocusConfig
from refocus.pipeline.photo import PreparedPhoto, _resize, select_focus, strength_from_f_number
from refocus.pipeline.refocuser import (
    KEEP_AGREE_SRGB,
    SHARP_INPUT_PX,
    SHARPEN_FROM_PX,
    RefocusResult,
    Refocuser,
    default_refocuser,
    keep_sharp_input,
    merged_config,
    output_info,
    residual_coc,
    subtractable_blur,
)
from refocus.pipeline.stages import load_disparity, load_photo, run_deblur

__all__ = [
    "KEEP_AGREE_SRGB",
    "SHARPEN_FROM_PX",
    "SHARP_INPUT_PX",
    "PreparedPhoto",
    "RefocusResult",
    "Refocuser",
    "keep_sharp_input",
    "load_disparity",
    "load_photo",
    "output_info",
    "prepare",
    "refocus",
    "residual_coc",
    "run_deblur",
    "select_focus",
    "strength_from_f_number",
    "subtractable_blur",
    "_resize",
]


def prepare(image, cfg: RefocusConfig | None = None, focus_points: tuple = (), **kwargs) -> PreparedPhoto:
    """Load a photo and its depth, and estimate its blur (no deblurring yet).

    ``image`` is a path or an H x W x 3 array; ``kwargs`` are :class:`RefocusConfig`
    fields, over those of ``cfg`` when both are given; ``focus_points`` (x, y) that
    will be used later are checked first.
    """
    return default_refocuser().prepare(image, cfg, focus_points=focus_points, **kwargs)


def refocus(image, config: RefocusConfig | None = None, **kwargs) -> RefocusResult:
    """Refocus a photo: depth -> DeblurNet (where it helps) -> bokeh renderer.

    Parameters
    ----------
    image : path or (H, W, 3) array (float in [0, 1], uint8 or uint16)
        The photo. A path keeps EXIF, ICC profile and alpha for writing.
    config : RefocusConfig, optional
        All settings; alternatively give them as keyword arguments
        (``focus_xy=(x, y)``, ``strength=20``, ``depth_path=...``, ...), which
        override the config's when both are given.

    Returns
    -------
    RefocusResult
        ``result.image`` is the new photo (float32 sRGB); write it with
        ``refocus.io.write_image(path, result.image, result.info)``.
    """
    return default_refocuser().refocus(image, config, **kwargs)
