"""``refocus ui``: a port or address it cannot use is one line that says what to do,
before the server starts (Gradio's own text named GRADIO_SERVER_PORT and launch())."""

from __future__ import annotations

import socket

import pytest

from refocus.cli import main


def _run(capsys, monkeypatch, *argv):
    import refocus.ui.app

    def no_launch(**kwargs):
        raise AssertionError("the server was started")

    monkeypatch.setattr(refocus.ui.app, "launch", no_launch)
    with pytest.raises(SystemExit) as exc:
        main(["ui", "--device", "cpu", *map(str, argv)])
    out = capsys.readouterr()
    return exc.value.code, out.err


def test_a_port_in_use_says_so_and_suggests_another(capsys, monkeypatch):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, err = _run(capsys, monkeypatch, "--port", port)
    assert code == 2 and f"port {port} is in use" in err and f"--port {port + 1}" in err
    assert "GRADIO" not in err and "refocus UI on" not in err and len(err.strip().splitlines()) == 1


def test_a_host_that_is_not_this_machine_is_refused(capsys, monkeypatch):
    code, err = _run(capsys, monkeypatch, "--host", "192.0.2.1")  # TEST-NET-1: never local
    assert code == 2 and "not an address of this machine" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("size", ["lots", "-5mb", "12 parsecs", ""])
def test_a_bad_upload_size_is_refused_naming_the_option(capsys, monkeypatch, size):
    # "lots" ended in "ValueError: invalid literal for int() with base 10: ''".
    code, err = _run(capsys, monkeypatch, "--max-file-size", size)
    assert code == 2 and "--max-file-size must be a size like 50mb" in err


def test_upload_sizes_are_read_in_the_units_people_write():
    from refocus.cli.cmd_ui import parse_file_size

    assert parse_file_size("200mb") == 200_000_000
    assert parse_file_size("1.5GB") == 1_500_000_000
    assert parse_file_size("500 KiB") == 512_000
    assert parse_file_size("4096") == 4096
