"""``refocus bench quality``, ``refocus bench speed`` and ``refocus bench robustness``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

bench_app = typer.Typer(help="Benchmarks: image quality against ground truth, and speed.", no_args_is_help=True)


@bench_app.command("quality")
def quality_cmd(
    task: str = typer.Option("all", "--task", help="bokeh, deblur, refocus, a comma-separated list, or all."),
    data: str = typer.Option(
        "lightfield",
        "--data",
        help="lightfield (hci-antinous, half res), lytro1g (real Lytro captures, estimated depth), lightfield:DIR (input_CamNNN.png + gt_disp_lowres.pfm, or a decoded Lytro capture), synthetic, paired:DIR (an input folder, e.g. inputC/ or blur/, and a target folder, e.g. target/ or gt/, images of the same names; deblur only), lensblur[:DIR] (Lens Blur JPEGs: rendered photo -> stored original for deblur, -> original refocused behind the subject for refocus), or all; comma-separated.",
    ),
    out: Path = typer.Option(Path("bench-out/quality"), "--out", help="Folder for report.md, report.json and contact sheets."),
    quick: bool = typer.Option(False, "--quick", help="A few small cases (smoke test, under a minute)."),
    methods: Optional[str] = typer.Option(None, "--methods", help="Only these methods, comma-separated (default: all registered)."),
    lpips_weights: Optional[Path] = typer.Option(
        None, "--lpips-weights", help="LPIPS AlexNet weights (default: $REFOCUS_LPIPS_WEIGHTS, else the weights shipped with refocus, else ../shared/data/lpips/alexnet.ckpt)."
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace report.md, report.json or contact-*.png in --out that are not an earlier report's."
    ),
) -> None:
    """Score every registered method on every case; write report.md, report.json and contact-<task>.png."""
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    from refocus.cli._console import progress_bar
    from rich.table import Table

    from refocus.bench import quality as q
    from refocus.bench.report import check_quality_out, write_report

    tasks = q.parse_tasks(task)
    specs = q.parse_data(data)
    # Before the run: a bad --out found after an hour of scoring loses the hour.
    check_quality_out(out, overwrite)
    from refocus.errors import RefocusError

    names = [m.strip() for m in methods.split(",") if m.strip()] if methods is not None else None
    if names is not None and not names:
        # "" ran every method and "," gave "none of --methods  does ..." (found 2026-12-07).
        raise RefocusError("empty --methods list: name one or more methods, or leave --methods out for all")
    console = Console(stderr=True)
    cols = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with progress_bar(console, *cols) as prog:
        bar = prog.add_task("preparing", total=None)
        cb = q.Progress(
            start=lambda total: prog.update(bar, total=total, completed=0, description="scoring"),
            advance=lambda desc: prog.update(bar, advance=1, description=desc[:70]),
            status=lambda msg: prog.update(bar, description=msg[:70]),
        )
        run = q.run_quality(tasks, specs, names, quick=quick, lpips_weights=lpips_weights, progress=cb)
    summary = q.summarise(run)
    if not summary:
        # An empty report looks like a result; say what was missing instead.
        from refocus.errors import RefocusError

        missing = [n for n in run.notes if "not found" in n or "skipped" in n] or run.notes
        raise RefocusError("nothing was scored, no report written: " + ("; ".join(missing) if missing else "no cases")
                           + " (--data synthetic needs no files)")
    written = write_report(run, out)
    for t, per_ds in summary.items():
        for ds, rows in per_ds.items():
            table = Table(title=f"{t} / {ds}")
            for col in ("method", "n", "PSNR", "SSIM", "LPIPS", "s/case"):
                table.add_column(col, justify="left" if col == "method" else "right")
            for name, r in rows.items():
                table.add_row(
                    name,
                    str(r["n"]),
                    f"{r['psnr']:.2f}",
                    f"{r['ssim']:.4f}",
                    "–" if r["lpips"] is None else f"{r['lpips']:.3f}",
                    f"{r['seconds']:.2f}",
                )
            Console().print(table)
    for note in run.notes:
        console.print(f"[dim]note: {escape(note)}[/dim]")
    console.print(escape(f"wrote {written['md']}, {written['json']}" + "".join(f", {p}" for p in written["sheets"])))


@bench_app.command("speed")
def speed_cmd(
    out: Path = typer.Option(Path("bench-out/speed"), "--out", help="Folder for the speed report."),
    device: str = typer.Option("auto", "--device", help="cpu, cuda or auto."),
    quick: bool = typer.Option(False, "--quick", help="Small sizes and few repeats (smoke test)."),
    stages: str = typer.Option(
        "render,deblur,depth,pipeline,interactive,grain", "--stages",
        help="Comma-separated: render, deblur, depth, pipeline, interactive, grain."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace speed.json or speed.md in --out that are not an earlier speed report's."),
    quality: str = typer.Option("balanced", "--quality", help="The renderer's quality for the render stage: fast, balanced or high."),
) -> None:
    """Time the renderer, DeblurNet, the depth stage, the pipeline, the UI's re-render and --grain."""
    from refocus.bench.report import check_speed_out
    from refocus.errors import RefocusError

    if device not in ("cpu", "cuda", "auto"):
        raise RefocusError(f"--device must be cpu, cuda or auto, got {device!r}")
    try:
        from refocus.bench.speed import run_speed
    except ImportError as exc:
        raise RefocusError(f"the speed benchmark is not available in this installation ({exc})") from None
    chosen = tuple(dict.fromkeys(s.strip() for s in stages.split(",") if s.strip()))
    known = ("render", "deblur", "depth", "pipeline", "interactive", "grain")
    if not chosen or any(s not in known for s in chosen):
        raise RefocusError(f"--stages must be a comma-separated list of {', '.join(known)}, got {stages!r}")
    if quality not in ("fast", "balanced", "high"):
        raise RefocusError(f"--quality must be fast, balanced or high, got {quality!r}")
    check_speed_out(out, overwrite)
    run_speed(out_dir=out, device=device, quick=quick, stages=chosen, quality=quality)


