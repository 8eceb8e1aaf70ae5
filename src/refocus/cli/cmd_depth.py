"""``refocus depth``: find or estimate a photo's depth and write it out."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def depth_cmd(
    image: Path = typer.Argument(..., help="The photo (JPEG, HEIC, PNG, TIFF, WebP)."),
    output: Path = typer.Option(..., "--output", "-o", help="Where to write the depth used (.npy, .pfm or .tif, float32; .npy and .tif record whether it is depth or disparity, which --depth then honours)."),
    depth: Optional[Path] = typer.Option(None, "--depth", "-d", help="Use this depth/disparity map (.npy, .pfm, PNG, TIFF, EXR)."),
    depth_kind: Optional[str] = typer.Option(None, "--depth-kind", help="What --depth holds: disparity (larger = nearer, default) or depth."),
    model: Optional[str] = typer.Option(
        None, "--depth-model", "--model",
        help="Depth network: a Hugging Face model id or local folder (default depth-anything/Depth-Anything-V2-Small-hf, downloaded on first use).",
    ),
    no_estimate: bool = typer.Option(False, "--no-estimate", help="Only use stored depth (file or embedded); never estimate."),
    no_refine: bool = typer.Option(False, "--no-refine", help="Plain bilinear resize of a map of another size, instead of aligning its edges with the photo."),
    align_depth: bool = typer.Option(False, "--align-depth", help="Align a map already at the photo's size with the photo's edges too (by default it is used as it is)."),
    device: str = typer.Option("cpu", "--device", help="Torch device for the depth network."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing OUTPUT-disparity.png and OUTPUT-preview.png."),
) -> None:
    """Write the depth refocusing would use, and say where it came from.

    Beside OUTPUT it also writes OUTPUT-disparity.png (16-bit, normalised disparity,
    white = near) and OUTPUT-preview.png (coloured, bright = near); existing files of
    those names are kept (an error) unless --overwrite. Without --depth, a map next to
    the photo named PHOTO-disparity.png (.npy, .pfm, .tif, .exr) is used. Without
    either and without depth embedded in the photo, the depth network is used
    (--depth-model; transformers now comes with refocus, the old extra refocus[depth]
    is empty); when it cannot be had, the photo's own blur (refused for a photo in
    focus everywhere).
    """
    from rich.markup import escape

    from refocus.cli._console import print_notes, stderr_console
    from refocus.depth import get_depth
    from refocus.depth.preview import DEPTH_SUFFIXES, sidecar_paths, write_depth_outputs
    from refocus.errors import RefocusError
    from refocus.pipeline.options import check_output, command_inputs

    console = stderr_console()
    if no_refine and align_depth:
        raise RefocusError("give either --no-refine or --align-depth, not both")
    if depth_kind is not None and depth_kind not in ("disparity", "depth"):
        raise RefocusError(f"--depth-kind must be disparity or depth, got {depth_kind!r}")
    protect = [p for p in command_inputs(image, depth) if p is not None]
    if model is not None and Path(model).exists():
        protect.append(Path(model))
    # Before the work: float32 map + 16-bit PNG + 8-bit RGB preview = 9 bytes per pixel.
    # (no sidecars for a name-less "-o .": check_output says it is a folder)
    check_output(output, protect, suffixes=DEPTH_SUFFIXES, unnamed=sidecar_paths(output) if output.name else (), overwrite=overwrite,
                 photo=image, bytes_per_pixel=9)
    with console.status("finding depth…"):
        res = get_depth(
            image, depth_path=depth, depth_kind=depth_kind, model=model,
            allow_estimate=not no_estimate, refine=False if no_refine else (True if align_depth else None), device=device,
        )
    for note in res.notes:
        console.print(f"[dim]- {escape(note)}[/]")
    written = write_depth_outputs(output, res.values, res.disparity(), protect=protect, kind=res.kind, metric=res.metric)
    if res.metric:
        # In metres whatever the map holds, as `refocus info` says them and --focus-value
        # takes them (an iPhone's disparity was reported in 1/m only); the range of the
        # map written.
        from refocus.depth import to_disparity

        disp = to_disparity(res.values, res.kind)
        lo, hi = float(disp.min()), float(disp.max())
        far = f"{1.0 / lo:.3g} m" if lo > 0 else "infinity"
        near = f"{1.0 / hi:.3g} m" if hi > 0 else "infinity"
        meaning = f"metric {res.kind}, distances {near} .. {far}"
        if res.kind == "disparity":
            meaning += f" (disparity {lo:.3g} .. {hi:.3g} 1/m)"
    else:
        meaning = f"relative {res.kind}" + (" (larger = nearer)" if res.kind == "disparity" else " (larger = farther)")
    h, w = res.values.shape
    console.print(f"depth from [bold]{escape(res.source)}[/]: {escape(meaning)}, {w}x{h}")
    console.print(escape(f"wrote {written[0]} (float32 {res.kind}), {written[1].name} (16-bit disparity), {written[2].name} (preview)"))
    if written[0].suffix.lower() == ".pfm" and res.kind != "disparity":
        # PFM has no room to record what it holds; --depth reads a map as disparity by default.
        print_notes(console, [f"{written[0].name} holds {res.kind} (larger = farther), which PFM cannot record: give it back "
                              f"with --depth-kind {res.kind}, or write .npy or .tif, which record it"])
    elif written[0].suffix.lower() == ".pfm" and res.metric:
        # No --depth-kind makes a disparity metric again: the iPhone's metres were lost unsaid.
        print_notes(console, [f"{written[0].name} holds disparity in 1/m, which PFM cannot record: given back with --depth it is "
                              "relative (no distances in metres, no --f-number); write .npy or .tif, which record it"])


def register(app: typer.Typer) -> None:
    app.command("depth")(depth_cmd)
