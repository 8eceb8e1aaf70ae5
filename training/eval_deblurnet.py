"""Score DeblurNet against the baselines, and draw the before/after sheet on real photos.

Data (the benchmark's own cases, :func:`refocus.bench.quality.build_cases`):

* ``lightfield:hci-antinous/2``: the light field at half resolution, refocused with
  R in {2, 4} at the 95/50/5th disparity percentiles (input) -> centre view (target),
  metrics after the protocol's border crop. Validation only: never trained on.
* ``synthetic``: the benchmark's frozen ray-traced scenes (256 px, blur up to 16 px,
  highlights), never trained on;
* ``synthetic-ours``: :func:`refocus.bench.scenes.frozen_pair_set` (96 px, camera
  degradations), a seed disjoint from the training shards.

Methods: ``input`` (unchanged), ``deblurnet`` (with its guard, the default),
``deblurnet-raw`` (the network alone), ``wiener`` (DeblurNet's defocus map +
Wiener deconvolution with the disc kernel in linear light), ``unsharp`` (tuned).

Usage::

    python training/eval_deblurnet.py [--weights W.pt] [--out training/logs/eval_deblurnet]
        [--sheet docs/img/deblur_photos.png]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from refocus.bench.metrics import compute_metrics
from refocus.deblur import deblur
from refocus.deblur.classical import UNSHARP_AMOUNT, UNSHARP_RADIUS_PX
from refocus.deblur.classical import DEFAULT_NSR, unsharp_mask, wiener_deblur

ROOT = Path(__file__).resolve().parents[1]


LOCAL = ("synthetic-ours", "photos-holdout")


def cases(data=("lightfield", "synthetic", "synthetic-ours")):
    from refocus.bench.methods import Case
    from refocus.bench.quality import build_cases
    from refocus.bench.scenes import frozen_pair_set

    out, notes = build_cases(["deblur"], [d for d in data if d not in LOCAL])
    if "synthetic-ours" in data:
        for i, (inp, tgt, _) in enumerate(frozen_pair_set(n=8, size=96)):
            out.append(Case("deblur", "synthetic-ours", f"ours{i:02d}", inp, tgt))
    if "photos-holdout" in data:
        # Pairs made from the held-out corpus photos (never trained on), by the training
        # generator with its own seeds: the same distribution as training, unseen content.
        import sys

        sys.path.insert(0, str(ROOT / "training"))
        import photo_pairs

        pool = photo_pairs.load_pool(ROOT / ".trainpool", "holdout")
        for i in range(16):
            p = photo_pairs.make_pair(np.random.default_rng([2 * 10 ** 6, i]), pool, 256)
            out.append(Case("deblur", "photos-holdout", f"hold{i:02d}", p["input"].astype(np.float32) / 255,
                            p["target"].astype(np.float32) / 255))
    return out, notes


def methods(weights, baselines=True):
    """Methods to score; ``weights`` maps a label to a weights file (None: shipped)."""
    cache = {}

    def net(w, img, guard=True):
        key = (w, id(img), guard)
        if key not in cache:
            cache[key] = deblur(img, weights=w, guard=guard)
        return cache[key]

    out = {"input": lambda c: c.input} if baselines else {}
    for label, w in weights.items():
        out[f"deblurnet{label}"] = lambda c, w=w: net(w, c.input)[0]
        out[f"deblurnet-raw{label}"] = lambda c, w=w: net(w, c.input, guard=False)[0]
    if baselines:
        first = next(iter(weights.values()))
        out["wiener"] = lambda c: wiener_deblur(c.input, net(first, c.input)[1], nsr=DEFAULT_NSR)
        out["unsharp"] = lambda c: unsharp_mask(c.input, UNSHARP_RADIUS_PX, UNSHARP_AMOUNT)
    return out


def photo_sheet(weights, path: Path, max_side: int = 768) -> None:
    """Before/after sheet on the shared real photos.

    Per photo: 2x-zoomed crops of input | DeblurNet | unsharp mask, then the full
    input, DeblurNet's output and its defocus map (white = the map's maximum).
    """
    from PIL import Image

    from refocus.io import read_image, write_image

    rows = []
    for f in sorted((ROOT.parent / "shared/data/photos").glob("*.jpg")):
        img, _ = read_image(f)
        h, w = img.shape[:2]
        s = max_side / max(h, w)
        if s < 1:
            pil = Image.fromarray((img * 255 + 0.5).astype(np.uint8)).resize((round(w * s), round(h * s)), Image.LANCZOS)
            img = np.asarray(pil, dtype=np.float32) / 255.0
        out, dmap = deblur(img, weights=weights)
        usm = unsharp_mask(img, UNSHARP_RADIUS_PX, UNSHARP_AMOUNT)
        h, w = img.shape[:2]
        c = 160
        # Crop where the net sees blur *and* there is structure to restore (not flat sky).
        grad = np.hypot(*np.gradient(img.mean(axis=2)))
        ys, xs = np.unravel_index(np.argmax(_box(dmap, c) * _box(grad, c)), dmap.shape)
        y0, x0 = int(np.clip(ys - c // 2, 0, h - c)), int(np.clip(xs - c // 2, 0, w - c))
        crops = [a[y0 : y0 + c, x0 : x0 + c] for a in (img, out, usm)]
        crops = [np.kron(a, np.ones((2, 2, 1), np.float32)) for a in crops]  # 2x nearest zoom
        dm = np.repeat((dmap / max(float(dmap.max()), 1e-6))[..., None], 3, axis=2)
        thumbs = [_fit(a, 2 * c) for a in (img, out, dm)]
        row = np.concatenate(crops + thumbs, axis=1)
        rows.append(row)
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=1.0) for r in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, np.concatenate(rows, axis=0))


def _box(x, c):
    from scipy.ndimage import uniform_filter

    return uniform_filter(x, size=c)


def _fit(img, side):
    from PIL import Image

    h, w = img.shape[:2]
    s = side / max(h, w)
    pil = Image.fromarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)).resize((max(1, round(w * s)), max(1, round(h * s))))
    a = np.asarray(pil, dtype=np.float32) / 255.0
    return np.pad(a, ((0, side - a.shape[0]), (0, side - a.shape[1]), (0, 0)), constant_values=1.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", type=Path, nargs="*", default=None,
                    help="weights files (default: the shipped ones); several are compared side by side")
    ap.add_argument("--out", type=Path, default=ROOT / "training/logs/eval_deblurnet")
    ap.add_argument("--sheet", type=Path, default=None)
    ap.add_argument("--no-lpips", action="store_true")
    ap.add_argument("--data", default="lightfield,synthetic,synthetic-ours")
    args = ap.parse_args()
    t0 = time.time()
    cs, notes = cases(tuple(args.data.split(",")))
    if not args.weights:
        weights = {"": None}
    elif len(args.weights) == 1:
        weights = {"": args.weights[0]}
    else:
        weights = {f"[{w.parent.name}/{w.stem}]": w for w in args.weights}
    meths = methods(weights)
    records = []
    for c in cs:
        for name, fn in meths.items():
            out = fn(c)
            m = compute_metrics(out, c.target, crop_px=c.crop_px, with_lpips=not args.no_lpips)
            records.append({"dataset": c.dataset, "case": c.name, "method": name, **m})
        print(f"{c.dataset} {c.name}: " + " ".join(
            f"{r['method']}={r['psnr']:.2f}dB/{(r['lpips'] or 0):.3f}" for r in records[-len(meths):]), flush=True)
    summary: dict = {}
    for ds in dict.fromkeys(r["dataset"] for r in records):
        for name in meths:
            rs = [r for r in records if r["dataset"] == ds and r["method"] == name]
            summary.setdefault(ds, {})[name] = {
                k: float(np.mean([r[k] for r in rs])) if rs[0][k] is not None else None for k in ("psnr", "ssim", "lpips")
            }
    lines = ["| dataset | method | PSNR dB | SSIM | LPIPS |", "|---|---|---|---|---|"]
    for ds, per in summary.items():
        for name, m in per.items():
            lp = f"{m['lpips']:.4f}" if m["lpips"] is not None else "-"
            lines.append(f"| {ds} | {name} | {m['psnr']:.2f} | {m['ssim']:.4f} | {lp} |")
    table = "\n".join(lines)
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({"summary": summary, "records": records, "notes": notes,
                                                         "weights": {k: str(v or "shipped") for k, v in weights.items()},
                                                         "seconds": round(time.time() - t0)}, indent=1))
    args.out.with_suffix(".md").write_text(table + "\n")
    if args.sheet:
        photo_sheet(next(iter(weights.values())), args.sheet)
        print(f"sheet -> {args.sheet}")


if __name__ == "__main__":
    main()
