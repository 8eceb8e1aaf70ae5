"""The genfocus engine against the authors' released code (``../shared/reference/genfocus``)
on a tiny random-weight FLUX with Genfocus-format LoRAs (tests/genfocus_tiny.py): same
inputs, seeds and steps, outputs equal to float32 round-off. Also the K mapping, the
size rule and the weights' one-line errors (those need no reference)."""

from __future__ import annotations

import sys
import time

import numpy as np
import pytest

from conftest import REPO, SHARED

REFERENCE = SHARED / "reference" / "genfocus"  # ../shared/reference/genfocus from the repository
STEPS = 2
SEQ = 32  # T5 tokens (512 in real use): the same for both, and 16x less attention here

pytest.importorskip("diffusers", reason="the genfocus engine's packages are not installed (pip install -e '.[genfocus]')")
pytest.importorskip("peft", reason="the genfocus engine's packages are not installed (pip install -e '.[genfocus]')")


@pytest.fixture(scope="module")
def reference():
    if not (REFERENCE / "Genfocus" / "pipeline" / "flux.py").is_file():
        pytest.skip(f"the Genfocus reference code is not at {REFERENCE}")
    pytest.importorskip("cv2", reason="the reference imports cv2 (opencv-python-headless, in the test extra)")
    sys.path.insert(0, str(REFERENCE))
    try:
        from Genfocus.pipeline import flux
    finally:
        sys.path.remove(str(REFERENCE))
    return flux


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from genfocus_tiny import build_tiny_flux, write_lora

    root = tmp_path_factory.mktemp("tinyflux")
    base = build_tiny_flux(root / "base", vae_blocks=4)  # FLUX's 8x VAE: the 16 px rule and 512 px tiles hold
    loras = root / "loras"
    for i, name in enumerate(("deblurNet", "bokehNet", "deblurNet_with_pre_deblur")):
        write_lora(base, loras / f"{name}.safetensors", seed=10 + i)
    return base, loras


@pytest.fixture(scope="module")
def ours(tiny):
    from refocus.pipeline.genfocus import GenfocusEngine, GenfocusOptions

    base, loras = tiny
    return GenfocusEngine(GenfocusOptions(weights=str(loras), base_model=str(base), steps=STEPS, device="cpu",
                                          max_sequence_length=SEQ))


def _ref_pipe(tiny, file, adapter):
    import torch
    from diffusers import FluxPipeline

    base, loras = tiny
    pipe = FluxPipeline.from_pretrained(str(base), torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    pipe.load_lora_weights(str(loras), weight_name=file, adapter_name=adapter)
    pipe.set_adapters([adapter])
    return pipe


def _photo(h, w, seed):
    from PIL import Image

    u8 = (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)
    return Image.fromarray(u8), u8.astype(np.float32) / 255.0


def _ref_deblur(reference, pipe, conds, h, w, tiled):
    reference.seed_everything(42)
    return reference.generate(pipe, height=h, width=w, prompt="a sharp photo with everything in focus",
                              num_inference_steps=STEPS, conditions=conds, NO_TILED_DENOISE=not tiled,
                              output_type="np", max_sequence_length=SEQ).images[0]


def _agree(a, b, tol):
    assert a.shape == b.shape
    err = float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max())
    assert err <= tol, f"max |ours - reference| = {err:.3g} > {tol}"
    # Not a vacuous agreement: the outputs depend on the input.
    assert float(np.std(a)) > 1e-3


@pytest.mark.parametrize("h,w,tiled", [(96, 128, False), (512, 640, True)], ids=["whole", "tiled-2-windows"])
def test_deblur_matches_reference(reference, tiny, ours, h, w, tiled):
    pil, img = _photo(h, w, 1)
    ref = _ref_deblur(reference, _ref_pipe(tiny, "deblurNet.safetensors", "deblurring"),
                      [reference.Condition(pil, "deblurring", [0, 0], 1.0)], h, w, tiled)
    out = ours.deblur(img)
    _agree(out, ref, 1e-5)


