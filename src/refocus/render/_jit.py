"""Compiled inner loops of the CPU renderer's tile-sparse layers (numba).

The numpy path of :class:`refocus.render.layered._SparseLevels` spends most of its
time in many small whole-batch passes (window gathers, ramps, the push-pull fill's
upsampling, FFT convolutions, tile reads and writes), each streaming the batch
through memory. These kernels do the same arithmetic window by window while the
window sits in the CPU cache, and convolve with the aperture kernel directly
(shifted multiply-adds: at levels 1 and 2 kernels have at most about 13 x 13 taps).
They release the GIL, so the renderer's two sweeps still run on two cores.

Every kernel mirrors a numpy expression of ``layered.py`` operation by operation
(same float32 roundings wherever the order is the same), so the two paths agree to
float32 round-off; ``tests/test_render.py`` checks it. When numba is missing, or
``REFOCUS_NO_JIT=1``, the numpy path runs instead (:func:`kernels` returns None).

Window layout ("planes", float32 ``(N, 8, Wn, Wn)`` at the layer's level): alpha,
own colour (3), hidden coverage (clipped to [0, 1]), content at or behind the
layer (3). A window is the tile plus ``E`` px of margin on each side.
"""

from __future__ import annotations

import os

import numpy as np

_KERNELS = None
_TRIED = False


def kernels():
    """The compiled kernels (a namespace), or None when numba is unavailable or
    disabled by the environment variable ``REFOCUS_NO_JIT=1``."""
    global _KERNELS, _TRIED
    if os.environ.get("REFOCUS_NO_JIT", "") not in ("", "0"):
        return None
    if not _TRIED:
        _TRIED = True
        try:
            from refocus.render import _jit_kernels as _KERNELS
        except ImportError:
            _KERNELS = None
    return _KERNELS
