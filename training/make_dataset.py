"""Pre-generate DeblurNet training pairs to disk (shards of .npz, float16 linear light).

Rendering a layered scene costs ~0.3 s on one CPU core, more than a training step of
the small network, so the pairs are made once and reused with flips/rotations and
fresh random degradations (noise, JPEG, tone) applied on the fly by the trainer.

Usage::

    python training/make_dataset.py --out training/data --shards 8 --per-shard 500 --size 128

Shard ``i`` uses seeds ``(1, i, j)``; the frozen test set uses another seed, and the
light field is never used for training.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from refocus.bench.scenes import make_pair


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("training/data"))
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--first-shard", type=int, default=0)
    ap.add_argument("--per-shard", type=int, default=500)
    ap.add_argument("--size", type=int, default=128)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for s in range(args.first_shard, args.first_shard + args.shards):
        path = args.out / f"shard_{s:03d}.npz"
        if path.exists():
            continue
        t0 = time.time()
        sharp, blurred, defocus = [], [], []
        for j in range(args.per_shard):
            p = make_pair(np.random.default_rng([1, s, j]), args.size)
            sharp.append(p.sharp.astype(np.float16))
            blurred.append(p.blurred.astype(np.float16))
            defocus.append(p.defocus_px.astype(np.float16))
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, sharp=np.stack(sharp), blurred=np.stack(blurred), defocus_px=np.stack(defocus))
        tmp.rename(path)
        print(f"{path.name}: {args.per_shard} pairs in {time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
