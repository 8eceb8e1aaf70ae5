"""``refocus bench speed``: how long each stage takes, and how much memory it needs.

Every measurement runs in a fresh child process so that its peak resident memory
(``ru_maxrss``) belongs to that measurement alone; inside the child the work is
repeated and the median wall time is reported. Results go to ``speed.json`` and
``speed.md`` (with the machine they came from) and are printed as a table.

Cases (the renderer issue's protocol): a 12-megapixel (4000 x 3000) image, smooth
random disparity, maximum |CoC| of 8, 16, 32 and 64 px, disc aperture; on the CPU
(numpy path) and, when CUDA is present, on the GPU (torch path). DeblurNet and the
pipeline (depth file -> DeblurNet where it helps -> renderer, at max |CoC| 32 px) and the
UI's interactive re-render of a 1-megapixel preview are timed too; the subject case and the
preview also with cat's-eye, whose kernel varies over the frame. The depth stage
(``get_depth`` with the default network's architecture, Depth Anything V2 Small, built
from its config with random weights -- the time does not depend on the weights -- plus
the edge-aware upsampling to the photo's size) is timed on the same image.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from refocus.bench.machine import cpu_words, git_state, machine_info
from refocus.errors import RefocusError

#: Targets from the issues (seconds; None where none was set), for the report.
TARGETS = {
    ("deblur", "cpu", None): 60.0,
    ("depth", "cpu", None): 2.0,
    ("deblur", "cuda", None): 1.0,
    ("interactive", "cpu", None): 0.3,
    ("render", "cpu", 64): 5.0,
    ("render", "cuda", 32): 0.10,
    ("render", "cuda", 64): 0.40,
}


#: The cat's-eye of the render and preview cases that time a kernel varying over the
#: frame (the UI slider's middle).
CATS_EYE_CASE = 0.5


def smooth_disparity(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth random disparity in [0, 1] (bicubic upsampling of 8 x 8 noise)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    small = rng.random((8, 8)).astype(np.float32)
    d = np.asarray(Image.fromarray(small, mode="F").resize((w, h), Image.BICUBIC), dtype=np.float32)
    return (d - d.min()) / max(float(d.max() - d.min()), 1e-6)


def _child_render(h: int, w: int, max_coc: float, device: str, quality: str, repeats: int, scene: str = "smooth",
                  cats_eye: float = 0.0) -> dict:
    """On the CPU, numpy in and out. On a GPU the inputs and the result stay on the
    device (as in a GPU pipeline, and as BokehMe's GPU timings are taken); the time
    with host copies in and out is reported beside it.

    ``scene``: ``"smooth"`` (smooth random depth, no depth jump: the summed render
    alone, refocus.render.zone) or ``"subject"`` (the same with a flat subject in
    focus, a third of the frame with sharp edges: the over and summed renders blended,
    as on a photo). ``cats_eye`` > 0: with that cat's-eye (a kernel that varies over
    the frame)."""
    from refocus.aperture import ApertureConfig
    from refocus.render import RenderConfig, render_linear

    rng = np.random.default_rng(1)
    img = rng.random((h, w, 3), dtype=np.float32)
    coc = (2 * max_coc * (smooth_disparity(h, w) - 0.5)).astype(np.float32)
    if scene == "subject":
        coc[h // 3 : 2 * h // 3, w // 3 : 2 * w // 3] = 0.0
    cfg = RenderConfig(quality=quality, device="cuda" if device == "cuda" else "cpu", aperture=ApertureConfig(cats_eye=cats_eye))
    label = {"note": "a subject in focus (depth jumps)", "scene": "subject"} if scene == "subject" else {}
    if cats_eye > 0:
        label = {**label, "cats_eye": cats_eye, "note": label.get("note", "smooth depth") + f", cat's-eye {cats_eye:g}"}
    if device != "cuda":
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            render_linear(img, coc, cfg)
            times.append(time.perf_counter() - t0)
        return {"times_s": times, **label}
    import torch

    def timed(fn) -> list[float]:
        fn()  # warm-up: CUDA context, kernels, cuFFT plans, the caching allocator
        out = []
        for _ in range(repeats):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            fn()
            torch.cuda.synchronize()
            out.append(time.perf_counter() - t0)
        return out

    img_t, coc_t = torch.as_tensor(img, device="cuda"), torch.as_tensor(coc, device="cuda")
    torch.cuda.reset_peak_memory_stats()
    times = timed(lambda: render_linear(img_t, coc_t, cfg))
    peak_mb = torch.cuda.max_memory_allocated() / 2**20
    host = timed(lambda: render_linear(img, coc, cfg))
    subject = "a subject in focus (depth jumps); " if scene == "subject" else ""
    if cats_eye > 0:
        subject += f"cat's-eye {cats_eye:g}; "
    return {"times_s": times, "peak_gpu_mb": peak_mb, "host_copies_s": host, **({"scene": scene} if scene == "subject" else {}),
            **({"cats_eye": cats_eye} if cats_eye > 0 else {}),
            "note": f"{subject}tensors on the GPU; {float(np.median(host)):.3f} s with numpy in/out; peak GPU {peak_mb:.0f} MiB"}


def _child_deblur(h: int, w: int, device: str, repeats: int) -> dict:
    from refocus.deblur import deblur

    rng = np.random.default_rng(2)
    img = rng.random((h, w, 3), dtype=np.float32)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        deblur(img, device=device)
        times.append(time.perf_counter() - t0)
    if device == "cuda":
        import torch

        peak_mb = torch.cuda.max_memory_allocated() / 2**20
        return {"times_s": times, "peak_gpu_mb": peak_mb, "note": f"numpy in/out; first run loads the model; peak GPU {peak_mb:.0f} MiB"}
    return {"times_s": times}


def depth_anything_v2_small(seed: int = 0):
    """Depth Anything V2 Small's architecture (config of
    ``depth-anything/Depth-Anything-V2-Small-hf``: DINOv2-S/14 backbone, hidden 384,
    12 layers, 6 heads; DPT neck 48-96-192-384, fusion 64) and its image processor
    (518 px, aspect kept, multiple of 14), with random weights: nothing downloaded."""
    import torch
    import transformers

    torch.manual_seed(seed)
    backbone = transformers.Dinov2Config(
        image_size=518, patch_size=14, hidden_size=384, num_hidden_layers=12, num_attention_heads=6, mlp_ratio=4,
        layerscale_value=1.0, out_indices=[3, 6, 9, 12], reshape_hidden_states=False,
    )
    cfg = transformers.DepthAnythingConfig(
        backbone_config=backbone, patch_size=14, reassemble_hidden_size=384, reassemble_factors=[4, 2, 1, 0.5],
        neck_hidden_sizes=[48, 96, 192, 384], fusion_hidden_size=64, head_hidden_size=32, depth_estimation_type="relative",
    )
    net = transformers.DepthAnythingForDepthEstimation(cfg).eval()
    proc_cls = getattr(transformers, "DPTImageProcessorPil", None) or transformers.DPTImageProcessor
    proc = proc_cls(
        do_resize=True, size={"height": 518, "width": 518}, keep_aspect_ratio=True, ensure_multiple_of=14, resample=3,
        do_rescale=True, do_normalize=True, image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225], do_pad=False,
    )
    return proc, net


def _child_depth(h: int, w: int, device: str, repeats: int) -> dict:
    """``get_depth`` on a photo without depth: the default network's architecture
    (random weights) at its own resolution, then edge-aware upsampling to h x w."""
    import tempfile

    from refocus.depth import get_depth

    rng = np.random.default_rng(4)
    # A photo-like image (smooth regions and edges), so the edge-aware step does real work.
    img = np.clip(smooth_disparity(h, w, seed=5)[..., None] * np.array([0.9, 0.6, 0.3], np.float32)
                  + rng.normal(0, 0.02, (h, w, 3)).astype(np.float32), 0, 1).astype(np.float32)
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        proc, net = depth_anything_v2_small()
        net.save_pretrained(tmp)
        proc.save_pretrained(tmp)
        t0 = time.perf_counter()
        get_depth(None, image=img, model=tmp, device=device)
        load_s = time.perf_counter() - t0
        for _ in range(repeats):
            t0 = time.perf_counter()
            res = get_depth(None, image=img, model=tmp, device=device)
            times.append(time.perf_counter() - t0)
    rh, rw = res.raw_shape
    return {"times_s": times, "note": f"network at {rw}x{rh}; first call (loads the model) {load_s:.2f} s"}


def _child_interactive(device: str, repeats: int, draft: bool = False, cats_eye: float = 0.0) -> dict:
    """The UI's re-render after a focus change: the 1 MP preview, or (``draft``) the
    0.25 MP draft it shows first and while a slider moves, with the same blur in
    proportion (K = 15 px on the preview, 7.5 px on the draft). ``cats_eye`` > 0:
    the preview with the UI's cat's-eye slider there (a kernel that varies over the
    frame)."""
    from refocus.aperture import ApertureConfig
    from refocus.pipeline import bench_interactive
    from refocus.pipeline.speed import DRAFT_PIXELS, PREVIEW_PIXELS

    pixels = DRAFT_PIXELS if draft else PREVIEW_PIXELS
    k = 15.0 * (pixels / PREVIEW_PIXELS) ** 0.5
    aperture = ApertureConfig(cats_eye=cats_eye) if cats_eye > 0 else None
    res = bench_interactive(focus_points=max(repeats, 3), preview_pixels=pixels, strength_px=k, device=device, aperture=aperture)
    h, w = res["preview_shape"]
    label = "draft (first after a click, and while dragging)" if draft else "preview"
    if cats_eye > 0:
        label += f", cat's-eye {cats_eye:g}"
    return {"times_s": list(res["render_s"]), "size_label": f"{w}x{h} {label}", "note": f"prepare once: {res['prepare_s']:.2f} s",
            "draft": draft, **({"cats_eye": cats_eye} if cats_eye > 0 else {})}


def _child_grain(h: int, w: int, repeats: int) -> dict:
    """``--grain``'s own cost: the photo's noise measured (:func:`refocus.render.grain.estimate_noise`)
    and added back over a render blurred everywhere (the most pixels it touches)."""
    from refocus.render.grain import add_grain, estimate_noise

    rng = np.random.default_rng(6)
    img = np.clip(smooth_disparity(h, w, seed=7)[..., None] * np.array([0.8, 0.6, 0.4], np.float32)
                  + rng.normal(0, 0.01, (h, w, 3)).astype(np.float32), 0, 1).astype(np.float32)
    coc = (16.0 * (smooth_disparity(h, w, seed=8) - 0.5)).astype(np.float32)
    times, measure = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        noise = estimate_noise(img)
        t1 = time.perf_counter()
        add_grain(img, coc, noise)
        times.append(time.perf_counter() - t0)
        measure.append(t1 - t0)
    return {"times_s": times, "note": f"of which measuring the noise {float(np.median(measure)):.2f} s"}


def _child_pipeline(h: int, w: int, max_coc: float, device: str, repeats: int) -> dict:
    """The whole pipeline (depth from a file, DeblurNet where it helps, renderer) on files."""
    import tempfile

    from refocus.io import write_image
    from refocus.pipeline import refocus

    rng = np.random.default_rng(3)
    img = rng.random((h, w, 3), dtype=np.float32)
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        photo, depth = f"{tmp}/photo.png", f"{tmp}/disparity.npy"
        write_image(photo, img)
        np.save(depth, smooth_disparity(h, w))
        for _ in range(repeats):
            t0 = time.perf_counter()
            refocus(photo, depth_path=depth, focus_value=0.5, strength=2 * max_coc, device=device)
            times.append(time.perf_counter() - t0)
    return {"times_s": times}


def _run_child(kind: str, args: dict, timeout_s: float) -> dict:
    """Run one measurement in a child process; returns its dict plus peak memory."""
    code = (
        "import json, resource, sys\n"
        "from refocus.render.memory import keep_freed_memory\n"
        "keep_freed_memory()\n"
        "from refocus.bench import speed\n"
        f"res = speed._child_{kind}(**json.loads(sys.argv[1]))\n"
        "res['peak_rss_mb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        "print('@@' + json.dumps(res))\n"
    )
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code, json.dumps(args)], capture_output=True, text=True, timeout=timeout_s
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout_s:.0f} s"}
    for line in proc.stdout.splitlines():
        if line.startswith("@@"):
            return json.loads(line[2:])
    err = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"error": err}


def run_speed(
    out_dir: Path | str = "bench-out/speed",
    device: str = "auto",
    quick: bool = False,
    size: tuple[int, int] | None = None,
    max_cocs: tuple[float, ...] | None = None,
    repeats: int | None = None,
    quality: str = "balanced",
    stages: tuple[str, ...] = ("render", "deblur", "depth", "pipeline", "interactive", "grain"),
) -> dict:
    """Time the stages; write ``speed.json`` and ``speed.md`` into ``out_dir``.

    Parameters
    ----------
    device:
        ``cpu``, ``cuda`` or ``auto`` (CPU always; CUDA too when present).
    quick:
        Small image (512 x 384), two CoC sizes, one repeat: a smoke test.
    size:
        (height, width) of the test image; default 3000 x 4000 (12 MP).
    """
    import torch
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=True)
    has_cuda = torch.cuda.is_available()
    if device == "cuda" and not has_cuda:
        raise RefocusError("--device cuda was asked for but no CUDA GPU is available")
    devices = {"cpu": ["cpu"], "cuda": ["cuda"], "auto": ["cpu"] + (["cuda"] if has_cuda else [])}[device]
    h, w = size or ((384, 512) if quick else (3000, 4000))
    max_cocs = max_cocs or ((8.0, 16.0) if quick else (8.0, 16.0, 32.0, 64.0))
    repeats = repeats or (1 if quick else 3)
    timeout_s = 120.0 if quick else 1800.0
    rows = []
    jobs = []
    if "render" in stages:
        for dev in devices:
            for c in max_cocs:
                jobs.append(("render", dev, c, {"h": h, "w": w, "max_coc": c, "device": dev, "quality": quality, "repeats": repeats}))
            c = max(max_cocs)  # and a photo's case: depth jumps around a subject
            jobs.append(("render", dev, c, {"h": h, "w": w, "max_coc": c, "device": dev, "quality": quality, "repeats": repeats,
                                            "scene": "subject"}))
            # and with cat's-eye, whose kernel varies over the frame
            jobs.append(("render", dev, c, {"h": h, "w": w, "max_coc": c, "device": dev, "quality": quality, "repeats": repeats,
                                            "scene": "subject", "cats_eye": CATS_EYE_CASE}))
    if "deblur" in stages:
        for dev in devices:
            jobs.append(("deblur", dev, None, {"h": h, "w": w, "device": dev, "repeats": 1 if dev == "cpu" else repeats}))
    if "depth" in stages:
        for dev in devices:
            jobs.append(("depth", dev, None, {"h": h, "w": w, "device": dev, "repeats": repeats}))
    if "pipeline" in stages:
        for dev in devices:
            jobs.append(("pipeline", dev, 32.0, {"h": h, "w": w, "max_coc": 32.0, "device": dev, "repeats": 1}))
    if "grain" in stages:  # numpy on the CPU whatever the device
        jobs.append(("grain", "cpu", None, {"h": h, "w": w, "repeats": repeats}))
    if "interactive" in stages:
        for dev in devices:
            jobs.append(("interactive", dev, None, {"device": dev, "repeats": repeats}))
            jobs.append(("interactive", dev, None, {"device": dev, "repeats": repeats, "draft": True}))
            jobs.append(("interactive", dev, None, {"device": dev, "repeats": repeats, "cats_eye": CATS_EYE_CASE}))
    from rich.progress import Progress

    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("timing", total=len(jobs))
        for stage, dev, c, args in jobs:
            progress.update(task, description=f"{stage} {dev}" + (f" max CoC {c:g} px" if c else ""))
            res = _run_child(stage, args, timeout_s)
            row = {"stage": stage, "device": dev, "size": f"{w}x{h}", "max_coc_px": c, **res}
            if "times_s" in res:
                row["median_s"] = float(np.median(res["times_s"]))
            target = TARGETS.get((stage, dev, c if stage == "render" else None))
            # The targets are set for 12 MP (and a 1 MP preview); other sizes get none.
            if res.get("cats_eye"):
                target = None  # the targets are set for a disc
            elif stage == "interactive":
                target = None if res.get("draft") else target
            elif (h, w) != (3000, 4000):
                target = None
            if target is not None:
                row["target_s"] = target
            rows.append(row)
            progress.advance(task)
    # A --quick smoke run (small image, one repeat) went into tables unflagged, and no
    # report said when or from which code it came (found 2026-12-07).
    report = {"machine": machine_info(), "quality": quality, "repeats": repeats, "quick": quick,
              "date": time.strftime("%Y-%m-%d %H:%M:%S"), "git": git_state(), "rows": rows}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    from refocus.io import atomic_write_bytes

    atomic_write_bytes(out_dir / "speed.json", lambda p: Path(p).write_text(json.dumps(report, indent=2)))
    lines = [
        "# refocus bench speed",
        "",
        f"Machine: {cpu_words(report['machine'])}, {report['machine']['cpu_count']} cores"
        + (f", GPU {report['machine']['gpu']}" if "gpu" in report["machine"] else "")
        + f"; torch {report['machine'].get('torch', '?')}. Renderer quality: {quality}. Median of {repeats}.",
        "",
        "| stage | device | size | max CoC (px) | median (s) | target (s) | peak memory (MiB) | note |",
        "|---|---|---|---:|---:|---:|---:|---|",
    ]
    table = Table(title="refocus bench speed")
    for col in ("stage", "device", "size", "max CoC px", "median s", "target s", "peak MiB", "note"):
        table.add_column(col)
    for r in rows:
        cells = [
            r["stage"],
            r["device"],
            r.get("size_label", r["size"]) if r["stage"] == "interactive" else r["size"],
            f"{r['max_coc_px']:g}" if r.get("max_coc_px") else "",
            f"{r['median_s']:.3f}" if "median_s" in r else "",
            f"{r['target_s']:g}" if "target_s" in r else "",
            f"{r['peak_rss_mb']:.0f}" if "peak_rss_mb" in r else "",
            r.get("error", r.get("note", "")),
        ]
        lines.append("| " + " | ".join(cells) + " |")
        table.add_row(*cells)
    atomic_write_bytes(out_dir / "speed.md", lambda p: Path(p).write_text("\n".join(lines) + "\n"))
    Console().print(table)
    console.print(f"wrote {out_dir / 'speed.json'} and {out_dir / 'speed.md'}")
    return report
