"""Command-line options of the generative engine, shared by ``deblur``, ``render`` and ``refocus``."""

from __future__ import annotations

from typing import Optional

import typer

from refocus.errors import RefocusError

ENGINES = ("physical", "genfocus")

ENGINE_HELP = (
    "physical (default): refocus's own DeblurNet and layered renderer, fast on a CPU. "
    "genfocus: the seed paper's generative models, Genfocus DeblurNet + BokehNet (LoRAs on FLUX.1-dev, "
    "12 B parameters), with refocus's depth and focus; needs pip install 'refocus[genfocus]' and a CUDA GPU "
    "(up to about 45 GB in bf16, the authors' figure on an A6000; less with --offload), about 50 s per image; weights are downloaded "
    "on first use (FLUX.1-dev is gated: accept its licence on huggingface.co, then `hf auth login`) "
    "or read from --genfocus-weights DIR / --base-model PATH. BokehNet takes no aperture shape."
)

EngineOpt = typer.Option("physical", "--engine", help=ENGINE_HELP)
GenfocusWeightsOpt = typer.Option(
    None, "--genfocus-weights",
    help="genfocus: folder with deblurNet.safetensors, bokehNet.safetensors (and deblurNet_with_pre_deblur.safetensors); "
    "default: nycu-cplab/Genfocus-Model from the hub.",
)
BaseModelOpt = typer.Option(
    None, "--base-model", help="genfocus: FLUX.1-dev as a local diffusers folder or a hub id (default black-forest-labs/FLUX.1-dev)."
)
StepsOpt = typer.Option(28, "--genfocus-steps", help="genfocus: denoising steps (Genfocus's default 28).")
SeedOpt = typer.Option(None, "--seed", help="genfocus: seed of the initial noise (default: Genfocus's, 42 / 1234).")
NoTilingOpt = typer.Option(False, "--no-tiling", help="genfocus: denoise whole frames (tiles of 512 px by default from 512 px up).")
OffloadOpt = typer.Option(False, "--offload", help="genfocus: enable_model_cpu_offload (each model on the GPU only while it runs).")
DtypeOpt = typer.Option("auto", "--genfocus-dtype", help="genfocus: auto (bfloat16 on a GPU), bfloat16 or float32.")
LongSideOpt = typer.Option(0, "--long-side", help="genfocus: run the networks at this long side (px; 0 = the photo's size).")
PreDeblurOpt = typer.Option(
    False, "--pre-deblur", help="genfocus: DeblurNet's pre-deblur variant, given refocus's DeblurNet output as its pre-deblurred input."
)
GenfocusDeviceOpt = typer.Option(None, "--device", help="cpu, cuda or auto (default: cpu; auto with --engine genfocus).")


def genfocus_options(
    engine: str,
    device: Optional[str] = None,
    weights=None,
    base_model: Optional[str] = None,
    steps: int = 28,
    seed: Optional[int] = None,
    no_tiling: bool = False,
    offload: bool = False,
    dtype: str = "auto",
    long_side: int = 0,
    pre_deblur: bool = False,
):
    """GenfocusOptions for ``--engine genfocus``, None for the physical engine (whose
    runs refuse the generative engine's options rather than ignore them)."""
    if engine not in ENGINES:
        raise RefocusError(f"--engine must be physical or genfocus, got {engine!r}")
    if engine == "physical":
        given = [flag for flag, v, d in (
            ("--genfocus-weights", weights, None), ("--base-model", base_model, None), ("--genfocus-steps", steps, 28),
            ("--seed", seed, None), ("--no-tiling", no_tiling, False), ("--offload", offload, False),
            ("--genfocus-dtype", dtype, "auto"), ("--long-side", long_side, 0), ("--pre-deblur", pre_deblur, False),
        ) if v != d]
        if given:
            raise RefocusError(f"{given[0]} is an option of the generative engine: add --engine genfocus")
        return None
    from refocus.pipeline.genfocus import GenfocusOptions
    from refocus.pipeline.genfocus.weights import require_packages

    require_packages()
    return GenfocusOptions(
        weights=None if weights is None else str(weights), base_model=base_model, steps=steps, seed=seed,
        tiling=not no_tiling, device=device or "auto", dtype=dtype, offload=offload, long_side=long_side,
        pre_deblur=pre_deblur,
    ).validated()


def step_progress(console, what: str):
    """A context manager giving ``progress(done, total)`` for the denoising steps."""
    from contextlib import contextmanager

    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    from refocus.cli._console import progress_bar

    @contextmanager
    def cm():
        cols = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with progress_bar(console, *cols) as prog:
            task = prog.add_task(what, total=None)
            yield lambda done, total: prog.update(task, completed=done, total=total)

    return cm()