@bench_app.command("tables")
def tables_cmd(
    reports: list[Path] = typer.Argument(
        ..., metavar="REPORT.json", help="report.json files of `refocus bench quality` and/or speed.json files of `refocus bench speed`."
    ),
    readme: Optional[Path] = typer.Option(
        None, "--readme",
        help="Replace the tables between <!-- tables:KEY --> and <!-- /tables:KEY --> in this file "
        "(keys quality:bokeh, quality:refocus, quality:deblur, speed:cpu, speed:cuda); default: print them.",
    ),
    datasets: Optional[str] = typer.Option(
        None, "--datasets",
        help="Columns of the quality tables, comma-separated, in this order "
        "(default: every dataset in the reports except the no-depth refocus tracks).",
    ),
) -> None:
    """The README's measured-quality and speed tables, rendered from benchmark reports."""
    import shlex

    from refocus.bench import tables as tb

    sources = tb.load_reports(reports)
    cols = [d.strip() for d in datasets.split(",") if d.strip()] if datasets else None
    # The generated line names the command; the arguments as given keep it reproducible
    # from where it was run and the same on every rerun.
    args = [str(p) for p in reports] + (["--datasets", datasets] if datasets else []) + (["--readme", str(readme)] if readme else [])
    command = "refocus bench tables " + " ".join(shlex.quote(a) for a in args)
    blocks = tb.render_blocks(sources, command, cols)
    if readme is None:
        typer.echo("\n\n".join(tb.wrap(k, b) for k, b in blocks.items()))
        return
    changed = tb.update_readme(readme, blocks)
    typer.echo(f"{'updated' if changed else 'unchanged'}: {readme} ({', '.join(blocks)})", err=True)


@bench_app.command("robustness")
def robustness_cmd(
    data: Optional[Path] = typer.Option(
        None, "--data", help="The shared data folder (default: $REFOCUS_SHARED/data, else ../shared/data beside the current folder or the repository)."
    ),
    mutants: int = typer.Option(300, "--mutants", help="How many mutated files to run."),
    seed: int = typer.Option(0, "--seed", help="Random seed of the mutations."),
    out: Path = typer.Option(Path("bench-out/robustness.json"), "--out", help="JSON report (every run, and per-class medians/peaks)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an --out file that is not an earlier robustness report."),
) -> None:
    """Mutated photos and depth maps through info/depth: exit codes, time and peak memory per input class."""
    from rich.console import Console
    from rich.table import Table

    from refocus.bench import robustness as rb
    from refocus.errors import RefocusError

    if mutants < 1:
        raise RefocusError(f"--mutants must be at least 1, got {mutants}")
    data_dir = data or rb.data_dir_default()
    sources, photo = rb.default_sources(data_dir)
    if not sources:
        raise RefocusError(f"no input files under {data_dir} (phone-depth/, photos/)")
    rb.check_out(out, sources + ([photo] if photo else []), overwrite)
    from refocus.cli import main

    runs = rb.run_fuzz(sources, mutants, seed, photo_for_depth=photo, cli_main=main)
    table = Table(title=f"{len(runs)} runs of {mutants} mutants (seed {seed})")
    for col in ("input class", "runs", "exit codes", "median s", "max s", "median MiB", "peak MiB"):
        table.add_column(col, justify="left" if col in ("input class", "exit codes") else "right")
    for key, r in rb.summarise(runs).items():
        codes = " ".join(f"{c}:{n}" for c, n in sorted(r["exit_codes"].items()))
        table.add_row(key, str(r["runs"]), codes, f"{r['median_s']:.3f}", f"{r['max_s']:.3f}", f"{r['median_peak_mb']:.0f}", f"{r['peak_mb']:.0f}")
    Console().print(table)
    Console(stderr=True).print(f"wrote {rb.write_json(runs, out, seed, mutants)}")


def register(app: typer.Typer) -> None:
    app.add_typer(bench_app, name="bench")