def test_bfloat16_matches_reference(reference, tiny):
    """--genfocus-dtype bfloat16 (the GPU default): the same casts as the reference."""
    import torch
    from diffusers import FluxPipeline

    from refocus.pipeline.genfocus import GenfocusEngine, GenfocusOptions

    base, loras = tiny
    pil, img = _photo(48, 64, 6)
    pipe = FluxPipeline.from_pretrained(str(base), torch_dtype=torch.bfloat16)
    pipe.set_progress_bar_config(disable=True)
    pipe.load_lora_weights(str(loras), weight_name="deblurNet.safetensors", adapter_name="deblurring")
    pipe.set_adapters(["deblurring"])
    ref = _ref_deblur(reference, pipe, [reference.Condition(pil, "deblurring", [0, 0], 1.0)], 48, 64, False)
    ours = GenfocusEngine(GenfocusOptions(weights=str(loras), base_model=str(base), steps=STEPS, device="cpu",
                                          dtype="bfloat16", max_sequence_length=SEQ))
    _agree(ours.deblur(img), ref, 1e-5)


def test_pre_deblur_variant_matches_reference(reference, tiny, ours):
    h, w = 96, 128
    pil, img = _photo(h, w, 2)
    pre_pil, pre = _photo(h, w, 3)
    pipe = _ref_pipe(tiny, "deblurNet_with_pre_deblur.safetensors", "deblurring")
    conds = [reference.Condition(pre_pil, "deblurring", [0, 32], 1.0), reference.Condition(pil, "deblurring", [0, 0], 1.0)]
    ref = _ref_deblur(reference, pipe, conds, h, w, False)
    _agree(ours.deblur(img, pre_deblurred=pre), ref, 1e-5)
    # The pre-deblurred image is really used (a different one changes the result).
    assert float(np.abs(ours.deblur(img, pre_deblurred=img) - ref).max()) > 1e-3


