"""Regressions from a user trial of ``refocus bench`` on a researcher's own data."""

import json
import sys
import types

import numpy as np
import pytest

from refocus.errors import RefocusError
from refocus.io import write_image
from refocus.io.depthfile import write_pfm


def _pairs(root, names=("a", "b"), size=(40, 48), dirs=("inputC", "target"), seed=0):
    rng = np.random.default_rng(seed)
    for d in dirs:
        (root / d).mkdir(parents=True, exist_ok=True)
    for n in names:
        for d in dirs:
            write_image(root / d / f"{n}.png", rng.random(size + (3,)).astype(np.float32))
    return root


def _lightfield(folder, grid=3, size=12, disparity=None):
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True)
    for i in range(grid * grid):
        write_image(folder / f"input_Cam{i:03d}.png", rng.random((size, size, 3)).astype(np.float32))
    write_pfm(folder / "gt_disp_lowres.pfm", np.zeros((size, size), np.float32) if disparity is None else disparity)
    return folder


def _cli(argv, capsys):
    from refocus.cli import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return exc.value.code, err


# --- paired:DIR --------------------------------------------------------------


def test_paired_accepts_common_folder_names(tmp_path):
    from refocus.bench.paired import find_pairs

    for dirs in (("blur", "sharp"), ("input", "gt"), ("inputC", "target")):
        root = _pairs(tmp_path / "-".join(dirs), dirs=dirs)
        assert [p[0] for p in find_pairs(root)] == ["a", "b"]
    odd = _pairs(tmp_path / "odd", dirs=("photos", "clean"))
    with pytest.raises(RefocusError, match=r"it has clean/, photos/"):
        find_pairs(odd)


def test_paired_errors_name_the_side_of_the_pair(tmp_path):
    from refocus.bench.paired import paired_cases

    root = _pairs(tmp_path / "d")
    write_image(root / "target" / "b.png", np.zeros((40, 50, 3), np.float32))
    with pytest.raises(RefocusError, match=r"inputC/b.png is 48x40 but target/b.png is 50x40"):
        paired_cases(root)
    root = _pairs(tmp_path / "e")
    (root / "inputC" / "a.png").write_bytes(b"not a png")
    with pytest.raises(RefocusError, match=r"inputC/a.png"):
        paired_cases(root)


def test_paired_images_without_partner_are_noted(tmp_path):
    from refocus.bench.paired import paired_cases

    root = _pairs(tmp_path / "d")
    write_image(root / "inputC" / "c.png", np.zeros((40, 48, 3), np.float32))
    notes = []
    assert [c.name for c in paired_cases(root, notes=notes)] == ["a", "b"]
    assert any("c.png" in n and "without a partner" in n for n in notes)


def test_two_images_of_one_name_in_a_folder_are_refused(tmp_path):
    """Found 2026-12-07: a.png and a.jpg in one folder paired whichever sorted last,
    without a word."""
    from refocus.bench.paired import find_pairs

    root = _pairs(tmp_path / "d")
    write_image(root / "target" / "a.jpg", np.zeros((40, 48, 3), np.float32))
    with pytest.raises(RefocusError, match=r"target has several images named 'a' \(a.jpg, a.png\)"):
        find_pairs(root)


def test_one_folder_given_twice_is_scored_once(tmp_path):
    from refocus.bench.quality import parse_data

    root = _pairs(tmp_path / "d")
    assert parse_data(f"paired:{root},paired:{root}/,paired:{tmp_path}/./d") == [f"paired:{root}"]


def test_folders_of_the_same_name_are_separate_datasets(tmp_path, monkeypatch):
    from refocus.bench.quality import run_quality

    monkeypatch.setenv("REFOCUS_LPIPS_WEIGHTS", str(tmp_path / "none.ckpt"))
    a = _pairs(tmp_path / "x" / "test_c", seed=1)
    b = _pairs(tmp_path / "y" / "test_c", names=("a",), seed=2)
    run = run_quality(["deblur", "bokeh"], [f"paired:{a}", f"paired:{b}"], methods=["input"])
    counts = {}
    for c in run.cases:
        counts[c["dataset"]] = counts.get(c["dataset"], 0) + 1
    assert counts == {"paired:x/test_c": 2, "paired:y/test_c": 1}
    assert run.meta["methods"] == ["input"]  # the report says which methods ran
    assert any("deblur cases only" in n for n in run.notes)


