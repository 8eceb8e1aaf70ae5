"""Train DeblurNet on pre-generated synthetic defocus pairs.

Data: shards written by ``training/make_dataset.py`` (layered thin-lens scenes,
float16 linear light). Each step draws random pairs, random crops, flips and 90-degree
rotations, and fresh camera degradations of the input (exposure, tone curve,
Poisson-Gaussian noise, softness, JPEG: :func:`refocus.bench.scenes.degrade`).

Losses: 20 x MSE on the sRGB image + 0.05 x L1 between the FFTs (keeps fine
detail, penalises ringing) + 0.01 x L1 on the defocus map (px).

The learning rate follows a cosine from ``--lr`` to 1 % of it; the schedule's
progress is ``max(step / steps, elapsed / time_budget)``, so a CPU run with a wall
time budget still anneals fully. Checkpoints (model, optimiser, step, elapsed time)
are written every ``--ckpt-every`` steps and on exit; the run resumes from
``--ckpt`` when it exists. Logs go to stdout and ``--log``.

CPU run used for the shipped weights (2 CPU cores shared with other jobs)::

    python training/make_dataset.py --shards 4 --per-shard 400
    nohup python training/train_deblurnet.py --device cpu --threads 1 --time-budget 1150 \
        --val-every 300 > training/logs/deblurnet.stdout 2>&1 &

GPU run (one H100; `--time-budget 420` stops training after 7 minutes. Not run here:
no GPU was available). Generate
more data first on the machine's 16 cores::

    seq 0 39 | xargs -P 14 -I{} python training/make_dataset.py --first-shard {} --shards 1
    python training/train_deblurnet.py --device cuda --steps 12000 --batch 32 --crop 128 \
        --workers 12 --time-budget 420 --width 32 --ckpt training/checkpoints/deblurnet_gpu.pt
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from refocus.deblur.model import DeblurNet, DeblurNetConfig, count_parameters
from refocus.bench.scenes import degrade, frozen_pair_set

ROOT = Path(__file__).resolve().parents[1]


def load_shards(data_dir: Path) -> dict[str, np.ndarray]:
    """Concatenate every finished shard in ``data_dir``."""
    files = sorted(data_dir.glob("shard_*.npz"))
    files = [f for f in files if not f.name.endswith(".tmp.npz")]  # a shard being written
    if not files:
        raise SystemExit(f"no shards in {data_dir}: run training/make_dataset.py first")
    parts = [np.load(f) for f in files]
    return {k: np.concatenate([p[k] for p in parts]) for k in ("sharp", "blurred", "defocus_px")}


def make_batch(data: dict[str, np.ndarray], rng: np.random.Generator, batch: int, crop: int, sharp_frac: float = 0.0,
               soft_prob: float = 0.5):
    """Random crops + dihedral augmentation + fresh degradations -> (inp, tgt, defocus) tensors.

    ``sharp_frac`` of the items are already in focus (input = sharp image, defocus 0):
    they teach the network to leave in-focus content alone, which it otherwise
    "restores" as if it were blurred.
    """
    n, size = data["sharp"].shape[:2]
    xs, ys, ds = [], [], []
    for _ in range(batch):
        i = int(rng.integers(n))
        y0, x0 = rng.integers(0, size - crop + 1, 2)
        sl = (i, slice(y0, y0 + crop), slice(x0, x0 + crop))
        sharp = data["sharp"][sl].astype(np.float32)
        blurred = data["blurred"][sl].astype(np.float32)
        dmap = data["defocus_px"][sl].astype(np.float32)
        k = int(rng.integers(4))
        flip = rng.random() < 0.5

        def aug(a):
            a = np.rot90(a, k, axes=(0, 1))
            return np.ascontiguousarray(a[:, ::-1] if flip else a)

        sharp, blurred, dmap = aug(sharp), aug(blurred), aug(dmap)
        if sharp_frac > 0 and rng.random() < sharp_frac:
            blurred, dmap = sharp.copy(), np.zeros_like(dmap)
        # A tenth of the inputs stay clean (no camera degradation).
        strength = 0.0 if rng.random() < 0.1 else float(rng.uniform(0.3, 1.0))
        inp, tgt = degrade(rng, blurred, sharp, strength, soft_prob=soft_prob)
        xs.append(inp.transpose(2, 0, 1))
        ys.append(tgt.transpose(2, 0, 1))
        ds.append(dmap[None])
    return (torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys)), torch.from_numpy(np.stack(ds)))


class BatchStream(torch.utils.data.IterableDataset):
    """Endless batches for a DataLoader (workers get distinct seeds)."""

    def __init__(self, data, seed: int, start_step: int, batch: int, crop: int, sharp_frac: float = 0.0,
                 soft_prob: float = 0.5):
        self.data, self.seed, self.start, self.batch, self.crop = data, seed, start_step, batch, crop
        self.sharp_frac, self.soft_prob = sharp_frac, soft_prob

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        wid, nw = (info.id, info.num_workers) if info else (0, 1)
        step = self.start + wid
        while True:
            yield make_batch(self.data, np.random.default_rng([self.seed, step]), self.batch, self.crop, self.sharp_frac,
                             self.soft_prob)
            step += nw


def losses(model, inp, tgt, dmap):
    """Total loss and its parts (Charbonnier image, FFT L1, defocus L1 px)."""
    pred, dpred = model(inp)
    charb = torch.sqrt((pred - tgt) ** 2 + 1e-6).mean()
    mse = ((pred - tgt) ** 2).mean()
    fft = (torch.fft.rfft2(pred) - torch.fft.rfft2(tgt)).abs().mean() / math.sqrt(pred.shape[-1] * pred.shape[-2])
    dl1 = (dpred - dmap).abs().mean()
    # MSE, not Charbonnier/L1, drives the image: with L1 the image branch stayed at
    # the identity for 1500 steps (the L1 gradient is sign noise on the many
    # almost-right pixels); MSE weights the large errors at blurred edges. The
    # defocus term is kept small so it does not dominate the shared trunk.
    total = 20.0 * mse + 0.05 * fft + 0.01 * dl1
    return total, {"mse": mse.item(), "charb": charb.item(), "fft": fft.item(), "defocus_l1_px": dl1.item()}


@torch.no_grad()
def validate(model, device, items) -> dict[str, float]:
    """Mean PSNR (dB) of input and output vs target and defocus MAE (px) on the frozen set."""
    model.eval()
    p_in, p_out, mae = [], [], []
    for inp, tgt, dmap in items:
        x = torch.from_numpy(inp.transpose(2, 0, 1))[None].to(device)
        y, d = model(x)
        y = y.clamp(0, 1)[0].cpu().numpy().transpose(1, 2, 0)
        p_in.append(-10 * np.log10(np.mean((inp - tgt) ** 2) + 1e-12))
        p_out.append(-10 * np.log10(np.mean((y - tgt) ** 2) + 1e-12))
        mae.append(float(np.abs(d[0, 0].cpu().numpy() - dmap).mean()))
    model.train()
    return {"psnr_in": float(np.mean(p_in)), "psnr_out": float(np.mean(p_out)), "defocus_mae_px": float(np.mean(mae))}


def export_weights(model: DeblurNet, path: Path, meta: dict) -> None:
    """Save a float32 state dict with the architecture config and training metadata."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"config": model.config.to_dict(), "state_dict": model.state_dict(), "meta": meta}, tmp)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description="Train DeblurNet")
    ap.add_argument("--data", type=Path, default=ROOT / "training/data")
    ap.add_argument("--steps", type=int, default=100000)
    ap.add_argument("--time-budget", type=float, default=1800.0, help="seconds of training (schedule and stop)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--crop", type=int, default=80)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--enc-blocks", type=str, default="1,1,2")
    ap.add_argument("--middle-blocks", type=int, default=4)
    ap.add_argument("--dec-blocks", type=str, default="1,1,1")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers for batch making")
    ap.add_argument("--ckpt", type=Path, default=ROOT / "training/checkpoints/deblurnet.pt")
    ap.add_argument("--ckpt-every", type=int, default=100)
    ap.add_argument("--val-every", type=int, default=250)
    ap.add_argument("--log-every", type=int, default=25)
    ap.add_argument("--log", type=Path, default=ROOT / "training/logs/deblurnet.log")
    ap.add_argument("--export", type=Path, default=ROOT / "training/weights/deblurnet-deadleaves-0.6M.pt")
    ap.add_argument("--val-n", type=int, default=8)
    ap.add_argument("--init", type=Path, default=None, help="start a new run from these exported weights (fine-tuning)")
    ap.add_argument("--sharp-frac", type=float, default=0.0, help="fraction of in-focus (identity) training pairs")
    ap.add_argument("--soft-prob", type=float, default=0.5, help="how often inputs get demosaicing-like softness")
    args = ap.parse_args(argv)

    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    args.log.parent.mkdir(parents=True, exist_ok=True)
    logf = args.log.open("a")

    def log(msg: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {msg}"
        print(line, flush=True)
        logf.write(line + "\n")
        logf.flush()

    cfg = DeblurNetConfig(
        width=args.width,
        enc_blocks=tuple(int(v) for v in args.enc_blocks.split(",")),
        middle_blocks=args.middle_blocks,
        dec_blocks=tuple(int(v) for v in args.dec_blocks.split(",")),
    )
    model = DeblurNet(cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4, betas=(0.9, 0.9))
    step, elapsed = 0, 0.0
    if args.ckpt.exists():
        ck = torch.load(args.ckpt, map_location=device, weights_only=False)
        if DeblurNetConfig.from_dict(ck["config"]) != cfg:
            raise SystemExit(f"checkpoint {args.ckpt} has another architecture: {ck['config']}")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step, elapsed = ck["step"], ck["elapsed"]
        log(f"resumed from {args.ckpt} at step {step} ({elapsed:.0f} s trained)")
    else:
        log(f"new run: {json.dumps(vars(args), default=str)}")
        if args.init is not None:
            blob = torch.load(args.init, map_location=device, weights_only=False)
            if DeblurNetConfig.from_dict(blob["config"]) != cfg:
                raise SystemExit(f"{args.init} has another architecture: {blob['config']}")
            model.load_state_dict(blob["state_dict"])
            log(f"initialised from {args.init} ({blob.get('meta', {}).get('steps', '?')} steps)")
    log(f"DeblurNet {cfg.to_dict()} params={count_parameters(model)} device={device} threads={torch.get_num_threads()}")

    def save_ckpt():
        args.ckpt.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.ckpt.with_suffix(".tmp")
        torch.save({"config": cfg.to_dict(), "model": model.state_dict(), "opt": opt.state_dict(),
                    "step": step, "elapsed": elapsed}, tmp)
        tmp.replace(args.ckpt)

    data = load_shards(args.data)
    n_loaded = len(list(args.data.glob("shard_*[0-9].npz")))
    log(f"data: {len(data['sharp'])} pairs of {data['sharp'].shape[1]} px from {args.data}")
    val_items = frozen_pair_set(n=args.val_n, size=96)
    stream = BatchStream(data, args.seed, step, args.batch, args.crop, args.sharp_frac, args.soft_prob)
    loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=args.workers,
                                         persistent_workers=args.workers > 0,
                                         prefetch_factor=4 if args.workers else None)
    it = iter(loader)
    model.train()
    t_last = time.time()
    run_avg: dict[str, float] = {}
    while True:
        progress = max(step / args.steps, elapsed / args.time_budget)
        if progress >= 1.0:
            break
        warm = min(1.0, (step + 1) / 200)
        lr = args.lr * warm * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress)))
        for g in opt.param_groups:
            g["lr"] = lr
        inp, tgt, dmap = (t.to(device, non_blocking=True) for t in next(it))
        loss, parts = losses(model, inp, tgt, dmap)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        opt.step()
        step += 1
        now = time.time()
        elapsed += now - t_last
        t_last = now
        for k, v in {"loss": loss.item(), **parts}.items():
            run_avg[k] = v if k not in run_avg else 0.9 * run_avg[k] + 0.1 * v
        if step % args.log_every == 0:
            log(f"step {step} t={elapsed:.0f}s lr={lr:.2e} " + " ".join(f"{k}={v:.4f}" for k, v in run_avg.items()))
        if step % args.ckpt_every == 0:
            save_ckpt()
        if args.workers == 0 and step % 200 == 0:
            # Shards may still be being generated when training starts: pick up new ones.
            n_files = len(list(args.data.glob("shard_*[0-9].npz")))
            if n_files > n_loaded:
                data = load_shards(args.data)
                n_loaded = n_files
                it = iter(BatchStream(data, args.seed, step, args.batch, args.crop, args.sharp_frac, args.soft_prob))
                log(f"data: now {len(data['sharp'])} pairs")
        if step % args.val_every == 0:
            v = validate(model, device, val_items)
            log(f"val step {step}: " + " ".join(f"{k}={x:.3f}" for k, x in v.items()))
            t_last = time.time()  # validation time is not training time
    save_ckpt()
    v = validate(model, device, val_items)
    log(f"final step {step} t={elapsed:.0f}s: " + " ".join(f"{k}={x:.3f}" for k, x in v.items()))
    meta = {"steps": step, "train_seconds": round(elapsed), "device": str(device),
            "batch": args.batch, "crop": args.crop, "pairs": int(len(data["sharp"])), "val": v}
    if args.export:
        export_weights(model.cpu(), args.export, meta)
        log(f"exported weights to {args.export}")
    logf.close()
    return {"step": step, "val": v}


if __name__ == "__main__":
    main()
