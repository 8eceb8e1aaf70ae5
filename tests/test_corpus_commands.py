"""Every command of the README's table on real camera photos (exif-corpus): no
traceback, and no input file changed, even with the outputs written beside the
inputs (issue 13, "done when")."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest

from refocus.cli import main

PHOTOS = ("Konica_Q-M100_2_.jpg", "Canon_PowerShot_A40.jpg")  # the smallest (0.8-1 MP)


def _hashes(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def _run(capsys, *argv):
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in argv])
    out = capsys.readouterr()
    return exc.value.code or 0, out.out, out.err


def test_readme_commands_on_camera_photos_change_no_input(shared_data, tmp_path, capsys):
    corpus = shared_data / "photos" / "exif-corpus"
    if not all((corpus / n).is_file() for n in PHOTOS):
        pytest.skip(f"exif-corpus photos {PHOTOS} not found in {corpus}")
    work = tmp_path / "photos"
    work.mkdir()
    for n in PHOTOS:
        shutil.copy(corpus / n, work / n)
    a, b = (work / n for n in PHOTOS)
    out = tmp_path / "out"
    out.mkdir()
    # No depth file, nothing embedded, no network (HF_HUB_OFFLINE in conftest): this sharp
    # camera photo has no blur to measure, so the blur fallback refuses it (issue 14).
    code, _, err = _run(capsys, "depth", a, "-o", out / "a.npy")
    assert code == 2 and "in focus everywhere" in err and len(err.strip().splitlines()) == 1, err
    from refocus.io import read_image

    h, w = read_image(a)[0].shape[:2]
    import numpy as np

    np.save(out / "a.npy", np.tile(np.linspace(0, 1, w, dtype=np.float32), (h, 1)))  # the user's map
    batch_in = tmp_path / "batch-in"
    batch_in.mkdir()
    shutil.copy(a, batch_in / a.name)
    shutil.copy(out / "a.npy", batch_in / f"{a.stem}-disparity.npy")  # picked up by name
    inputs = {**_hashes(work), **{f"batch-in/{k}": v for k, v in _hashes(batch_in).items()}}

    commands = [
        ["info", a],
        ["depth", a, "--depth", out / "a.npy", "-o", out / "again.npy"],
        ["render", a, "--depth", out / "a.npy", "-o", out / "render.jpg", "--focus", "400,500", "-k", "3"],
        ["refocus", a, "--depth", out / "a.npy", "-o", out / "refocus.jpg", "--focus", "400,500", "-k", "3",
         "--save-intermediate", out / "inter"],
        ["refocus", b, "--depth", out / "a.npy", "-o", out / "wrong-aspect.jpg", "-k", "3"],  # refused: another aspect
        ["deblur", b, "-o", out / "aif.jpg", "--defocus-map", out / "defocus.png"],
        ["animate", a, "--depth", out / "a.npy", "--from", "0.2", "--to", "0.8", "--frames", "2", "--max-size", "256",
         "-k", "3", "-o", out / "pull.gif"],
        ["batch", batch_in, "-o", out / "batch", "-k", "2", "--workers", "1", "--no-deblur"],
        ["metrics", a, out / "refocus.jpg"],
        # Outputs aimed at the inputs themselves are refused.
        ["refocus", a, "-o", a, "-k", "3"],
        ["render", b, "--depth", out / "a.npy", "-o", out / "a.npy", "--focus-value", "0.5", "-k", "3"],
        ["deblur", a, "-o", out / "x.jpg", "--defocus-map", a],
        ["batch", batch_in, "-o", batch_in, "-k", "2"],
    ]
    codes = []
    for argv in commands:
        code, stdout, err = _run(capsys, *argv)
        assert "Traceback" not in err + stdout, (argv, err)
        if code:
            assert err.strip().startswith("error:") and len(err.strip().splitlines()) == 1, (argv, err)
        codes.append(code)
        now = {**_hashes(work), **{f"batch-in/{k}": v for k, v in _hashes(batch_in).items()}}
        assert now == inputs, f"{argv[0]} changed an input"
    assert codes[:9] == [0, 0, 0, 0, 2, 0, 0, 0, 0], list(zip([c[0] for c in commands], codes))
    assert codes[9:] == [2, 2, 2, 2]
    assert json.loads(_run(capsys, "metrics", a, a, "--no-lpips")[1])["psnr"] == 100.0
    assert [p.name for p in (out / "batch").iterdir()] == [a.name]
