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
        size_bytes = parse_file_size(max_file_size)
        check_can_listen(host, port)
        typer.echo(f"refocus UI on http://{host}:{port} (Ctrl+C to stop)", err=True)
        launch(host=host, port=port, max_file_size=size_bytes, block=True, device=device)


_SIZE_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
               "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}


def parse_file_size(text: str) -> int:
    """``--max-file-size``: ``"200mb"``, ``"1.5GB"``, ``"500kib"`` or a byte count -> bytes."""
    import re

    from refocus.errors import RefocusError

    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([a-zA-Z]*)\s*", str(text))
    unit = m.group(2).lower() if m else None
    if m is None or unit not in _SIZE_UNITS or float(m.group(1)) <= 0:
        raise RefocusError(f"--max-file-size must be a size like 50mb, 2gb or a number of bytes, got {text!r}")
    return int(float(m.group(1)) * _SIZE_UNITS[unit])


def check_can_listen(host: str, port: int) -> None:
    """Refuse, in one line that says what to do, an address the UI could not listen on.

    Gradio's own errors ("Cannot find empty port in range: 7861-7861 ... set the
    GRADIO_SERVER_PORT environment variable or pass server_port to launch()") name
    its internals, and the server printed a raw log line before them.
    """
    import errno
    import os
    import socket

    from refocus.errors import RefocusError

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise RefocusError(f"--host {host}: not a known address or name of this machine") from None
    family, kind, proto, _, addr = infos[0]
    with socket.socket(family, kind, proto) as sock:
        if os.name != "nt":
            # As the server's own socket (uvicorn) does: the connections of a UI stopped a
            # moment ago linger in TIME_WAIT for a minute, and without it a restart on the
            # same port was refused as "in use". A program listening there still is.
            # (On Windows the option would let two programs share the port.)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(addr)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise RefocusError(f"port {port} is in use (another program, or a UI already running): "
                                   f"pass another --port, e.g. --port {port + 1}") from None
            if exc.errno == errno.EADDRNOTAVAIL:
                raise RefocusError(f"--host {host} is not an address of this machine: use 127.0.0.1 (this machine "
                                   "only) or 0.0.0.0 (every network it is on)") from None
            if exc.errno == errno.EACCES:
                raise RefocusError(f"port {port} needs administrator rights: use a port above 1023") from None
            raise RefocusError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
