"""Compiled inner loops of the CPU renderer (numba).

The numpy path of :mod:`refocus.render.layered` spends most of its time in many
small whole-batch passes (window gathers, ramps, the push-pull fill's upsampling,
FFT convolutions, tile reads and writes), each streaming its batch through memory
and each holding the GIL between numpy calls. The kernels in
:mod:`refocus.render._jit_kernels` do the same arithmetic for the tile-sparse
layers window by window while the window sits in the CPU cache, convolve with the
aperture kernel directly (at levels 1 and 2 a kernel has at most about 13 x 13
taps), and fuse the full-frame passes around them (image in with the highlight
boost, result out, band counts, band splats, x2 up- and downsampling). They
release the GIL, so the renderer's two sweeps run on two cores.

Every kernel mirrors a numpy expression of ``layered.py`` / ``backend.py``
operation by operation (the same float32 roundings wherever the order is the
same), so the two paths agree to float32 round-off (``tests/test_render.py``
checks it). When numba is missing, or ``REFOCUS_NO_JIT=1``, the numpy path runs
instead (:func:`kernels` returns None). numba compiles them once per machine and
caches the result next to the module (about a minute on a 2-core laptop).
"""

from __future__ import annotations

import os

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
        else:
            _notice_first_compilation(_KERNELS)
    return _KERNELS


def _notice_first_compilation(module) -> None:
    """Say so when the kernels have never been compiled here: the first render then
    waits ~30-60 s (once; numba caches the machine code next to the module)."""
    import sys
    from pathlib import Path

    import numba

    dirs = [Path(module.__file__).parent / "__pycache__"]
    if numba.config.CACHE_DIR:
        dirs.append(Path(numba.config.CACHE_DIR))
    try:  # where numba caches when the package folder is not writable
        from numba.misc.appdirs import AppDirs

        dirs.append(Path(AppDirs(appname="numba", appauthor=False).user_cache_dir))
    except Exception:
        pass
    if not any(any(d.rglob("_jit_kernels.blur_composite-*.nbi")) for d in dirs if d.is_dir()):
        print("refocus: compiling the CPU renderer for this machine (first run only, about a minute)", file=sys.stderr)
