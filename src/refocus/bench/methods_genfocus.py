"""Registers the generative engine as the ``genfocus`` method of ``refocus bench quality``
(bokeh, deblur and refocus tasks).

Settings come from the environment, so that the benchmark's command line stays the
same: ``REFOCUS_GENFOCUS_WEIGHTS`` (LoRA folder), ``REFOCUS_GENFOCUS_BASE_MODEL``,
``REFOCUS_GENFOCUS_STEPS``, ``REFOCUS_GENFOCUS_OFFLOAD=1``, ``REFOCUS_GENFOCUS_PRE_DEBLUR=1``.
Without the packages or the weights every case is skipped with the reason as a note.
Opt-in: ``refocus bench quality --methods genfocus,...`` (never part of the default run).
Imported (and so registered) by :func:`refocus.bench.methods.load_plugins`.
"""

from __future__ import annotations

import numpy as np

from refocus.bench.methods import Case, MethodUnavailable, register
from refocus.errors import RefocusError

#: Why the engine cannot run, per set of options (one hub probe per run, not per case).
_failed: dict = {}


def options_from_env():
    from refocus.pipeline.genfocus.engine import GenfocusOptions

    return GenfocusOptions.from_env()


def _engine(tasks: list[str]):
    """The engine, or MethodUnavailable."""
    from refocus.pipeline.genfocus.weights import packages_missing

    if packages_missing():
        raise MethodUnavailable(f"genfocus needs {', '.join(packages_missing())}: pip install 'refocus[genfocus]'")
    from refocus.pipeline.genfocus.engine import get_engine

    options = options_from_env()
    why = _failed.get((options, tuple(tasks)))
    if why is not None:
        raise MethodUnavailable(why)
    engine = get_engine(options)
    try:
        engine.check_weights(tasks)
    except RefocusError as exc:
        _failed[(options, tuple(tasks))] = str(exc)
        raise MethodUnavailable(str(exc)) from None
    return engine


def _aif(engine, image: np.ndarray) -> np.ndarray:
    from refocus.pipeline.genfocus.run import generative_all_in_focus

    return generative_all_in_focus(engine, image, "auto")


def _bokeh(case: Case) -> np.ndarray:
    coc = case.coc_px()
    return _engine(["bokeh"]).bokeh(case.input, coc)


def _deblur(case: Case) -> np.ndarray:
    from refocus.pipeline.genfocus.run import tasks_for

    engine = _engine(tasks_for(True, options_from_env())[:1])
    return _aif(engine, case.input)


def _refocus(case: Case) -> np.ndarray:
    from refocus.pipeline.genfocus.run import tasks_for

    coc = case.coc_px()
    engine = _engine(tasks_for(True, options_from_env()))
    return engine.bokeh(_aif(engine, case.input), coc)


_DESC = "Genfocus (FLUX.1-dev + LoRAs) through refocus's generative engine"
register("bokeh", "genfocus", _bokeh, needs_disparity=True, description=f"{_DESC}: BokehNet", opt_in=True)
register("deblur", "genfocus", _deblur, description=f"{_DESC}: DeblurNet", opt_in=True)
register("refocus", "genfocus", _refocus, needs_disparity=True, description=f"{_DESC}: DeblurNet then BokehNet", opt_in=True)
