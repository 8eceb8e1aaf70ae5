"""``refocus metrics A B``: PSNR, SSIM and LPIPS of two image files, as JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("metrics")
    def metrics_cmd(
        a: Path = typer.Argument(..., help="First image (e.g. the result)."),
        b: Path = typer.Argument(..., help="Second image (e.g. the ground truth)."),
        crop: int = typer.Option(0, "--crop", help="Border to ignore on every side, px.", min=0),
        lpips_weights: Optional[Path] = typer.Option(
            None,
            "--lpips-weights",
            help="LPIPS AlexNet weights (alexnet.ckpt); default: $REFOCUS_LPIPS_WEIGHTS, else the weights shipped with refocus, else ../shared/data/lpips/alexnet.ckpt.",
        ),
        no_lpips: bool = typer.Option(False, "--no-lpips", help="Skip LPIPS (no weights needed)."),
    ) -> None:
        """Print PSNR (dB, capped at 100 for identical images), SSIM and LPIPS of A against B as JSON."""
        from refocus.bench.metrics import compute_metrics
        from refocus.errors import RefocusError
        from refocus.io import read_image

        for p in (a, b):
            if not p.is_file():
                raise RefocusError(f"image not found: {p}")
        img_a, _ = read_image(a)
        img_b, _ = read_image(b)
        result = compute_metrics(img_a, img_b, crop_px=crop, with_lpips=not no_lpips, lpips_weights=lpips_weights)
        # "+ 0.0": black against white printed "psnr": -0.0 (found 2026-12-07).
        typer.echo(json.dumps({k: (round(v, 6) + 0.0 if v is not None else None) for k, v in result.items()}))
