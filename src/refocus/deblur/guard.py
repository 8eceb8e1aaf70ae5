"""Keep DeblurNet from damaging what was already sharp.

A regression network trained on synthetic defocus sharpens a little everywhere: its
training inputs were often softened by demosaicing-like blur that the target does
not have, so a crisp edge looks "slightly blurred" to it and gets a halo. On the
light field's in-focus regions that costs up to 16 dB (50.7 -> 34.4 dB on the
pixels with a true CoC below 0.5 px). Two safeguards, both local and cheap:

* **No new extrema.** The output is clipped to the range of the input within
  ``range_radius_px``. Over-sharpening overshoots that range; genuine restoration of
  a blur that large stays mostly within it.
* **Trust grows with the estimated blur.** Where the network's own defocus map says
  the input was sharp (below ``trust_from_px``), the input is kept; above
  ``trust_full_px`` the (clipped) prediction is; in between a smoothstep blends.

Measured on the scoreboard (``refocus bench quality --task deblur``), network output
-> guarded: light field 31.93 / 0.190 -> 33.58 / 0.173 (PSNR / LPIPS; input 33.30 /
0.238), synthetic 26.12 / 0.153 -> 26.12 / 0.156 (input 25.31 / 0.188). The three
parameters were chosen on those two sets (a grid of 15 settings, all listed in
``docs/deblurnet.md``), so the light field is a validation set here, not a held-out one.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field


class GuardConfig(BaseModel):
    """Parameters of :func:`guard_output` (px of the image the network saw)."""

    model_config = ConfigDict(frozen=True)

    range_radius_px: int = Field(2, ge=0, le=16)
    trust_from_px: float = Field(2.0, ge=0.0)
    trust_full_px: float = Field(4.0, ge=0.0)


def _trust(defocus_px, cfg: GuardConfig):
    """How much of the prediction to take, 0..1 per pixel, from the network's defocus
    map (a numpy array or a tensor: only operators and ``.clip`` are used)."""
    span = cfg.trust_full_px - cfg.trust_from_px
    if span <= 0:
        return (defocus_px >= cfg.trust_from_px) * 1.0
    t = ((defocus_px - cfg.trust_from_px) / span).clip(0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def guard_output(
    image: np.ndarray, all_in_focus: np.ndarray, defocus_px: np.ndarray, config: GuardConfig | None = None,
    *, overwrite: bool = False,
) -> np.ndarray:
    """Blend DeblurNet's prediction back towards the input where it cannot help.

    Parameters
    ----------
    image : H x W x 3 float32 sRGB in [0, 1], the network's input.
    all_in_focus : H x W x 3 float32, the network's prediction.
    defocus_px : H x W float32, the network's unsigned CoC estimate (px).
    config : see :class:`GuardConfig`.
    overwrite : write the result into ``all_in_focus`` (a float32 array the caller
        owns and no longer needs) instead of a new array.

    Returns
    -------
    H x W x 3 float32 in [0, 1].
    """
    from scipy import ndimage as ndi

    cfg = config or GuardConfig()
    # At most one new frame, worked in place: the expression form made six temporary frames
    # (a 48 MP photo: 576 MB each), its peak 3.4-4 x the photo's size on top of the inputs.
    own = overwrite and isinstance(all_in_focus, np.ndarray) and all_in_focus.dtype == np.float32 and all_in_focus.flags.writeable
    out = all_in_focus if own else np.array(all_in_focus, dtype=np.float32)
    if cfg.range_radius_px > 0:
        size = (2 * cfg.range_radius_px + 1,) * 2 + (1,)
        np.maximum(out, ndi.minimum_filter(image, size=size), out=out)
        np.minimum(out, ndi.maximum_filter(image, size=size), out=out)
    out -= image
    out *= _trust(defocus_px, cfg).astype(np.float32)[..., None]
    out += image
    return np.clip(out, 0.0, 1.0, out=out)


def guard_output_torch(image, all_in_focus, defocus_px, config: GuardConfig | None = None):
    """:func:`guard_output` on (3, H, W) / (H, W) torch tensors, on their device.

    The range filter's border (edge-replicated here, reflected in the numpy version)
    gives the same window minima and maxima: both only repeat pixels the window
    already holds.
    """
    import torch
    import torch.nn.functional as F

    cfg = config or GuardConfig()
    out = all_in_focus
    r = cfg.range_radius_px
    if r > 0:
        xp = F.pad(image[None], (r, r, r, r), mode="replicate")
        hi = F.max_pool2d(xp, 2 * r + 1, stride=1)[0]
        lo = -F.max_pool2d(-xp, 2 * r + 1, stride=1)[0]
        out = torch.minimum(torch.maximum(out, lo), hi)
    return (image + _trust(defocus_px, cfg)[None] * (out - image)).clamp(0.0, 1.0)
