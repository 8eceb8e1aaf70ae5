"""sRGB transfer functions.

Convention: images enter and leave the project as sRGB-encoded float32 in [0, 1];
all optical maths (blur, averaging of views, highlight boosting) happens on the
linear values these functions return.
"""

from __future__ import annotations

import numpy as np


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """Decode sRGB values in [0, 1] to linear light (IEC 61966-2-1)."""
    x = np.asarray(x, dtype=np.float32)
    # In place on one output array: np.where over two full-size branches took ~7x
    # the time of the power itself at 12 MP.
    out = np.maximum(x, np.float32(0.04045), out=np.empty_like(x))
    out += np.float32(0.055)
    out *= np.float32(1 / 1.055)
    np.power(out, np.float32(2.4), out=out)
    low = x <= 0.04045
    np.divide(x, np.float32(12.92), out=out, where=low)
    return out


def linear_to_srgb(x: np.ndarray, run_ranges=None) -> np.ndarray:
    """Encode linear light to sRGB; the input is clipped to [0, 1] first.

    ``run_ranges``: optional ``run_ranges(fn, [(a, b), ...])`` that runs ``fn(a, b)``
    for each range, e.g. on two threads (:meth:`refocus.render.threads.RenderThreads.run_ranges`);
    arrays of :data:`_SPLIT_SIZE` elements and more are then encoded in two row halves.
    None: on the calling thread. numpy releases the GIL in its loops, and the encode
    sits on the UI's re-render path and at the end of every pipeline run.
    """
    x = np.asarray(x, dtype=np.float32)
    out = np.empty_like(x)
    if run_ranges is not None and x.ndim >= 2 and x.size >= _SPLIT_SIZE:
        m = x.shape[0] // 2
        run_ranges(lambda a, b: _encode(x[a:b], out[a:b]), [(0, m), (m, x.shape[0])])
    else:
        _encode(x, out)
    return out


def _encode(x: np.ndarray, out: np.ndarray) -> None:
    xc = np.clip(x, 0.0, 1.0)
    np.maximum(xc, np.float32(0.0031308), out=out)
    np.power(out, np.float32(1 / 2.4), out=out)
    out *= np.float32(1.055)
    out -= np.float32(0.055)
    low = xc <= 0.0031308
    np.multiply(xc, np.float32(12.92), out=out, where=low)


#: Arrays at least this large (elements) are encoded in two halves when a
#: ``run_ranges`` is given.
_SPLIT_SIZE = 1 << 20


def luminance(x_linear: np.ndarray) -> np.ndarray:
    """Rec. 709 relative luminance of linear RGB (..., 3) -> (...)."""
    return (x_linear[..., 0] * 0.2126 + x_linear[..., 1] * 0.7152 + x_linear[..., 2] * 0.0722).astype(np.float32)
