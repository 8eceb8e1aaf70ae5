"""``refocus batch``: every photo of a folder, in parallel, resumable."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from refocus.cli.cmd_refocus import (
    AlignDepthOpt, ApertureOpt, BladesOpt, CatsEyeOpt, CurvatureOpt, RimOpt, RingOpt, DepthKindOpt, DepthModelOpt, DeviceOpt, FNumberOpt, FullFrameOpt, SensorWidthOpt, FocusOpt,
    FocusRangeOpt, FocusValueOpt, HighlightOpt, HighlightThresholdOpt, JpegQualityOpt, MaxMpOpt, GrainOpt, NoDeblurOpt, QualityOpt, RotationOpt, StrengthOpt,
)
from refocus.io.outputs import check_jpeg_quality


def register(app: typer.Typer) -> None:
    @app.command("batch")
    def batch_cmd(
        folder: Path = typer.Argument(..., help="Folder of photos."),
        output_dir: Path = typer.Option(..., "--output", "-o", help="Output folder (created if missing)."),
        focus: Optional[str] = FocusOpt,
        focus_value: Optional[str] = FocusValueOpt,
        focus_range: Optional[str] = FocusRangeOpt,
        strength: Optional[str] = StrengthOpt,
        f_number: Optional[float] = FNumberOpt,
        full_frame: bool = FullFrameOpt,
        sensor_width: Optional[float] = SensorWidthOpt,
        aperture: str = ApertureOpt,
        blades: int = BladesOpt,
        rotation: float = RotationOpt,
        curvature: float = CurvatureOpt,
        cats_eye: float = CatsEyeOpt,
        rim: float = RimOpt,
        ring: float = RingOpt,
        depth_dir: Optional[Path] = typer.Option(
            None, "--depth-dir",
            help="Folder of depth maps (default: next to the photos). Given, every photo needs its map there: one without "
            "fails, and no other depth (a map beside it, one embedded in it, the network) stands in for it.",
        ),
        depth_suffix: Optional[str] = typer.Option(
            None, "--depth-suffix",
            help="Depth map of PHOTO.jpg is PHOTO<suffix>.png/.npy/... (default -disparity). Given, every photo needs "
            "that map, as with --depth-dir. Without either, a photo with no map gets its depth as `refocus refocus` would.",
        ),
        depth_kind: Optional[str] = DepthKindOpt,
        depth_model: Optional[str] = DepthModelOpt,
        align_depth: bool = AlignDepthOpt,
        no_deblur: bool = NoDeblurOpt,
        grain: bool = GrainOpt,
        device: str = DeviceOpt,
        quality: str = QualityOpt,
        highlight_gain: Optional[float] = HighlightOpt,
        highlight_threshold: Optional[float] = HighlightThresholdOpt,
        max_megapixels: Optional[float] = MaxMpOpt,
        fmt: Optional[str] = typer.Option(None, "--format", help="Output format (jpg, png, tif, webp); default: the input's."),
        jpeg_quality: int = JpegQualityOpt,
        workers: Optional[int] = typer.Option(None, "--workers", "-j", help="Parallel processes (default: CPU cores)."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Redo photos whose output already exists."),
    ) -> None:
        """Refocus every photo in FOLDER into --output (existing outputs are kept: reruns resume)."""
        from rich.console import Console
        from rich.markup import escape
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

        from refocus.cli._console import progress_bar

        from refocus.errors import RefocusError
        from refocus.pipeline.batch import run_batch
        from refocus.pipeline.options import build_config

        if workers is not None and workers < 1:
            raise RefocusError(f"--workers must be >= 1, got {workers}")
        check_jpeg_quality(jpeg_quality, "--jpeg-quality")
        if depth_dir is not None and not depth_dir.is_dir():
            raise RefocusError(f"--depth-dir is not a folder: {depth_dir}")
        cfg = build_config(
            focus=focus, focus_value=focus_value, focus_range=focus_range, strength=strength, f_number=f_number, full_frame=full_frame, sensor_width_mm=sensor_width, aperture=aperture,
            blades=blades, rotation=rotation, curvature=curvature, cats_eye=cats_eye, rim=rim, ring=ring, depth_kind=depth_kind, depth_model=depth_model, align_depth=align_depth,
            no_deblur=no_deblur, grain=grain, device=device, quality=quality, highlight_gain=highlight_gain, highlight_threshold=highlight_threshold,
            max_megapixels=max_megapixels,
        )
        console = Console(stderr=True, soft_wrap=True)
        cols = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        prog = progress_bar(console, *cols, transient=False)
        task = prog.add_task("refocusing", total=None)

        def started(n: int) -> None:
            # Shown only once the checks passed: a refusal stays one line.
            prog.update(task, total=n)
            prog.start()

        first_with: dict[str, str] = {}  # each failure's message, and the first file it was said for

        def progressed(name: str, status: str, msg: str) -> None:
            prog.advance(task)
            if status != "done":
                # A folder of photos failing alike (no depth, all in focus) printed the
                # same paragraph once per photo, and again in the summary.
                if msg in first_with:
                    prog.console.print(f"[red]failed[/] {escape(shown(name))}: as {escape(first_with[msg])}")
                else:
                    first_with[msg] = shown(name)
                    prog.console.print(f"[red]failed[/] {escape(shown(name))}: {escape(msg)}")

        try:
            summary = run_batch(
                folder, output_dir, cfg, workers=workers, depth_dir=depth_dir, depth_suffix=depth_suffix,
                fmt=fmt, jpeg_quality=jpeg_quality, overwrite=overwrite, on_start=started, on_progress=progressed,
            )
        finally:
            if prog.live.is_started:  # a progress display never started prints an empty line when stopped
                prog.stop()
        for name, why in summary.redone:
            console.print(f"[yellow]redone[/] {escape(shown(name))}: {escape(why)}")
        console.print(escape(
            f"{len(summary.done)} refocused, {len(summary.kept)} already done (kept), {len(summary.skipped)} skipped, "
            f"{len(summary.failed)} failed -> {output_dir} in {summary.seconds:.0f} s"
        ))
        notes = list(_grouped(summary.notes).items())
        for note, names in notes[:_LIST_EACH]:
            console.print(escape(f"note: {_some(names)}: {note}"))
        if len(notes) > _LIST_EACH:  # notes with per-photo numbers: not one line each for 2,000 photos
            rest = {n for _, names in notes[_LIST_EACH:] for n in names}
            console.print(escape(f"note: {len(notes) - _LIST_EACH} more notes on {_some(sorted(rest))} "
                                 "(`refocus refocus PHOTO` prints a photo's own)"))
        for why, names in _grouped(summary.stale).items():
            console.print(escape(
                f"note: {_some(names)} kept, {why}: --overwrite redoes "
                f"{'it' if len(names) == 1 else 'them'} (or choose another output folder)"
            ))
        if summary.skipped:
            console.print("skipped:")
            if len(summary.skipped) <= _LIST_EACH:
                for name, why in summary.skipped:
                    console.print(escape(f"  {shown(name)}: {why}"))
            else:  # a folder of 2,000 sidecar files: one line per reason, not per file
                for why, names in _grouped(summary.skipped).items():
                    console.print(escape(f"  {why}: {_some(names)}"))
        if summary.failed:
            console.print("failed:")
            for msg, names in _grouped(summary.failed).items():  # every failed file named: each needs redoing
                console.print(escape(f"  {', '.join(names)}: {msg}"))
            raise typer.Exit(1)


#: Up to this many skipped entries are listed one per line; more are grouped by reason.
_LIST_EACH = 12


def shown(name: str) -> str:
    """A file name as one printable line: control characters (a newline in a name) and
    bytes that are not UTF-8 are written as escapes (``\\n``, ``\\xe9``)."""
    out = []
    for ch in name:
        if 0xDC80 <= ord(ch) <= 0xDCFF:  # a byte the file system name held that is not UTF-8
            out.append(f"\\x{ord(ch) - 0xDC00:02x}")
        elif not ch.isprintable() and ch != " ":
            out.append(ch.encode("unicode_escape").decode("ascii"))
        else:
            out.append(ch)
    return "".join(out)


def _grouped(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for name, why in pairs:
        groups.setdefault(why, []).append(shown(name))
    return groups


def _some(names: list[str], n: int = 3) -> str:
    """"a.jpg" / "2 files (a.jpg, b.jpg)" / "2000 files (a.jpg, b.jpg, c.jpg and 1997 more)"."""
    if len(names) == 1:
        return names[0]
    listed = ", ".join(names[:n])
    more = f" and {len(names) - n} more" if len(names) > n else ""
    return f"{len(names)} files ({listed}{more})"
