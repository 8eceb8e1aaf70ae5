"""The renderer's disparity from a depth or disparity map (:func:`prepare_disparity`).

Used by the pipeline (:func:`refocus.pipeline.core.load_disparity`) and the
photo-level render (:func:`refocus.pipeline.bokeh.render_bokeh`); the renderer
itself (:mod:`refocus.render`) takes a CoC map and knows nothing of depth.
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np

from refocus.errors import RefocusError


def prepare_disparity(
    depth: np.ndarray,
    kind: Literal["disparity", "depth"] = "disparity",
    normalize: bool = True,
    shape: tuple[int, int] | None = None,
    guide: np.ndarray | None = None,
) -> np.ndarray:
    """Turn a depth or disparity map into the renderer's disparity.

    ``kind="depth"`` converts distance to disparity with 1/z. Non-finite values are
    filled from their neighbours (an all-invalid map is an error). With
    ``normalize`` the result is min-max scaled to [0, 1]; a constant map becomes all
    zeros (everything on one plane: nothing will blur) with a warning. When
    ``shape`` differs from the map's, it is resampled to it (edge-aware when a
    ``guide`` image is given), with a warning. (:func:`render_bokeh` returns the
    image unchanged for a constant relative map.)
    """
    from refocus.depth import _valid, to_disparity
    from refocus.io.depthfile import as_depth_map

    if kind not in ("depth", "disparity"):
        raise RefocusError(f"unknown depth kind {kind!r}: use disparity or depth")
    d = as_depth_map(depth)
    # The one rule for invalid values (refocus.depth.to_disparity): NaN, -inf and
    # distances <= 0 are filled from their neighbours, a distance of +inf is infinitely
    # far (disparity 0). This path (render_bokeh, the speed bench) filled +inf too.
    valid = _valid(d, kind)
    if not valid.any():
        raise RefocusError("depth map has no valid (finite) values")
    if not valid.all():
        n_bad = int((~valid).sum())
        warnings.warn(f"depth map has {n_bad} invalid values (NaN/inf/non-positive); filled from neighbours", stacklevel=2)
    d = to_disparity(d, kind).astype(np.float64)
    # The range of the map as given: resampling (edge alignment removes isolated
    # extremes) must not change what a normalised focus value or K means.
    lo, hi = float(d.min()), float(d.max())
    if shape is not None and tuple(shape) != d.shape:
        warnings.warn(f"depth map is {d.shape[1]}x{d.shape[0]}, image is {shape[1]}x{shape[0]}: resampling the depth", stacklevel=2)
        d = resample_depth(d, shape, guide)
    if normalize:
        if hi - lo < 1e-12:
            warnings.warn("depth map is constant: the whole image lies on one plane", stacklevel=2)
            return np.zeros_like(d)
        d = np.clip((d - lo) / (hi - lo), 0.0, 1.0)
    return d.astype(np.float32)


def resample_depth(d: np.ndarray, shape: tuple[int, int], guide: np.ndarray | None = None) -> np.ndarray:
    """Resize a depth map to ``shape`` (H, W); edge-aware when a guide image is given."""
    from refocus.depth.refine import upsample_to_guide

    if guide is not None:
        return upsample_to_guide(d, guide)
    from PIL import Image

    img = Image.fromarray(d.astype(np.float32), mode="F")
    return np.asarray(img.resize((shape[1], shape[0]), Image.BILINEAR), dtype=np.float32)
