"""Make a trained DeblurNet the package's default: add the guard it was tuned with.

The guard's parameters (:class:`refocus.deblur.guard.GuardConfig`) are chosen per
network by ``training/tune_guard.py``; the shipped file carries them (its ``"guard"``
entry, read by :func:`refocus.deblur.load_model`), so that ``deblur(image)`` guards
each network with its own setting. The training provenance in ``meta`` is kept and
the tuning log is named beside it.

Usage::

    python training/ship_deblurnet.py WEIGHTS --guard R FROM WIDTH --tune-log LOG [--out PATH]
        [--half] [--runs LOG ...]

``--half`` stores the weights as float16 (half the size; they load into float32);
``--runs`` names the training logs that made them, oldest first.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from refocus.deblur.guard import GuardConfig
from refocus.deblur.infer import default_weights_path
from refocus.io import atomic_write_bytes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights", type=Path)
    ap.add_argument("--guard", nargs=3, type=float, metavar=("RADIUS_PX", "FROM_PX", "WIDTH_PX"), required=True)
    ap.add_argument("--tune-log", required=True, help="the tune_guard.py log the setting was chosen from")
    ap.add_argument("--out", type=Path, default=default_weights_path())
    ap.add_argument("--half", action="store_true", help="store float16 (loads into float32)")
    ap.add_argument("--runs", nargs="+", help="the training logs that made these weights, oldest first")
    args = ap.parse_args()
    blob = torch.load(args.weights, map_location="cpu", weights_only=False)
    if args.half:
        blob["state_dict"] = {k: v.half() if v.is_floating_point() else v for k, v in blob["state_dict"].items()}
        blob.setdefault("meta", {})["stored"] = "float16 (loads into float32)"
    if args.runs:
        blob.setdefault("meta", {})["runs"] = list(args.runs)
    radius, start, width = args.guard
    guard = GuardConfig(range_radius_px=int(radius), trust_from_px=start, trust_full_px=start + width)
    blob["guard"] = guard.model_dump()
    blob.setdefault("meta", {})["guard_tuning"] = args.tune_log
    blob["meta"]["source"] = args.weights.name
    atomic_write_bytes(args.out, lambda p: torch.save(blob, p))
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB), guard {guard.model_dump()}")


if __name__ == "__main__":
    main()
