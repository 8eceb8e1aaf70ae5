"""The DeblurNet training script: a few CPU steps, loss decreases, checkpoints resume."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]


def _trainer():
    spec = importlib.util.spec_from_file_location("train_deblurnet", REPO / "training" / "train_deblurnet.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["train_deblurnet"] = mod
    spec.loader.exec_module(mod)
    return mod


def _write_shard(folder: Path, n: int = 4, size: int = 40) -> None:
    from refocus.bench.scenes import make_pair

    pairs = [make_pair(np.random.default_rng([7, i]), size, max_coc_px=4.0) for i in range(n)]
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(
        folder / "shard_000.npz",
        sharp=np.stack([p.sharp for p in pairs]).astype(np.float16),
        blurred=np.stack([p.blurred for p in pairs]).astype(np.float16),
        defocus_px=np.stack([p.defocus_px for p in pairs]).astype(np.float16),
    )


def test_loss_decreases_on_a_fixed_batch(tmp_path):
    tr = _trainer()
    from refocus.deblur.model import DeblurNet, DeblurNetConfig

    _write_shard(tmp_path / "data")
    data = tr.load_shards(tmp_path / "data")
    inp, tgt, dmap = tr.make_batch(data, np.random.default_rng(0), 4, 32)
    assert inp.shape == (4, 3, 32, 32) and dmap.shape == (4, 1, 32, 32)
    torch.manual_seed(0)
    net = DeblurNet(DeblurNetConfig(width=8, enc_blocks=(1, 1), dec_blocks=(1, 1), middle_blocks=1))
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    first = None
    for _ in range(25):
        loss, _parts = tr.losses(net, inp, tgt, dmap)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert tr.losses(net, inp, tgt, dmap)[0].item() < 0.8 * first


def test_training_run_checkpoint_and_resume(tmp_path):
    tr = _trainer()
    from refocus.deblur import load_model

    _write_shard(tmp_path / "data")
    common = [
        "--data", str(tmp_path / "data"), "--batch", "2", "--crop", "32", "--width", "8",
        "--enc-blocks", "1,1", "--dec-blocks", "1,1", "--middle-blocks", "1", "--device", "cpu",
        "--ckpt", str(tmp_path / "ck.pt"), "--log", str(tmp_path / "train.log"),
        "--export", str(tmp_path / "w.pt"), "--val-n", "1", "--log-every", "1", "--val-every", "1000",
        "--ckpt-every", "2", "--threads", "1",
    ]
    r1 = tr.main(common + ["--steps", "3"])
    assert r1["step"] == 3
    ck = torch.load(tmp_path / "ck.pt", weights_only=False)
    assert ck["step"] == 3
    r2 = tr.main(common + ["--steps", "5"])
    assert r2["step"] == 5
    log = (tmp_path / "train.log").read_text()
    assert "resumed from" in log and "at step 3" in log
    # The exported weights load through the public API and reproduce the checkpoint.
    ck = torch.load(tmp_path / "ck.pt", weights_only=False)
    model = load_model(tmp_path / "w.pt")
    for k, v in ck["model"].items():
        assert torch.equal(model.state_dict()[k], v), k
