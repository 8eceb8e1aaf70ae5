"""DeblurNet: all-in-focus recovery and a defocus map from a defocused photo.

``deblur(image) -> (all_in_focus, defocus_px)`` runs the compact restoration network
shipped in ``refocus/weights/deblurnet.pt`` (see ``docs/deblurnet.md``), in tiles of
bounded memory, on CPU or CUDA. A generative refiner can be chained after it through
the :class:`Refiner` protocol. ``refocus.deblur.classical`` holds the classical
baselines (Wiener deconvolution driven by a defocus map, unsharp masking).

The package itself is callable: ``refocus.deblur(image, ...)`` is :func:`deblur`.
``refocus.deblur`` names both this package and that function (README), and Python
binds the package to the name as soon as anything imports it, so the package
forwards the call rather than lose it.
"""

import sys
import types

from refocus.deblur.infer import Refiner, default_weights_path, deblur, load_model, predict
from refocus.deblur.model import DeblurNet, DeblurNetConfig, count_parameters

__all__ = [
    "DeblurNet",
    "DeblurNetConfig",
    "Refiner",
    "count_parameters",
    "deblur",
    "default_weights_path",
    "load_model",
    "predict",
]


class _CallablePackage(types.ModuleType):
    def __call__(self, *args, **kwargs):
        return deblur(*args, **kwargs)

    @property
    def __signature__(self):  # what a notebook shows for refocus.deblur( : deblur's own
        import inspect

        return inspect.signature(deblur)


sys.modules[__name__].__class__ = _CallablePackage
