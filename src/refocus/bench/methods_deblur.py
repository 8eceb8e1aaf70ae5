"""The deblurring stage's methods for ``refocus bench quality``.

* ``deblurnet``: the shipped DeblurNet (skipped when its weights are missing), with
  its guard (:mod:`refocus.deblur.guard`); ``deblurnet-raw``: the network alone;
* ``wiener``: spatially varying Wiener deconvolution with the disc kernel in linear
  light, driven by DeblurNet's *defocus map* (so it isolates the restoration step:
  same blur estimate, classical inversion);
* ``unsharp``: unsharp masking with the parameters tuned on synthetic training pairs;
  ``unsharp-oracle``: the best unsharp mask for each case, chosen by PSNR against the
  case's own target from :data:`ORACLE_RADII_PX` x :data:`ORACLE_AMOUNTS` (amount 0, the
  input unchanged, included): the "unsharp mask tuned on the same data" that issue 15
  asks DeblurNet to beat, as an upper bound (tuned per case, not per data set).

Imported (and so registered) by :func:`refocus.bench.methods.load_plugins`.
"""

from __future__ import annotations

import numpy as np

from refocus.bench.methods import Case, MethodUnavailable, register
from refocus.deblur.classical import DEFAULT_NSR, UNSHARP_AMOUNT, UNSHARP_RADIUS_PX, unsharp_mask, wiener_deblur
from refocus.errors import RefocusError



def _run(image: np.ndarray, guard: bool = True) -> tuple[np.ndarray, np.ndarray]:
    from refocus.deblur import deblur

    try:
        return deblur(image, guard=guard)
    except RefocusError as exc:
        raise MethodUnavailable(str(exc)) from None


def _deblurnet(case: Case) -> np.ndarray:
    return _run(case.input)[0]


def _deblurnet_raw(case: Case) -> np.ndarray:
    return _run(case.input, guard=False)[0]


def _wiener(case: Case) -> np.ndarray:
    _, defocus = _run(case.input)
    return wiener_deblur(case.input, defocus, nsr=DEFAULT_NSR)


def _unsharp(case: Case) -> np.ndarray:
    return unsharp_mask(case.input, UNSHARP_RADIUS_PX, UNSHARP_AMOUNT)


#: The oracle's grid: Gaussian radii (px) and amounts of the unsharp mask.
ORACLE_RADII_PX = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0)
ORACLE_AMOUNTS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.8, 1.2, 2.0)


def oracle_grid(case: Case) -> dict[tuple[float, float], float]:
    """PSNR (dB) against the case's target of the unsharp mask at each (radius px,
    amount) of :data:`ORACLE_RADII_PX` x :data:`ORACLE_AMOUNTS` (amount 0: the input)."""
    from refocus.bench.metrics import crop_border, psnr

    target = crop_border(case.target, case.crop_px)
    return {(r, a): psnr(crop_border(unsharp_mask(case.input, r, a) if a else case.input, case.crop_px), target)
            for r in ORACLE_RADII_PX for a in ORACLE_AMOUNTS}


def _unsharp_oracle(case: Case) -> np.ndarray:
    grid = oracle_grid(case)
    r, a = max(grid, key=grid.get)  # the first of equals: the input before any sharpening
    return unsharp_mask(case.input, r, a) if a else case.input


register("deblur", "deblurnet", _deblurnet, description="DeblurNet (compact NAFNet-style U-Net, trained on synthetic defocus)")
register("deblur", "deblurnet-raw", _deblurnet_raw,
         description="DeblurNet's network output without the guard (refocus.deblur.guard)")
register("deblur", "wiener", _wiener,
         description="Wiener deconvolution, disc kernel, linear light, with DeblurNet's defocus map")
register("deblur", "unsharp", _unsharp, description=f"unsharp mask (radius {UNSHARP_RADIUS_PX} px, amount {UNSHARP_AMOUNT})")
register("deblur", "unsharp-oracle", _unsharp_oracle,
         description="unsharp mask tuned per case on its own target, an upper bound (best PSNR of "
         f"{len(ORACLE_RADII_PX)} radii x {len(ORACLE_AMOUNTS)} amounts, amount 0 included)")
