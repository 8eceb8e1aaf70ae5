"""Train DeblurNet on photo-like pairs made on the fly (issue 15).

Pairs come from :mod:`photo_pairs` (real photographs, real and synthetic depth
structure, the project's renderer, a camera model): ``--workers`` processes make
256-px pairs continuously into a replay buffer of ``--buffer`` pairs, and each step
trains on random crops of random buffer entries with the 8 dihedral transforms.
Rendering is the slow part (~0.2 s a pair on one core), so the buffer lets a fast
GPU reuse each pair a few times while fresh ones keep arriving.

Validation: ``--val-n`` pairs from the *held-out* photos (every fifth corpus photo,
never trained on), fixed seeds: PSNR of the input and the output against the target,
and the defocus map's error in px.

Losses as the first DeblurNet (training/train_deblurnet.py, where MSE was measured to
leave the identity much faster than Charbonnier): 20 x MSE (sRGB) + 0.05 x L1 of the
FFT difference + ``--defocus-weight`` x L1 of the defocus map (px).

GPU run (one H200, about 7 minutes in all; see docs/deblurnet.md)::

    python training/train_photo_deblurnet.py --device cuda --workers 14 --batch 24 --crop 192 \
        --time-budget 360 --out $OUT/deblurnet.pt --log $OUT/train.log

CPU run here (2 cores; a smaller model)::

    python training/train_photo_deblurnet.py --device cpu --workers 1 --threads 1 --batch 4 --crop 128 \
        --width 16 --enc-blocks 1,1,2 --middle-blocks 4 --time-budget 1800
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "training"))

from refocus.deblur.model import DeblurNet, DeblurNetConfig, count_parameters  # noqa: E402

_POOL = None


def _init_worker(pool_dir: str, split: str) -> None:
    global _POOL
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import photo_pairs

    import refocus.render.layered as layered

    layered._THREADS = False  # one process per core: no threads inside the renderer
    _POOL = photo_pairs.load_pool(Path(pool_dir), split)


def _make(args: tuple[int, int, int, bool, bool, float]):
    import photo_pairs

    seed, index, size, optics_softness, clean_target, processed = args
    return photo_pairs.make_pair(np.random.default_rng([seed, index]), _POOL, size, optics_softness, clean_target,
                                 processed)


class ReplayBuffer:
    """A ring of the most recent pairs, filled by a background thread."""

    def __init__(self, capacity: int, size: int):
        self.inp = np.zeros((capacity, size, size, 3), np.uint8)
        self.tgt = np.zeros((capacity, size, size, 3), np.uint8)
        self.dfc = np.zeros((capacity, size, size), np.float16)
        self.capacity, self.count, self.made = capacity, 0, 0
        self.lock = threading.Lock()

    def add(self, pair) -> None:
        with self.lock:
            i = self.made % self.capacity
            self.inp[i], self.tgt[i], self.dfc[i] = pair["input"], pair["target"], pair["defocus_px"]
            self.made += 1
            self.count = min(self.count + 1, self.capacity)

    def batch(self, rng, n: int, crop: int):
        with self.lock:
            idx = rng.integers(0, self.count, n)
        size = self.inp.shape[1]
        xs, ys, ds = [], [], []
        for i in idx:
            y0, x0 = rng.integers(0, size - crop + 1, 2)
            sl = (i, slice(y0, y0 + crop), slice(x0, x0 + crop))
            k, flip = int(rng.integers(4)), rng.random() < 0.5
            parts = []
            for a in (self.inp[sl], self.tgt[sl], self.dfc[sl]):
                a = np.rot90(a, k, axes=(0, 1))
                parts.append(np.ascontiguousarray(a[:, ::-1] if flip else a))
            xs.append(parts[0])
            ys.append(parts[1])
            ds.append(parts[2])
        to = lambda a: torch.from_numpy(np.stack(a)).permute(0, 3, 1, 2).float().div_(255.0)  # noqa: E731
        return to(xs), to(ys), torch.from_numpy(np.stack(ds).astype(np.float32))[:, None]


def losses(model, inp, tgt, dmap, defocus_weight: float):
    pred, dpred = model(inp)
    mse = ((pred - tgt) ** 2).mean()
    fft = (torch.fft.rfft2(pred) - torch.fft.rfft2(tgt)).abs().mean() / math.sqrt(pred.shape[-1] * pred.shape[-2])
    dl1 = (dpred - dmap).abs().mean()
    total = 20.0 * mse + 0.05 * fft + defocus_weight * dl1
    return total, {"mse": mse.item(), "fft": fft.item(), "defocus_l1_px": dl1.item()}


@torch.no_grad()
def validate(model, device, items) -> dict[str, float]:
    model.eval()
    p_in, p_out, mae, mae_in = [], [], [], []
    for pair in items:
        inp = pair["input"].astype(np.float32) / 255
        tgt = pair["target"].astype(np.float32) / 255
        dmap = pair["defocus_px"].astype(np.float32)
        x = torch.from_numpy(inp.transpose(2, 0, 1))[None].to(device)
        y, d = model(x)
        y = y.clamp(0, 1)[0].float().cpu().numpy().transpose(1, 2, 0)
        p_in.append(-10 * np.log10(np.mean((inp - tgt) ** 2) + 1e-12))
        p_out.append(-10 * np.log10(np.mean((y - tgt) ** 2) + 1e-12))
        mae.append(float(np.abs(d[0, 0].float().cpu().numpy() - dmap).mean()))
        mae_in.append(float(dmap.mean()))
    model.train()
    return {"psnr_in": float(np.mean(p_in)), "psnr_out": float(np.mean(p_out)),
            "defocus_mae_px": float(np.mean(mae)), "defocus_mae_zero_px": float(np.mean(mae_in))}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description="Train DeblurNet on photo-like pairs made on the fly")
    ap.add_argument("--pool", type=Path, default=ROOT / ".trainpool", help="photo pool (photo_pairs.py --build-pool)")
    ap.add_argument("--time-budget", type=float, default=360.0, help="seconds of training (schedule and stop)")
    ap.add_argument("--steps", type=int, default=10 ** 9)
    ap.add_argument("--batch", type=int, default=24)
    ap.add_argument("--crop", type=int, default=192)
    ap.add_argument("--size", type=int, default=256, help="side of the generated pairs, px")
    ap.add_argument("--buffer", type=int, default=6000)
    ap.add_argument("--optics-softness", action="store_true",
                    help="cameras with a soft lens at focus (photo_pairs.Camera; not in the shipped weights' run)")
    ap.add_argument("--clean-target", action="store_true",
                    help="targets without the Bayer mosaic (photo_pairs.make_pair; not in the shipped weights' run)")
    ap.add_argument("--processed", type=float, default=0.0,
                    help="share of already-processed photos: no mosaic, noise, denoising, sharpening or JPEG "
                         "(photo_pairs.make_pair; not in the shipped weights' run)")
    ap.add_argument("--min-buffer", type=int, default=200, help="pairs made before training starts")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--enc-blocks", default="1,1,3")
    ap.add_argument("--middle-blocks", type=int, default=6)
    ap.add_argument("--dec-blocks", default="1,1,1")
    ap.add_argument("--defocus-scale-px", type=float, default=8.0)
    ap.add_argument("--defocus-weight", type=float, default=0.005)
    ap.add_argument("--head-only", action="store_true",
                    help="train only the defocus map's output filters (the last convolution's defocus channels): "
                         "the all-in-focus image stays bit for bit that of --init")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 2))
    ap.add_argument("--val-n", type=int, default=24)
    ap.add_argument("--val-every", type=float, default=60.0, help="seconds between validations")
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--init", type=Path, default=None, help="start from these exported weights")
    ap.add_argument("--out", type=Path, default=ROOT / "training/checkpoints/deblurnet_photo.pt")
    ap.add_argument("--log", type=Path, default=ROOT / "training/logs/deblurnet-photo.log")
    args = ap.parse_args(argv)

    args.log.parent.mkdir(parents=True, exist_ok=True)
    logf = args.log.open("a")

    def log(msg: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {msg}"
        print(line, flush=True)
        logf.write(line + "\n")
        logf.flush()

    log(f"new run: {json.dumps(vars(args), default=str)}")

    def save(meta: dict) -> None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_suffix(".tmp")
        torch.save({"config": cfg.to_dict(), "state_dict": {k: t.detach().cpu() for k, t in model.state_dict().items()},
                    "meta": meta}, tmp)
        tmp.replace(args.out)

    # Workers start before any CUDA work (fork after CUDA init is unsafe; spawn is clean).
    ctx = mp.get_context("spawn")
    # What make_pair takes after (seed, index): one tuple for the validation and training pairs.
    pair_options = (args.size, args.optics_softness, args.clean_target, args.processed)
    train_pool = ctx.Pool(args.workers, _init_worker, (str(args.pool), "train"))
    t0 = time.time()
    with ctx.Pool(min(args.workers, args.val_n), _init_worker, (str(args.pool), "holdout")) as vp:
        val_items = vp.map(_make, [(10 ** 6 + args.seed, i, *pair_options) for i in range(args.val_n)])
    log(f"validation set: {len(val_items)} held-out pairs in {time.time() - t0:.0f} s")

    buf = ReplayBuffer(args.buffer, args.size)
    stop = threading.Event()

    def produce():
        jobs = ((args.seed, i, *pair_options) for i in range(10 ** 9))
        for pair in train_pool.imap_unordered(_make, jobs, chunksize=2):
            buf.add(pair)
            if stop.is_set():
                break

    threading.Thread(target=produce, daemon=True).start()

    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    cfg = DeblurNetConfig(width=args.width, enc_blocks=tuple(int(v) for v in args.enc_blocks.split(",")),
                          middle_blocks=args.middle_blocks, dec_blocks=tuple(int(v) for v in args.dec_blocks.split(",")),
                          defocus_scale_px=args.defocus_scale_px)
    model = DeblurNet(cfg).to(device)
    if args.init is not None:
        blob = torch.load(args.init, map_location=device, weights_only=False)
        model.load_state_dict(blob["state_dict"])
        log(f"initialised from {args.init}")
    log(f"DeblurNet {cfg.to_dict()} params={count_parameters(model)} device={device}")
    keep_image_rows = None
    if args.head_only:
        # The ending convolution's channels [4k, 4k + 4) become output channel k after the
        # pixel shuffle; channel 3 is the defocus map. Everything else is frozen, and the
        # image rows are restored after every step (AdamW's weight decay moves them even
        # with a zero gradient).
        for p_ in model.parameters():
            p_.requires_grad_(False)
        conv = model.ending[0]
        n_img = 3 * cfg.unshuffle * cfg.unshuffle
        conv.weight.requires_grad_(True)
        conv.bias.requires_grad_(True)
        keep_image_rows = (conv.weight.detach()[:n_img].clone(), conv.bias.detach()[:n_img].clone(), n_img)
    opt = torch.optim.AdamW([p_ for p_ in model.parameters() if p_.requires_grad], lr=args.lr, weight_decay=1e-4,
                            betas=(0.9, 0.9))

    while buf.count < args.min_buffer:
        time.sleep(0.5)
    log(f"buffer: {buf.count} pairs after {time.time() - t0:.0f} s; training")
    rng = np.random.default_rng(args.seed)
    step, elapsed, t_last, t_val = 0, 0.0, time.time(), 0.0
    run_avg: dict[str, float] = {}
    history = []
    model.train()
    while step < args.steps and elapsed < args.time_budget:
        progress = max(step / args.steps, elapsed / args.time_budget)
        warm = min(1.0, (step + 1) / 300)
        lr = args.lr * warm * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress)))
        for g in opt.param_groups:
            g["lr"] = lr
        inp, tgt, dmap = (t.to(device, non_blocking=True) for t in buf.batch(rng, args.batch, args.crop))
        loss, parts = losses(model, inp, tgt, dmap, args.defocus_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        opt.step()
        if keep_image_rows is not None:
            w_img, b_img, n_img = keep_image_rows
            with torch.no_grad():
                model.ending[0].weight[:n_img] = w_img
                model.ending[0].bias[:n_img] = b_img
        step += 1
        now = time.time()
        elapsed += now - t_last
        t_last = now
        for k, v in {"loss": loss.item(), **parts}.items():
            run_avg[k] = v if k not in run_avg else 0.95 * run_avg[k] + 0.05 * v
        if step % args.log_every == 0:
            log(f"step {step} t={elapsed:.0f}s lr={lr:.2e} made={buf.made} " +
                " ".join(f"{k}={v:.4f}" for k, v in run_avg.items()))
        if elapsed - t_val >= args.val_every:
            t_val = elapsed
            v = validate(model, device, val_items)
            history.append({"step": step, "t": round(elapsed), **v})
            log(f"val step {step}: " + " ".join(f"{k}={x:.3f}" for k, x in v.items()))
            save({"steps": step, "partial": True, "history": history})  # a run cut short keeps its weights
            t_last = time.time()
    stop.set()
    v = validate(model, device, val_items)
    log(f"final step {step} t={elapsed:.0f}s pairs made={buf.made}: " + " ".join(f"{k}={x:.3f}" for k, x in v.items()))
    meta = {"steps": step, "train_seconds": round(elapsed), "device": str(device),
            "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None,
            "batch": args.batch, "crop": args.crop, "pairs_made": buf.made, "val_heldout": v,
            "history": history, "data": "training/photo_pairs.py", "args": {k: str(x) for k, x in vars(args).items()}}
    save(meta)
    log(f"saved {args.out}")
    train_pool.terminate()
    logf.close()
    return {"step": step, "val": v}


if __name__ == "__main__":
    main()