def test_case_too_small_to_score_is_refused_before_any_method_runs(tmp_path, monkeypatch):
    from refocus.bench import methods as mreg
    from refocus.bench.quality import run_quality

    monkeypatch.setenv("REFOCUS_LPIPS_WEIGHTS", str(tmp_path / "none.ckpt"))
    root = _pairs(tmp_path / "d", names=("big", "tiny"), size=(40, 40))
    write_image(root / "inputC" / "tiny.png", np.zeros((5, 5, 3), np.float32))
    write_image(root / "target" / "tiny.png", np.zeros((5, 5, 3), np.float32))
    calls = []
    mreg.register("deblur", "trial-spy", lambda case: calls.append(case.name) or case.input)
    try:
        with pytest.raises(RefocusError, match=r"tiny.png.*too small"):
            run_quality(["deblur"], [f"paired:{root}"], methods=["trial-spy"])
    finally:
        mreg._REGISTRY["deblur"].pop("trial-spy")
    assert calls == []


@pytest.mark.parametrize("value", ["", ","])
def test_an_empty_methods_list_is_refused(tmp_path, capsys, value):
    """Found 2026-12-07: --methods "" ran every method, and "," said "none of
    --methods  does the task deblur ()"."""
    code, err = _cli(["bench", "quality", "--task", "deblur", "--data", "synthetic", "--methods", value,
                      "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "empty --methods list" in err, err
    assert not (tmp_path / "o" / "report.json").exists()


def test_methods_of_another_task_are_named_not_no_cases(tmp_path, monkeypatch):
    from refocus.bench.quality import run_quality

    monkeypatch.setenv("REFOCUS_LPIPS_WEIGHTS", str(tmp_path / "none.ckpt"))
    root = _pairs(tmp_path / "d")
    with pytest.raises(RefocusError, match=r"naive: refocus"):
        run_quality(["deblur"], [f"paired:{root}"], methods=["naive"])


# --- lightfield:DIR ------------------------------------------------------------


def test_a_light_field_too_small_for_an_aperture_says_what_it_needs(tmp_path):
    """Found 2026-12-07: a 3x3 grid was "too small for R = 2" without the size it
    needs, and a 7x7 grid lost its R = 4 cases without a word."""
    from refocus.bench.quality import build_cases

    small = _lightfield(tmp_path / "small", grid=3, size=16)
    cases, notes = build_cases(["bokeh"], [f"lightfield:{small}"])
    assert not cases and "3x3 grid is too small" in notes[0] and "R = 2 needs 5x5 views" in notes[0]
    assert "R = 4 needs 9x9 views" in notes[0]
    seven = _lightfield(tmp_path / "seven", grid=7, size=16)
    cases, notes = build_cases(["bokeh"], [f"lightfield:{seven}"])
    assert cases and {c.meta["R"] for c in cases} == {2}
    assert any("7x7 grid: R = 4 needs 9x9 views, left out" in n for n in notes), notes


def test_lightfield_missing_view_is_named(tmp_path):
    from refocus.bench.lightfield import load_lightfield

    lf = _lightfield(tmp_path / "lf")
    (lf / "input_Cam004.png").unlink()
    with pytest.raises(RefocusError, match=r"input_Cam004.png missing") as exc:
        load_lightfield(lf)
    assert "pass the grid size" not in str(exc.value)


def test_lightfield_non_finite_disparity_is_refused(tmp_path):
    from refocus.bench.lightfield import load_lightfield

    d = np.zeros((12, 12), np.float32)
    d[3, 3] = np.nan
    d[0, 0] = np.inf
    with pytest.raises(RefocusError, match=r"2 NaN or infinite"):
        load_lightfield(_lightfield(tmp_path / "lf", disparity=d))


# --- --out ----------------------------------------------------------------------


def test_quality_out_that_is_a_file_is_refused_before_the_run(tmp_path, capsys, monkeypatch):
    from refocus.bench import quality

    def no_run(*a, **k):
        raise AssertionError("the benchmark ran before --out was checked")

    monkeypatch.setattr(quality, "run_quality", no_run)
    root = _pairs(tmp_path / "d")
    f = tmp_path / "f.txt"
    f.write_text("x")
    for out in (f, f / "sub"):
        code, err = _cli(["bench", "quality", "--data", f"paired:{root}", "--out", str(out)], capsys)
        assert code == 2 and "is a file" in err


def test_quality_keeps_a_users_own_report_files(tmp_path, capsys, monkeypatch):
    from refocus.bench import quality

    monkeypatch.setattr(quality, "run_quality", lambda *a, **k: (_ for _ in ()).throw(AssertionError("ran")))
    root = _pairs(tmp_path / "d")
    out = tmp_path / "paper"
    out.mkdir()
    (out / "report.md").write_text("# my notes\n")
    code, err = _cli(["bench", "quality", "--data", f"paired:{root}", "--out", str(out)], capsys)
    assert code == 2 and "--overwrite" in err
    assert (out / "report.md").read_text() == "# my notes\n"


def _run_with_sheets(tasks):
    from refocus.bench.methods import Case
    from refocus.bench.quality import QualityRun

    img = np.full((16, 16, 3), 0.5, np.float32)
    run = QualityRun(meta={"tasks": list(tasks), "data": ["paired:x"]})
    for t in tasks:
        case = Case(t, "paired:x", "a", img, img)
        run.cases.append({"task": t, "dataset": "paired:x", "case": "a", "crop_px": 0, "meta": {},
                          "results": {"input": {"psnr": 100.0, "ssim": 1.0, "lpips": None, "seconds": 0.0}}})
        run.images[t] = [(case, {"input": img})]
    return run


def test_rerun_leaves_no_contact_sheet_of_the_earlier_run(tmp_path):
    from refocus.bench.report import write_report

    out = tmp_path / "rep"
    write_report(_run_with_sheets(["bokeh", "deblur"]), out)
    assert {p.name for p in out.glob("contact-*.png")} == {"contact-bokeh.png", "contact-deblur.png"}
    written = write_report(_run_with_sheets(["deblur"]), out)
    assert {p.name for p in out.glob("contact-*.png")} == {"contact-deblur.png"}
    json.loads(written["json"].read_text())
    assert "paired:DIR" in written["md"].read_text()


# --- speed and robustness -------------------------------------------------------------


def test_speed_out_checked_before_timing(tmp_path, capsys, monkeypatch):
    calls = []
    fake = types.ModuleType("refocus.bench.speed")
    fake.run_speed = lambda **kw: calls.append(kw) or {}
    monkeypatch.setitem(sys.modules, "refocus.bench.speed", fake)
    f = tmp_path / "f.txt"
    f.write_text("x")
    code, err = _cli(["bench", "speed", "--out", str(f), "--stages", "render"], capsys)
    assert code == 2 and "is a file" in err and calls == []
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "speed.json").write_text('{"mine": 1}')
    code, err = _cli(["bench", "speed", "--out", str(mine), "--stages", "render"], capsys)
    assert code == 2 and "--overwrite" in err and calls == []
    code, _ = _cli(["bench", "speed", "--out", str(mine), "--stages", "render,render", "--overwrite"], capsys)
    assert code == 0 and calls[-1]["stages"] == ("render",)


def _fuzz_data(tmp_path):
    data = tmp_path / "data"
    (data / "photos").mkdir(parents=True)
    write_image(data / "photos" / "bokehme-1.jpg", np.full((8, 8, 3), 0.5, np.float32))
    return data


def test_robustness_refuses_bad_options_before_the_run(tmp_path, capsys, monkeypatch):
    from refocus.bench import robustness

    monkeypatch.setattr(robustness, "run_fuzz", lambda *a, **k: (_ for _ in ()).throw(AssertionError("ran")))
    data = _fuzz_data(tmp_path)
    photo = data / "photos" / "bokehme-1.jpg"
    before = photo.read_bytes()
    mine = tmp_path / "precious.json"
    mine.write_text('{"my": "precious"}')
    for extra, msg in (
        (["--mutants", "0"], "--mutants"),
        (["--out", str(tmp_path)], "is a folder"),
        (["--out", str(photo)], "refusing to overwrite the input"),
        # Found 2026-12-07: a user's file named as --out was replaced without a word.
        (["--out", str(mine)], "is not from an earlier report"),
    ):
        code, err = _cli(["bench", "robustness", "--data", str(data), "--mutants", "2", *extra], capsys)
        assert code == 2 and msg in err, err
    assert photo.read_bytes() == before and mine.read_text() == '{"my": "precious"}'


def test_robustness_finds_the_shared_data_from_any_folder(tmp_path, monkeypatch, shared_data):
    from refocus.bench import quality
    from refocus.bench.quality import shared_data_dir
    from refocus.bench.robustness import data_dir_default

    monkeypatch.delenv("REFOCUS_SHARED", raising=False)
    monkeypatch.chdir(tmp_path)
    # Where a checkout beside ../shared finds it (a worktree elsewhere would not).
    monkeypatch.setattr(quality, "_REPO_ROOT", shared_data.parent.parent / "repo")
    assert shared_data_dir() is not None
    assert data_dir_default().resolve() == shared_data_dir().resolve()


def test_a_folder_with_a_comma_in_its_name_can_be_given(tmp_path):
    # --data paired:DIR,... was split on every comma: a folder named "blur,sharp set"
    # could not be scored at all ("unknown data source 'sharp set'").
    from refocus.bench.quality import parse_data

    odd = tmp_path / "blur,sharp set"
    odd.mkdir()
    other = tmp_path / "b"
    other.mkdir()
    assert parse_data(f"paired:{odd}") == [f"paired:{odd}"]
    assert parse_data(f"paired:{odd},synthetic,paired:{other}") == [f"paired:{odd}", "synthetic", f"paired:{other}"]
    with pytest.raises(RefocusError, match="unknown data source"):
        parse_data("synthetic,nonsense")
