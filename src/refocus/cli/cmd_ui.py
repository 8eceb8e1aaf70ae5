"""``refocus ui``: the local web UI (Gradio, optional extra ``refocus[ui]``)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("ui")
    def ui_cmd(
        host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (127.0.0.1 = this machine only)."),
        port: int = typer.Option(7860, "--port", help="Port."),
        max_file_size: str = typer.Option("200mb", "--max-file-size", help="Largest upload accepted, e.g. 50mb."),
        device: str = typer.Option("auto", "--device", help="cpu, cuda or auto (the GPU when there is one)."),
    ) -> None:
        """Start the web UI: upload a photo, click to focus, drag sliders, export."""
        from refocus.errors import RefocusError
        from refocus.ui.app import launch

        if device not in ("cpu", "cuda", "auto"):
            raise RefocusError(f"--device must be cpu, cuda or auto, got {device!r}")
        from refocus.render.backends import get_backend

        get_backend(device)  # a missing GPU is a one-line error now, not at the first click
        if not 0 < port < 65536:
            raise RefocusError(f"--port must be in 1..65535, got {port}")
        typer.echo(f"refocus UI on http://{host}:{port} (offline; Ctrl+C to stop)", err=True)
        launch(host=host, port=port, max_file_size=max_file_size, block=True, device=device)
