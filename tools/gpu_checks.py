"""Checks and timings for a lent GPU, in one call (see docs/architecture.md, GPU).

Run from the repository root on the device machine::

    python tools/gpu_checks.py --out $OUT [--qualities balanced,high] [--cocs 8,16,32,64]

What it does, printing a short table last and writing ``gpu_checks.json``:

* agreement: the CUDA path against the numpy path on a 1 MP crop (max |diff|);
* renderer: 12 MP (4000 x 3000), smooth random disparity, disc, median of
  ``--repeats`` after one warm-up, for each variant, with inputs already on the GPU
  (``resident``) and from numpy arrays (``numpy``: host-device copies included);
* a per-function breakdown (synchronised timers) and a torch profiler table at 32 px;
* DeblurNet at 12 MP (median of 3 after a warm-up).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn, repeats: int) -> list[float]:
    fn()  # warm-up: kernels, cuFFT plans, caching allocator
    sync()
    out = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        out.append(time.perf_counter() - t0)
    return out


class Breakdown:
    """Synchronised wall time per wrapped function (inclusive)."""

    def __init__(self):
        self.t: dict[str, float] = {}
        self.n: dict[str, int] = {}
        self.undo = []

    def wrap(self, owner, attr: str, label: str) -> None:
        orig = getattr(owner, attr)

        def inner(*a, **k):
            sync()
            t0 = time.perf_counter()
            r = orig(*a, **k)
            sync()
            self.t[label] = self.t.get(label, 0.0) + time.perf_counter() - t0
            self.n[label] = self.n.get(label, 0) + 1
            return r

        setattr(owner, attr, inner)
        self.undo.append((owner, attr, orig))

    def restore(self) -> None:
        for owner, attr, orig in reversed(self.undo):
            setattr(owner, attr, orig)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--qualities", default="balanced,high")
    ap.add_argument("--cocs", default="8,16,32,64")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--size", default="3000x4000", help="HxW")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--skip", default="", help="comma-separated: agree,render,breakdown,profile,deblur")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    skip = set(filter(None, args.skip.split(",")))
    dev = args.device
    tdev = "cuda" if dev == "cuda" else "cpu"

    from refocus.bench.speed import smooth_disparity
    from refocus.render import RenderConfig, render_linear
    from refocus.render import layered

    h, w = (int(v) for v in args.size.split("x"))
    rng = np.random.default_rng(1)
    img = rng.random((h, w, 3), dtype=np.float32)
    disp = smooth_disparity(h, w)
    res: dict = {"torch": torch.__version__, "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    print(json.dumps(res), flush=True)
    cfg = RenderConfig(device=dev)
    lines = []

    if "agree" not in skip:
        from refocus.render.backends import cpu_backend, get_backend

        ch, cw = min(h, 768), min(w, 1024)
        dense = cpu_backend()
        dense.tile_sparse = False
        for c in (8.0, 32.0, 64.0):
            coc = (2 * c * (disp[:ch, :cw] - 0.5)).astype(np.float32)
            be = get_backend(dev)
            got = be.to_numpy(layered.render_layers(img[:ch, :cw], coc, cfg, be))
            for name, ref_be in (("dense", dense), ("sparse", cpu_backend())):
                ref = layered.render_layers(img[:ch, :cw], coc, RenderConfig(device="cpu"), ref_be)
                e = np.abs(got - ref).max(axis=2)
                res[f"agree_{name}_{c:g}"] = [float(e.max()), float(e.mean())]
                lines.append(f"agree max CoC {c:g}: {dev} vs numpy {name}: max {e.max():.2e}, mean {e.mean():.2e}")
                print(lines[-1], flush=True)

    if "render" not in skip:
        img_t = torch.as_tensor(img, device=tdev)
        for variant in args.qualities.split(","):
            cfg_v = RenderConfig(device=dev, quality=variant)
            for c in (float(v) for v in args.cocs.split(",")):
                coc = (2 * c * (disp - 0.5)).astype(np.float32)
                coc_t = torch.as_tensor(coc, device=tdev)
                t_np = timed(lambda: render_linear(img, coc, cfg_v), args.repeats)
                entry = {"numpy_s": t_np, "numpy_median_s": statistics.median(t_np)}
                try:
                    t_res = timed(lambda: render_linear(img_t, coc_t, cfg_v), args.repeats)
                    entry.update(resident_s=t_res, resident_median_s=statistics.median(t_res))
                except Exception as exc:  # older code takes numpy only
                    entry["resident_error"] = repr(exc)[:200]
                if torch.cuda.is_available():
                    entry["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
                    torch.cuda.reset_peak_memory_stats()
                res[f"render_{variant}_{c:g}"] = entry
                lines.append(
                    f"render {variant:8s} {w}x{h} max CoC {c:4g}: numpy in/out {entry['numpy_median_s']:.3f} s, "
                    f"resident {entry.get('resident_median_s', float('nan')):.3f} s, peak GPU {entry.get('peak_gpu_mb', 0):.0f} MB"
                )
                print(lines[-1], flush=True)

    if "breakdown" not in skip:
        for variant in ["balanced"]:
            coc = (2 * 32.0 * (disp - 0.5)).astype(np.float32)
            render_linear(img, coc, cfg)
            import refocus.render as render_mod
            from refocus.render import dense as dense_mod
            from refocus.render.backends.base import ArrayBackend
            from refocus.render.highlights import Booster

            bd = Breakdown()
            bd.wrap(render_mod, "render_layers", "render_layers (total)")
            bd.wrap(ArrayBackend, "pushpull", "pushpull (dense)")
            bd.wrap(dense_mod, "conv_layer", "conv (dense layers)")
            bd.wrap(layered, "used_layers", "used_layers")
            bd.wrap(dense_mod, "tent_weights", "tent_weights")
            bd.wrap(ArrayBackend, "splat_down", "splat_down")
            bd.wrap(Booster, "expand", "highlights expand")
            bd.wrap(Booster, "compress", "highlights compress")
            try:
                render_linear(img, coc, cfg)
            finally:
                bd.restore()
            res[f"breakdown_{variant}_32"] = {k: [bd.t[k], bd.n[k]] for k in bd.t}
            for k in sorted(bd.t, key=lambda k: -bd.t[k]):
                lines.append(f"  breakdown {variant} 32 px: {k:28s} {bd.t[k]:.3f} s in {bd.n[k]} calls")
                print(lines[-1], flush=True)

    if "profile" not in skip:
        from torch.profiler import ProfilerActivity, profile

        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
        for variant in ["balanced"]:
            coc = torch.as_tensor((2 * 32.0 * (disp - 0.5)).astype(np.float32), device=tdev)
            img_t = torch.as_tensor(img, device=tdev)
            render_linear(img_t, coc, cfg)
            with profile(activities=acts) as prof:
                render_linear(img_t, coc, cfg)
                sync()
            ka = prof.key_averages()
            key = "self_cuda_time_total" if torch.cuda.is_available() else "self_cpu_time_total"
            (args.out / f"profile_{variant}_32.txt").write_text(
                ka.table(sort_by=key, row_limit=40) + "\n\n" + ka.table(sort_by="cpu_time_total", row_limit=25)
            )
            n_kernels = sum(e.count for e in ka if getattr(e, "device_type", None) is not None and "cuda" in str(e.device_type).lower())
            lines.append(f"profile {variant}: {n_kernels} device kernel launches (32 px)")
            print(lines[-1], flush=True)

    if "deblur" not in skip:
        from refocus.deblur import deblur

        for tile in ("auto", 2048, 640):
            for guard in (True, False):
                if tile != "auto" and not guard:
                    continue
                if torch.cuda.is_available():
                    torch.cuda.reset_peak_memory_stats()
                t = timed(lambda: deblur(img, device=tdev, tile=tile, guard=guard), 3)
                res[f"deblur_{tile}_{guard}_s"] = t
                lines.append(f"deblur {w}x{h} tile {tile} guard {guard}: median {statistics.median(t):.3f} s ({', '.join(f'{v:.3f}' for v in t)})")
                if torch.cuda.is_available():
                    mb = torch.cuda.max_memory_allocated() / 2**20
                    res[f"deblur_{tile}_{guard}_peak_gpu_mb"] = mb
                    lines[-1] += f", peak GPU {mb:.0f} MB"
                print(lines[-1], flush=True)
        a = deblur(img[:1024, :1024], device=tdev)[0]
        b = deblur(img[:1024, :1024], device="cpu")[0]
        res["deblur_agree_1mp"] = float(np.abs(a - b).max())
        lines.append(f"deblur 1024x1024 {tdev} vs cpu: max |diff| {res['deblur_agree_1mp']:.2e}")
        print(lines[-1], flush=True)

    (args.out / "gpu_checks.json").write_text(json.dumps(res, indent=1))
    print("\n".join(["", "=== summary ==="] + lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
