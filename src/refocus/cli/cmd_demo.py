"""``refocus demo``: the main job on the bundled example."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo_cmd(
        output_dir: Path = typer.Option(Path("refocus-demo"), "--output-dir", "-o", help="Where to write the results."),
        frames: int = typer.Option(12, "--frames", help="Frames of the focus pull, one way."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace files of the demo's names in a folder the demo did not write."),
    ) -> None:
        """Refocus the bundled example photo a few ways into ./refocus-demo/."""
        import time

        from rich.console import Console
        from rich.markup import escape

        from refocus.errors import RefocusError
        from refocus.pipeline.demo import demo_files, run_demo

        if not 2 <= frames <= 200:
            raise RefocusError(f"--frames must be in 2..200, got {frames}")
        console = Console(soft_wrap=True)
        photo, _ = demo_files()
        console.print(f"demo photo: {photo.name} (640x689, BokehMe, MIT licence) with its disparity map")
        t0 = time.perf_counter()
        with console.status("working...") as status:
            outputs = run_demo(output_dir, frames=frames, progress=lambda s: status.update(s + "..."), overwrite=overwrite)
        for o in outputs:
            console.print(f"  [bold]{escape(str(o.path))}[/]  {escape(o.what)}")
        console.print(f"done in {time.perf_counter() - t0:.0f} s. Try your own photo: refocus refocus PHOTO --depth DEPTH --focus X,Y -k 15 -o out.jpg")
