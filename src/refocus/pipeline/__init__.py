"""The stages composed: depth -> DeblurNet -> bokeh renderer.

* :func:`refocus` - one photo, one setting (``refocus refocus``);
* :class:`Refocuser` - the pipeline object: swappable components (depth source,
  blur estimate, deblurrer, renderer, keep-sharp policy) and the one decision
  "deblur, then render" (:mod:`refocus.pipeline.refocuser`);
* :func:`prepare` / :class:`PreparedPhoto` - the focus-independent work, done once
  and reused by the UI and focus pulls (:mod:`refocus.pipeline.animate`);
* :mod:`refocus.pipeline.batch` - a folder of photos in parallel;
* :func:`bench_interactive` - timing of the UI's re-render at preview size.
"""

from refocus.pipeline.config import RefocusConfig
from refocus.pipeline.core import PreparedPhoto, RefocusResult, prepare, refocus
from refocus.pipeline.refocuser import Refocuser
from refocus.pipeline.visual import coc_to_rgb, disparity_to_rgb, save_intermediates

__all__ = [
    "PreparedPhoto",
    "RefocusConfig",
    "RefocusResult",
    "Refocuser",
    "bench_interactive",
    "coc_to_rgb",
    "disparity_to_rgb",
    "prepare",
    "refocus",
    "save_intermediates",
]


def bench_interactive(*args, **kwargs):
    """See :func:`refocus.pipeline.speed.bench_interactive`."""
    from refocus.pipeline.speed import bench_interactive as _bench

    return _bench(*args, **kwargs)
