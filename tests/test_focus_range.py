"""Issue 14, item 5: `--focus-range` in metres on metric depth (and its refusals)."""

from __future__ import annotations

import numpy as np
import pytest

from refocus.errors import RefocusError
from refocus.io import write_image
from refocus.pipeline import RefocusConfig, refocus
from refocus.pipeline.options import parse_focus_range


def test_focus_range_syntax():
    assert parse_focus_range("0.4:0.7") == {"focus_range": (0.4, 0.7)}
    assert parse_focus_range("1.5m:2.5m") == {"focus_range_m": (1.5, 2.5)}
    assert parse_focus_range("1.5:2.5m") == {"focus_range_m": (1.5, 2.5)}  # one unit for both
    assert parse_focus_range(" 3 m : 2 M ") == {"focus_range_m": (3.0, 2.0)}
    for bad in ("1.5m:2.5", "0m:2m", "-1m:2m", "1m", "1m:2m:3m", ":2m", "am:bm", "nanm:2m"):
        with pytest.raises(RefocusError, match="--focus-range"):
            parse_focus_range(bad)
    with pytest.raises(RefocusError, match="in metres"):
        RefocusConfig.build(focus_range_m=(0.0, 2.0))
    with pytest.raises(RefocusError, match="1.5m:2.5m"):  # a normalised range out of [0, 1] hints at the unit
        RefocusConfig.build(focus_range=(1.5, 2.5))
    with pytest.raises(RefocusError, match="one focus setting"):
        RefocusConfig.build(focus_range_m=(1.0, 2.0), focus_value=0.3)
    assert RefocusConfig.build(focus_range_m=(1.5, 2.5)).focus_description() == "range 1.5m:2.5m"


def _metric_scene(tmp_path):
    """A textured photo over a ramp of distances 1 .. 5 m (float .npy, metres)."""
    rng = np.random.default_rng(0)
    h, w = 64, 160
    img = np.kron(rng.random((h // 4, w // 4, 3)).astype(np.float32), np.ones((4, 4, 1), np.float32))
    depth_m = np.tile(np.linspace(1.0, 5.0, w, dtype=np.float32), (h, 1))
    write_image(tmp_path / "p.png", img)
    np.save(tmp_path / "z.npy", depth_m)
    return tmp_path / "p.png", tmp_path / "z.npy", depth_m


def test_focus_range_in_metres_keeps_that_band_of_distance_sharp(tmp_path):
    photo, zfile, depth_m = _metric_scene(tmp_path)
    r = refocus(str(photo), depth_path=str(zfile), depth_kind="depth", focus_range_m=(2.5, 1.8), strength=8, deblur="never")
    inside = (depth_m >= 1.8 + 0.03) & (depth_m <= 2.5 - 0.03)
    outside = (depth_m < 1.8 - 0.03) | (depth_m > 2.5 + 0.03)
    assert inside.any() and np.abs(r.coc_px[inside]).max() == 0.0
    assert np.abs(r.coc_px[outside]).min() > 0.0
    # Nearer than the band: in front (positive CoC); farther: behind.
    assert (r.coc_px[depth_m < 1.7] > 0).all() and (r.coc_px[depth_m > 2.6] < 0).all()
    # The focal plane (for --f-number and reports) is the band's middle in disparity.
    lo, hi = 1 / 5.0, 1 / 1.0
    mid = ((1 / 1.8 - lo) / (hi - lo) + (1 / 2.5 - lo) / (hi - lo)) / 2
    assert r.focus_disparity == pytest.approx(mid, abs=1e-3)
    # A band beyond the scene (all nearer than 1 m) is a real setting: everything behind it blurs.
    r2 = refocus(str(photo), depth_path=str(zfile), depth_kind="depth", focus_range_m=(0.5, 0.8), strength=8, deblur="never")
    assert (r2.coc_px < 0).all()


def test_focus_range_in_metres_on_relative_depth_is_one_line_exit_2(tmp_path, capsys):
    from refocus.cli import main

    photo, _, depth_m = _metric_scene(tmp_path)
    np.save(tmp_path / "d.npy", (1.0 / depth_m).astype(np.float32))  # relative disparity
    with pytest.raises(RefocusError, match="needs metric depth"):
        refocus(str(photo), depth_path=str(tmp_path / "d.npy"), focus_range_m=(1.5, 2.5), strength=8, deblur="never")
    for spec in ("1.5m:2.5m", "1.5m:2.5"):
        with pytest.raises(SystemExit) as exc:
            main(["refocus", str(photo), "--depth", str(tmp_path / "d.npy"), "--focus-range", spec, "-o", str(tmp_path / "o.png")])
        err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
        assert exc.value.code == 2 and len(err) == 1 and err[0].startswith("error:"), err
    assert not (tmp_path / "o.png").exists()


def test_pug_heic_focus_range_in_metres_with_f_number(shared_data, tmp_path, capsys):
    """The iPhone HEIC's metric depth (disparity 1.498 .. 4.383 1/m: 0.23 .. 0.67 m): a
    band in metres is sharp exactly at those distances, and --f-number derives K from
    EXIF with it."""
    from refocus.cli import main

    photo = shared_data / "phone-depth" / "iphone13pro-pug.heic"
    if not photo.exists():
        pytest.skip("iphone13pro-pug.heic not in the shared data")
    r = refocus(str(photo), focus_range_m=(0.35, 0.45), f_number=2.8, deblur="never", quality="fast")
    lo, hi = 1.498046875, 4.3828125
    dist_m = 1.0 / (lo + r.disparity.astype(np.float64) * (hi - lo))
    inside = (dist_m >= 0.35 * 1.01) & (dist_m <= 0.45 / 1.01)
    outside = (dist_m < 0.35 / 1.01) | (dist_m > 0.45 * 1.01)
    assert inside.mean() > 0.01 and outside.mean() > 0.01
    assert np.abs(r.coc_px[inside]).max() == 0.0 and np.abs(r.coc_px[outside]).min() > 0.0
    assert r.strength > 0 and r.config.f_number == 2.8
    out = tmp_path / "pug.jpg"
    with pytest.raises(SystemExit) as exc:
        main(["refocus", str(photo), "--focus-range", "0.35m:0.45m", "-k", "4", "--no-deblur", "--quality", "fast", "-o", str(out)])
    assert exc.value.code == 0, capsys.readouterr().err
    assert out.is_file()


def test_info_names_the_metric_range_and_what_it_allows(shared_data, capsys):
    """Issue 14 item 2: `refocus info` says what metric depth allows on the pug HEIC
    (distances 0.23-0.67 m; --f-number with the focus point's depth; metres ranges)."""
    from refocus.cli import main

    photo = shared_data / "phone-depth" / "iphone13pro-pug.heic"
    if not photo.exists():
        pytest.skip("iphone13pro-pug.heic not in the shared data")
    with pytest.raises(SystemExit) as exc:
        main(["info", str(photo)])
    out = " ".join(capsys.readouterr().out.split())
    assert exc.value.code in (0, None)
    assert "0.23–0.67 m" in out and "--f-number works" in out and "--focus-range" in out and "m:" in out
