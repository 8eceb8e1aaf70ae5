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
    return np.where(x <= 0.04045, x / 12.92, ((np.maximum(x, 0.04045) + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """Encode linear light to sRGB; the input is clipped to [0, 1] first."""
    x = np.clip(np.asarray(x, dtype=np.float32), 0.0, 1.0)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * np.power(np.maximum(x, 0.0031308), 1 / 2.4) - 0.055).astype(np.float32)


def luminance(x_linear: np.ndarray) -> np.ndarray:
    """Rec. 709 relative luminance of linear RGB (..., 3) -> (...)."""
    return (x_linear[..., 0] * 0.2126 + x_linear[..., 1] * 0.7152 + x_linear[..., 2] * 0.0722).astype(np.float32)
