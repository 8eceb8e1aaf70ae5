"""The invertible highlight boost (see :class:`refocus.render.RenderConfig`).

Clipped highlights are taken to have been brighter than the sensor recorded: their
linear radiance is expanded before blurring (so a blurred highlight spreads as a
bright disc, not a grey one) and the result compressed by the inverse curve after,
so that in-focus pixels come back unchanged. A backend applies it in its image in
and out hooks (:meth:`expand`, :meth:`compress`, or the lookup :meth:`table`).
"""

from __future__ import annotations

import numpy as np

from refocus.render.plan import EPS


class Booster:
    """Invertible highlight expansion on luminance (see RenderConfig)."""

    def __init__(self, threshold_srgb: float, gain: float):
        from refocus.io.color import srgb_to_linear

        self.enabled = gain > 0 and threshold_srgb < 1.0
        self.gain = gain
        self.t = float(srgb_to_linear(np.float32(threshold_srgb)))
        y = np.linspace(0.0, 1.0, 8193)
        self.y_lin = y
        self.y_exp = y * self._mult(y)

    def _mult(self, y):
        s = np.clip((y - self.t) / max(1.0 - self.t, 1e-6), 0.0, 1.0)
        s = s * s * (3 - 2 * s)
        return 1.0 + self.gain * s

    def table(self, expand: bool) -> tuple:
        """(enabled, threshold, xp, fp, eps) for the compiled kernels (numba backend):
        the lookup :meth:`expand` (or :meth:`compress`) interpolates."""
        xp, fp = (self.y_lin, self.y_exp) if expand else (self.y_exp, self.y_lin)
        return self.enabled, np.float32(self.t), xp, fp, np.float32(EPS)

    @staticmethod
    def _lum(x):
        return x[0] * 0.2126 + x[1] * 0.7152 + x[2] * 0.0722

    def expand(self, x, be):
        """Boost highlights; may work in place on x."""
        if not self.enabled:
            return x
        return be.scale_highlights(x, self._lum(x), self.t, self.y_lin, self.y_exp, EPS)

    def compress(self, x, be):
        """Invert :meth:`expand`; may work in place on x."""
        if not self.enabled:
            return x
        return be.scale_highlights(x, self._lum(x), self.t, self.y_exp, self.y_lin, EPS)
