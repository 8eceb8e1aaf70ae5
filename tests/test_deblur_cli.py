"""``refocus deblur`` command."""

from __future__ import annotations

import numpy as np
import pytest

from refocus.deblur import default_weights_path


def _run(args):
    from refocus.cli import main

    with pytest.raises(SystemExit) as exc:
        main(args)
    return exc.value.code


@pytest.mark.skipif(not default_weights_path().is_file(), reason="shipped DeblurNet weights missing")
def test_cli_writes_image_and_defocus_map(tmp_path):
    from refocus.io import read_image, write_image

    src = tmp_path / "in.png"
    write_image(src, np.random.default_rng(0).random((40, 56, 3)).astype(np.float32))
    out, dmap, dnpy = tmp_path / "out.png", tmp_path / "map.png", tmp_path / "map.npy"
    assert _run(["deblur", str(src), "-o", str(out), "--defocus-map", str(dmap)]) in (0, None)
    img, _ = read_image(out)
    assert img.shape == (40, 56, 3)
    m, _ = read_image(dmap)
    assert m.shape == (40, 56, 3)
    assert _run(["deblur", str(src), "-o", str(out), "--defocus-map", str(dnpy)]) in (0, None)
    d = np.load(dnpy)
    assert d.shape == (40, 56) and d.dtype == np.float32 and d.min() >= 0


def test_cli_errors_are_one_line(tmp_path, capsys):
    from refocus.io import write_image

    assert _run(["deblur", str(tmp_path / "missing.jpg"), "-o", str(tmp_path / "o.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "Traceback" not in err
    src = tmp_path / "in.png"
    write_image(src, np.zeros((16, 16, 3), np.float32))
    assert _run(["deblur", str(src), "-o", str(tmp_path / "o.png"), "--weights", str(tmp_path / "w.pt")]) == 2
    err = capsys.readouterr().err
    assert "w.pt" in err and "Traceback" not in err


class _RunsCode:
    """A pickled object whose unpickling calls a function: what a hostile weights file holds."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def test_a_weights_file_that_runs_code_is_refused_without_running_it(tmp_path, capsys):
    import torch

    from refocus.io import write_image

    marker = tmp_path / "ran"
    weights = tmp_path / "evil.pt"
    torch.save({"config": {}, "state_dict": {}, "x": _RunsCode(str(marker))}, weights)
    src = tmp_path / "in.png"
    write_image(src, np.zeros((16, 16, 3), np.float32))
    assert _run(["deblur", str(src), "-o", str(tmp_path / "o.png"), "--weights", str(weights)]) == 2
    err = capsys.readouterr().err
    assert "evil.pt" in err and "Traceback" not in err
    assert not marker.exists(), "loading the weights ran code from the file"
