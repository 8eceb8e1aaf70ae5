"""``refocus deblur``: all-in-focus recovery and a defocus map with DeblurNet."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from refocus.cli import _genfocus as G

#: Formats :func:`write_defocus_map` writes.
DEFOCUS_SUFFIXES = (".npy", ".tif", ".tiff", ".png", ".jpg", ".jpeg", ".webp")


def write_defocus_map(path: Path, defocus_px) -> str:
    """Write a defocus map; returns a one-line description of the encoding.

    ``.npy`` and ``.tif``/``.tiff`` keep float32 px; an image format (PNG...) gets
    the map scaled to its maximum (16-bit where the format allows), for viewing and
    for use as relative depth.
    """
    import numpy as np

    from refocus.errors import RefocusError
    from refocus.io import atomic_write_bytes, write_image

    ext = path.suffix.lower()
    d = np.asarray(defocus_px, dtype=np.float32)
    if ext == ".npy":

        def dump(tmp):
            with open(tmp, "wb") as f:
                np.save(f, d)

        atomic_write_bytes(path, dump)
        return "float32 CoC radius in px"
    if ext in (".tif", ".tiff"):
        import tifffile

        atomic_write_bytes(path, lambda tmp: tifffile.imwrite(tmp, d))
        return "float32 CoC radius in px"
    if ext not in (".png", ".jpg", ".jpeg", ".webp"):
        raise RefocusError(f"unsupported defocus map format {ext or '(none)'}: use .png, .tif or .npy")
    peak = float(d.max())
    norm = d / peak if peak > 0 else d
    # One channel (grey), as a map is: three equal ones tripled the file and made it
    # read as a colour image (WebP has no grey mode and stores it as RGB).
    write_image(path, norm[..., None], bit_depth=16 if ext == ".png" else None, grayscale=ext != ".webp")
    return f"scaled to its maximum: white = {peak:.2f} px"


def register(app: typer.Typer) -> None:
    @app.command("deblur")
    def deblur_cmd(
        image: Path = typer.Argument(..., help="Defocused photo (JPEG, PNG, TIFF, HEIC...)."),
        output: Path = typer.Option(..., "--output", "-o", help="All-in-focus output image."),
        defocus_map: Optional[Path] = typer.Option(
            None, "--defocus-map", help="Also write the defocus map (CoC radius): .png (scaled) or .tif/.npy (px)."
        ),
        weights: Optional[Path] = typer.Option(None, "--weights", help="DeblurNet weights file (default: shipped)."),
        device: Optional[str] = G.GenfocusDeviceOpt,
        tile: Optional[int] = typer.Option(
            None, "--tile", help="Tile size in px (bounds memory); default 1280 on the CPU, whole images up to 16 MP on a GPU."
        ),
        raw: bool = typer.Option(
            False, "--raw", help="The network's output as is, without keeping the input where it was already sharp."
        ),
        engine: str = G.EngineOpt,
        genfocus_weights: Optional[Path] = G.GenfocusWeightsOpt,
        base_model: Optional[str] = G.BaseModelOpt,
        steps: int = G.StepsOpt,
        seed: Optional[int] = G.SeedOpt,
        no_tiling: bool = G.NoTilingOpt,
        offload: bool = G.OffloadOpt,
        dtype: str = G.DtypeOpt,
        long_side: int = G.LongSideOpt,
        pre_deblur: bool = G.PreDeblurOpt,
    ) -> None:
        """Recover the all-in-focus photo (and the defocus map) from a defocused photo.

        --engine genfocus runs Genfocus's generative DeblurNet instead (no defocus map).
        """
        from rich.console import Console
        from rich.markup import escape
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

        from refocus.cli._console import progress_bar

        from refocus.deblur import deblur
        from refocus.errors import RefocusError
        from refocus.io import read_image, write_image
        from refocus.io.outputs import same_file
        from refocus.pipeline.options import check_output

        if tile is not None and tile < 32:
            raise RefocusError(f"--tile must be >= 32 px, got {tile}")
        gen = G.genfocus_options(engine, device, genfocus_weights, base_model, steps, seed, no_tiling, offload, dtype,
                                 long_side, pre_deblur)
        if gen is not None:
            if defocus_map is not None:
                raise RefocusError("--defocus-map: Genfocus's DeblurNet gives no defocus map (use --engine physical)")
            if weights is not None or raw or tile is not None:
                raise RefocusError("--weights, --raw and --tile are options of refocus's DeblurNet, not of --engine genfocus")
        device = device or "cpu"
        check_output(output, [image, weights, genfocus_weights], photo=image)  # writable, room on its disk, before the work
        if defocus_map is not None:
            if same_file(defocus_map, output):
                raise RefocusError("--defocus-map and --output name the same file; give two paths")
            check_output(defocus_map, [image, weights], suffixes=DEFOCUS_SUFFIXES)
        if gen is not None:
            _deblur_generative(image, output, gen)
            return
        rgb, info = read_image(image)
        console = Console(stderr=True, soft_wrap=True)
        cols = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with progress_bar(console, *cols) as prog:
            task = prog.add_task("deblurring", total=None)

            def progressed(done: int, total: int) -> None:
                prog.update(task, completed=done, total=total)

            aif, defocus = deblur(rgb, weights=weights, device=device, tile=tile or "auto", progress=progressed, guard=not raw)
        write_image(output, aif, info)
        console.print(escape(f"all-in-focus -> {output} (defocus radius: median {float(_median(defocus)):.2f} px, "
                             f"max {float(defocus.max()):.2f} px)"))
        if defocus_map is not None:
            how = write_defocus_map(defocus_map, defocus)
            console.print(escape(f"defocus map -> {defocus_map} ({how})"))


def _deblur_generative(image: Path, output: Path, options) -> None:
    from rich.markup import escape

    from refocus.cli._console import stderr_console
    from refocus.io import read_image, write_image
    from refocus.pipeline.genfocus import get_engine
    from refocus.pipeline.genfocus.run import generative_all_in_focus, tasks_for

    engine = get_engine(options)
    engine.check_weights(tasks_for(True, options)[:1])  # one line now, not after loading the photo
    rgb, info = read_image(image)
    console = stderr_console()
    with G.step_progress(console, "Genfocus DeblurNet") as progressed:
        aif = generative_all_in_focus(engine, rgb, options.device, progressed)
    write_image(output, aif, info)
    console.print(escape(f"all-in-focus -> {output} (Genfocus DeblurNet{' with pre-deblur' if options.pre_deblur else ''}, "
                         f"{options.steps} steps)"))


def _median(x):
    import numpy as np

    return np.median(x)