def _scene(h, w):
    """Metric depth (m): a far wall, a table at 2.5 m, a near box at 0.9 m."""
    z = np.full((h, w), 8.0, np.float32)
    z[h // 3:, :] = 2.5
    z[h // 2:, w // 4: w // 2] = 0.9
    return z


@pytest.mark.parametrize("how", ["point", "mask"])
def test_bokeh_matches_reference(reference, tiny, ours, how):
    """Their script's condition (inverse metric depth, their K, their focus rule) against
    ours (normalised disparity, K mapped by refocus_strength, refocus's focus selection)."""
    import torch

    from refocus.depth.focus import select_focus
    from refocus.pipeline.genfocus import refocus_strength

    h, w, k_theirs = 96, 128, 200.0
    pil, img = _photo(h, w, 4)
    disp = 1.0 / _scene(h, w)
    mask = np.zeros((h, w), bool)
    mask[h // 2 + 5: h - 5, w // 4 + 4: w // 2 - 4] = True  # on the near box
    point = (w - 10, h // 3 + 6)  # on the table
    f_theirs = float(np.median(disp[mask])) if how == "mask" else float(disp[point[1], point[0]])
    cond_map = torch.from_numpy(np.abs(k_theirs * (disp - np.float32(f_theirs))))[None].float()
    cond_map = (cond_map / 100.0).clamp(0, 1).repeat(3, 1, 1).unsqueeze(0)
    pipe = _ref_pipe(tiny, "bokehNet.safetensors", "bokeh")
    reference.seed_everything(42)
    ref = reference.generate(
        pipe, height=h, width=w, prompt="an excellent photo with a large aperture", num_inference_steps=STEPS,
        conditions=[reference.Condition(pil, "bokeh"), reference.Condition(cond_map, "bokeh", [0, 0], 1.0, No_preprocess=True)],
        guidance_scale=1.0, kv_cache=False, generator=torch.Generator(device="cpu").manual_seed(1234),
        NO_TILED_DENOISE=True, output_type="np", max_sequence_length=SEQ,
    ).images[0]

    lo, hi = float(disp.min()), float(disp.max())
    d = (disp - lo) / (hi - lo)
    k_ours = refocus_strength(k_theirs, lo, hi)
    f = select_focus(d, point=point if how == "point" else None, mask=mask if how == "mask" else None).focus_disparity
    coc = (k_ours * (d - f)).astype(np.float32)
    assert float(np.abs(coc).max()) > 100  # some of the condition saturates at 1, some does not
    _agree(ours.bokeh(img, coc), ref, 2e-5)


def test_strength_mapping():
    """K_refocus = K_genfocus * (1/z_near - 1/z_far): the same |CoC| everywhere."""
    from refocus.pipeline.genfocus import defocus_condition, refocus_strength

    z = _scene(40, 60)
    disp = 1.0 / z
    lo, hi = float(disp.min()), float(disp.max())
    k = refocus_strength(15.0, lo, hi)
    assert k == pytest.approx(15.0 * (1 / 0.9 - 1 / 8.0))
    d = (disp - lo) / (hi - lo)
    np.testing.assert_allclose(np.abs(k * (d - d[20, 5])), np.abs(15.0 * (disp - disp[20, 5])), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(defocus_condition(np.array([-250.0, -50.0, 0.0, 30.0])), [1.0, 0.5, 0.0, 0.3], rtol=1e-6)


def test_size_rule_matches_reference_script():
    """Sizes rounded up to multiples of 16 px, as the authors' scripts resize."""
    from refocus.pipeline.genfocus import model_size

    assert model_size(100, 130) == (112, 144)
    assert model_size(512, 640) == (512, 640)
    assert model_size(1000, 3000, long_side=1024) == (336, 1024)
    if (REFERENCE / "Inference_deblurNet.py").is_file():
        pytest.importorskip("cv2")
        from PIL import Image

        sys.path.insert(0, str(REFERENCE))
        try:
            import Inference_deblurNet as script
        finally:
            sys.path.remove(str(REFERENCE))
        for h, w in [(100, 130), (17, 33), (512, 640)]:
            assert script.resize_and_pad_image(Image.new("RGB", (w, h)), 0).size == model_size(h, w)[::-1]


def test_missing_weights_one_line_within_seconds(tmp_path, monkeypatch):
    from refocus.errors import RefocusError
    from refocus.pipeline.genfocus import GenfocusEngine, GenfocusOptions

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    t0 = time.perf_counter()
    with pytest.raises(RefocusError) as err:
        GenfocusEngine(GenfocusOptions()).check_weights(["bokeh"])
    assert time.perf_counter() - t0 < 5
    msg = str(err.value)
    assert "\n" not in msg and "HF_HUB_OFFLINE" in msg and "--genfocus-weights" in msg
    with pytest.raises(RefocusError, match="no bokehNet.safetensors"):
        GenfocusEngine(GenfocusOptions(weights=str(tmp_path))).check_weights(["bokeh"])
    (tmp_path / "bokehNet.safetensors").write_bytes(b"")
    with pytest.raises(RefocusError, match="--base-model") as err:
        GenfocusEngine(GenfocusOptions(weights=str(tmp_path))).check_weights(["bokeh"])
    assert "black-forest-labs/FLUX.1-dev" in str(err.value)


def _run(args):
    from refocus.cli import main

    with pytest.raises(SystemExit) as exc:
        main(args)
    return exc.value.code


def test_cli_refocus_with_tiny_weights(tiny, tmp_path):
    """`refocus refocus --engine genfocus` end to end: our depth file and focus point,
    both stages, a size that is not a multiple of 16 (resized in, and back out)."""
    from refocus.io import read_image, write_image

    base, loras = tiny
    src, out = tmp_path / "in.png", tmp_path / "out.png"
    write_image(src, np.random.default_rng(5).random((90, 120, 3)).astype(np.float32))
    np.save(tmp_path / "d.npy", np.linspace(0, 1, 90 * 120, dtype=np.float32).reshape(90, 120))
    args = ["refocus", str(src), "-o", str(out), "--depth", str(tmp_path / "d.npy"), "--focus", "60,45", "-k", "40",
            "--engine", "genfocus", "--genfocus-weights", str(loras), "--base-model", str(base), "--genfocus-steps", "1",
            "--device", "cpu", "--save-intermediate", str(tmp_path / "mid")]
    assert _run(args) in (0, None)
    img, _ = read_image(out)
    assert img.shape == (90, 120, 3) and float(img.std()) > 1e-3
    assert (tmp_path / "mid").is_dir()


def test_cli_deblur_and_render_with_tiny_weights(tiny, tmp_path, capsys):
    from refocus.io import read_image, write_image

    base, loras = tiny
    src = tmp_path / "in.png"
    write_image(src, np.random.default_rng(7).random((48, 64, 3)).astype(np.float32))
    np.save(tmp_path / "d.npy", np.tile(np.linspace(0, 1, 64, dtype=np.float32), (48, 1)))
    gen = ["--engine", "genfocus", "--genfocus-weights", str(loras), "--base-model", str(base), "--genfocus-steps", "1",
           "--device", "cpu"]
    assert _run(["deblur", str(src), "-o", str(tmp_path / "aif.png"), *gen, "--pre-deblur"]) in (0, None)
    assert _run(["render", str(tmp_path / "aif.png"), "--depth", str(tmp_path / "d.npy"), "-o", str(tmp_path / "b.png"),
                 "-k", "50", "--focus", "10,20", *gen, "--aperture", "polygon"]) in (0, None)
    err = capsys.readouterr().err
    assert "pre-deblur" in err and "Genfocus BokehNet" in err and "--aperture is not used" in err
    for name in ("aif.png", "b.png"):
        assert read_image(tmp_path / name)[0].shape == (48, 64, 3)
    assert _run(["deblur", str(src), "-o", str(tmp_path / "x.png"), *gen, "--defocus-map", str(tmp_path / "m.png")]) == 2
    assert "no defocus map" in capsys.readouterr().err


def test_cli_help_documents_the_engine(capsys):
    assert _run(["refocus", "--engine", "genfocus", "--help"]) in (0, None)
    text = " ".join(capsys.readouterr().out.split())
    for words in ("genfocus", "FLUX.1-dev", "hf auth login", "refocus[genfocus]", "--genfocus-weights", "--base-model"):
        assert words in text


def test_cli_missing_weights_one_line_exit_2(tmp_path, capsys, monkeypatch):
    from refocus.io import write_image

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    src = tmp_path / "in.png"
    write_image(src, np.random.default_rng(0).random((32, 48, 3)).astype(np.float32))
    for cmd in (["refocus", str(src), "-o", str(tmp_path / "o.png"), "--focus-value", "0.5"],
                ["deblur", str(src), "-o", str(tmp_path / "o.png")]):
        t0 = time.perf_counter()
        assert _run(cmd + ["--engine", "genfocus"]) == 2
        assert time.perf_counter() - t0 < 10
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and err.startswith("error: genfocus weights") and "--genfocus-weights" in err
    assert _run(["deblur", str(src), "-o", str(tmp_path / "o.png"), "--seed", "3"]) == 2
    assert "--engine genfocus" in capsys.readouterr().err
    assert not (tmp_path / "o.png").exists()


def test_bench_method_is_opt_in_and_scores(tiny, tmp_path, monkeypatch):
    """`refocus bench quality --methods genfocus` runs the engine on the benchmark's
    cases; the default run does not (it would start a 34 GB download)."""
    from refocus.bench import methods as mreg
    from refocus.bench import quality as q

    base, loras = tiny
    monkeypatch.setenv("REFOCUS_GENFOCUS_WEIGHTS", str(loras))
    monkeypatch.setenv("REFOCUS_GENFOCUS_BASE_MODEL", str(base))
    monkeypatch.setenv("REFOCUS_GENFOCUS_STEPS", "1")
    mreg.load_plugins()
    assert "genfocus" not in [m.name for m in mreg.methods_for("bokeh")]
    assert "genfocus" in [m.name for m in mreg.methods_for("bokeh", ["genfocus"])]
    run = q.run_quality(["bokeh"], q.parse_data("synthetic"), ["genfocus"], quick=True)
    rows = q.summarise(run)["bokeh"]
    assert any("genfocus" in r for r in rows.values()), run.notes
    # Without weights: skipped, with the reason as a note (not a crash, not a hang).
    monkeypatch.setenv("REFOCUS_GENFOCUS_WEIGHTS", "")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    run = q.run_quality(["bokeh"], q.parse_data("synthetic"), ["genfocus"], quick=True)
    assert not q.summarise(run) and any("genfocus skipped" in n and "HF_HUB_OFFLINE" in n for n in run.notes), run.notes


def test_conditions_at_model_size_and_in_range(monkeypatch):
    """A photo of 90 x 120 px reaches the model at 96 x 128, every condition in [0, 1]
    (the pipeline's image processor takes negative values, which Lanczos overshoot
    makes, for an image already in [-1, 1]); the result comes back at 90 x 120."""
    from refocus.pipeline.genfocus import GenfocusEngine, GenfocusOptions

    seen = []

    def fake_run(self, task, prompt, guidance, conds, hw, noise_seed, cond_seed, progress):
        seen.append((task, prompt, guidance, conds, hw, noise_seed, cond_seed))
        return np.full((*hw, 3), 0.5, np.float32)

    monkeypatch.setattr(GenfocusEngine, "_run", fake_run)
    eng = GenfocusEngine(GenfocusOptions(device="cpu"))
    checker = np.indices((90, 120)).sum(0) % 2
    img = np.repeat(checker[..., None], 3, axis=2).astype(np.float32)
    assert eng.deblur(img).shape == (90, 120, 3)
    coc = np.linspace(-300, 300, 90 * 120, dtype=np.float32).reshape(90, 120)
    assert eng.bokeh(img, coc).shape == (90, 120, 3)
    assert eng.deblur(img, pre_deblurred=img).shape == (90, 120, 3)
    (t1, p1, g1, c1, hw1, s1, cs1), (t2, p2, g2, c2, hw2, s2, cs2), (t3, _, _, c3, _, _, _) = seen
    assert (t1, p1, g1, hw1, s1, cs1) == ("deblur", "a sharp photo with everything in focus", 3.5, (96, 128), 42, None)
    assert (t2, p2, g2, hw2, s2, cs2) == ("bokeh", "an excellent photo with a large aperture", 1.0, (96, 128), 1234, 42)
    assert t3 == "deblur-pre" and [c.offset for c in c3] == [(0, 32), (0, 0)]
    for c in c1 + c3 + c2[:1]:
        assert c.pixels.shape == (96, 128, 3) and 0 <= c.pixels.min() and c.pixels.max() <= 1
    dmap = c2[1].pixels.numpy()
    assert c2[1].raw and dmap.shape == (1, 3, 96, 128) and dmap.min() < 0.01 and dmap.max() == 1


def test_ui_engine_choice_only_when_installed(monkeypatch):
    pytest.importorskip("gradio")
    from refocus.pipeline.genfocus import weights
    from refocus.ui.app import build_app

    def engine_radio(app):
        found = [b for b in app.blocks.values() if getattr(b, "elem_id", None) == "engine"]
        assert len(found) == 1
        return found[0]

    monkeypatch.setattr(weights, "packages_missing", lambda: [])
    assert engine_radio(build_app("cpu")).visible
    monkeypatch.setattr(weights, "packages_missing", lambda: ["diffusers"])
    assert not engine_radio(build_app("cpu")).visible


def test_ui_export_with_the_generative_engine(tiny, tmp_path, monkeypatch):
    from PIL import Image

    from refocus.io import read_image
    from refocus.pipeline import RefocusConfig
    from refocus.ui import session

    base, loras = tiny
    monkeypatch.setenv("REFOCUS_GENFOCUS_WEIGHTS", str(loras))
    monkeypatch.setenv("REFOCUS_GENFOCUS_BASE_MODEL", str(base))
    monkeypatch.setenv("REFOCUS_GENFOCUS_STEPS", "1")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(tmp_path / "p.png")
    np.save(tmp_path / "d.npy", np.tile(np.linspace(0, 1, 64, dtype=np.float32), (48, 1)))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    key = session.load(str(tmp_path / "p.png"), str(tmp_path / "d.npy"), "disparity")
    cfg = RefocusConfig(focus_xy=(10.0, 10.0), strength=30.0)
    phys = read_image(session.export(key, cfg, tmp_path / "a", "png16"))[0]
    gen = read_image(session.export(key, cfg, tmp_path / "b", "png16", engine="genfocus"))[0]
    assert phys.shape == gen.shape == (48, 64, 3)
    assert float(np.abs(phys - gen).mean()) > 0.05  # a random FLUX: nothing like the renderer


def test_gpu_eval_script_writes_the_benchmark_report(tiny, tmp_path, monkeypatch):
    """training/eval_genfocus.py on the tiny FLUX (CPU): it runs and writes the same
    report as `refocus bench quality`, with a genfocus row (numbers meaningless here)."""
    import importlib.util
    import json

    base, loras = tiny
    spec = importlib.util.spec_from_file_location("eval_genfocus", REPO / "training" / "eval_genfocus.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for k in ("REFOCUS_GENFOCUS_STEPS", "REFOCUS_GENFOCUS_WEIGHTS", "REFOCUS_GENFOCUS_BASE_MODEL",
              "REFOCUS_GENFOCUS_OFFLOAD", "REFOCUS_GENFOCUS_PRE_DEBLUR"):
        monkeypatch.delenv(k, raising=False)  # main() sets them; monkeypatch restores
        monkeypatch.setenv(k, "")
    out = tmp_path / "out"
    rc = mod.main(["--out", str(out), "--data", "synthetic", "--tasks", "bokeh", "--methods", "input", "--quick",
                   "--genfocus-weights", str(loras), "--base-model", str(base), "--steps", "1"])
    assert rc == 0
    report = json.loads((out / "report.json").read_text())
    rows = report["summary"]["bokeh"]
    assert all("genfocus" in per_ds and "input" in per_ds for per_ds in rows.values()), report["notes"]
    assert json.loads((out / "genfocus-run.json").read_text())["settings"]["REFOCUS_GENFOCUS_STEPS"] == "1"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert mod.main(["--out", str(tmp_path / "x"), "--data", "synthetic", "--quick"]) == 2
