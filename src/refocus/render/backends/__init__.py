"""The renderer's array backends: the one place that chooses numpy, numba or torch.

The algorithm (:mod:`refocus.render.layered`, :mod:`~refocus.render.dense`,
:mod:`~refocus.render.sparse`) is written once against a backend object:

* :class:`~refocus.render.backends.numpy.NumpyBackend` -- numpy + scipy.fft on the
  CPU, tile-sparse finest layers, the two sweeps on two threads;
* :class:`~refocus.render.backends.numba.NumbaBackend` -- the numpy backend with its
  coarse steps (image in and out, band counts and splats, block and tile
  reductions, x2 resampling, the coarse fill, a tile-sparse layer's windows)
  compiled by numba (:mod:`~refocus.render.backends._numba_sparse`,
  :mod:`~refocus.render.backends._numba_frame`); the CPU's default when numba is
  installed;
* :class:`~refocus.render.backends.torch.TorchBackend` -- torch on any device,
  dense layers by default (the GPU's choice).

Arrays are channel-first ``(C, H, W)`` float32. The hooks shared by numpy and torch
are written once with the primitive operations in
:class:`~refocus.render.backends.base.ArrayBackend`.
"""

from __future__ import annotations

from refocus.render.backends.base import ArrayBackend, add_, mul_
from refocus.render.backends.numpy import NumpyBackend
from refocus.render.backends.torch import TorchBackend

__all__ = ["ArrayBackend", "NumpyBackend", "TorchBackend", "add_", "cpu_backend", "get_backend", "mul_"]


def cpu_backend(jit: bool = True) -> NumpyBackend:
    """The CPU backend: numba's when its kernels are available (and ``jit``), else numpy's."""
    from refocus.render.backends import numba as _numba

    kernels = _numba.kernels() if jit else None
    return _numba.NumbaBackend(kernels) if kernels is not None else NumpyBackend()


def get_backend(device: str):
    """``"cpu"`` -> numba or numpy; ``"cuda"``/``"torch-cpu"`` -> torch; ``"auto"`` picks CUDA if present."""
    from refocus.errors import RefocusError

    if device == "auto":
        try:
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        except Exception:
            device = "cpu"
    if device == "cpu":
        return cpu_backend()
    if device == "torch-cpu":
        return TorchBackend("cpu")
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise RefocusError("--device cuda was asked for but no CUDA GPU is available; use --device cpu")
        return TorchBackend("cuda")
    raise RefocusError(f"unknown device {device!r}: use cpu, cuda or auto")
