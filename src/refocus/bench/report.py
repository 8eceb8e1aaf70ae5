"""Writing a quality run: ``report.md``, ``report.json`` and contact sheets.

``report.json`` layout::

    {"meta": {...machine, date, tasks, data, quick, lpips_weights...},
     "summary": {task: {dataset: {method: {"n", "psnr", "ssim", "lpips", "seconds"}}}},
     "cases": [{"task", "dataset", "case", "crop_px", "meta",
                "results": {method: {"psnr", "ssim", "lpips", "seconds"}}}],
     "methods": {task: {method: description}},
     "notes": [...],
     "reference": {...numbers quoted from the issues for the light-field protocol}}

PSNR is in dB, capped at 100 for identical images (so JSON never holds Infinity);
``lpips`` is ``null`` when the weights were not available. ``seconds`` is the
method's wall time per case on the machine in ``meta.machine``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from refocus.bench.machine import cpu_words
from refocus.bench.methods import TASKS
from refocus.bench.quality import QualityRun, summarise

#: Published/issue reference means on hci-antinous at half resolution (6 cases each):
#: (PSNR dB, LPIPS). Quoted so a run can be checked against them at a glance.
REFERENCE = {
    "bokeh": {
        "input": (33.30, 0.240),
        "gaussian blur by CoC, no occlusion handling (issue)": (37.73, 0.066),
        "BokehMe (issue)": (41.06, 0.049),
    },
    "refocus": {
        "input": (30.43, 0.262),
        "naive: blur the input by the new CoC (issue)": (32.34, 0.204),
    },
}


def _fmt(v, digits: int) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


#: First line of every report.md this module writes (how an earlier report is recognised).
MD_TITLE = "# Quality benchmark"
#: First line of every speed.md of ``refocus bench speed``.
SPEED_MD_TITLE = "# refocus bench speed"


def _first_line(path: Path) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.readline().rstrip("\n")
    except OSError:
        return ""


def json_keys(path: Path) -> set[str]:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    return set(doc) if isinstance(doc, dict) else set()


def is_quality_report(folder: str | Path) -> bool:
    """Whether ``folder`` holds a report of an earlier ``refocus bench quality``."""
    folder = Path(folder)
    return ({"meta", "summary", "cases"} <= json_keys(folder / "report.json")
            or _first_line(folder / "report.md") == MD_TITLE)


def _is_speed_report(folder: Path) -> bool:
    return {"machine", "rows"} <= json_keys(folder / "speed.json") or _first_line(folder / "speed.md") == SPEED_MD_TITLE


def check_out_folder(out: str | Path, names: list[str], is_earlier_report: bool, overwrite: bool = False) -> None:
    """Refuse, before any work, an ``--out`` folder the report cannot go into.

    ``out`` must be a folder (or not exist yet, under a writable folder). The files
    ``names`` it will hold replace those of an earlier report of the same command
    (``is_earlier_report``), which a rerun is expected to refresh; any other file
    of those names may be the user's own and is kept unless ``overwrite``.

    Raises
    ------
    RefocusError
        One line naming the path and what to do.
    """
    from refocus.errors import RefocusError
    from refocus.io.image import nearest_existing

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RefocusError(f"--out {out} is a file; --out names a folder for the report files ({', '.join(names)})")
    p = nearest_existing(out)
    if p.exists() and not p.is_dir():
        raise RefocusError(f"cannot write into --out {out}: {p} is a file, not a folder")
    if p.exists() and not os.access(p, os.W_OK):
        raise RefocusError(f"cannot write into --out {out}: the folder {p} is not writable")
    if overwrite or is_earlier_report or not out.is_dir():
        return
    for name in names:
        hits = sorted(out.glob(name))
        if hits:
            raise RefocusError(f"{hits[0]} already exists and is not from an earlier report of this command; "
                               "move it, choose another --out, or pass --overwrite")


def check_quality_out(out: str | Path, overwrite: bool = False) -> None:
    """:func:`check_out_folder` for ``refocus bench quality``'s files."""
    check_out_folder(out, ["report.md", "report.json", "contact-*.png"], is_quality_report(out), overwrite)


def check_speed_out(out: str | Path, overwrite: bool = False) -> None:
    """:func:`check_out_folder` for ``refocus bench speed``'s files."""
    check_out_folder(out, ["speed.json", "speed.md"], _is_speed_report(Path(out)), overwrite)


def write_report(run: QualityRun, out_dir: str | Path) -> dict[str, Path]:
    """Write ``report.md``, ``report.json`` and ``contact-<task>.png`` into ``out_dir``.

    The files appear together (or none of them, on a disk fault). In a folder that
    held an earlier report, that report's contact sheets of tasks this run did not
    score are removed, so that no sheet of another run sits beside this report.
    Callers that must not replace a user's files check first (:func:`check_quality_out`).

    Returns
    -------
    ``{"md": path, "json": path, "sheets": [paths...]}``-like dict of written files.
    """
    from refocus.io.image import atomic_write_many, image_writer

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    earlier = is_quality_report(out)
    summary = summarise(run)
    payload = {
        "meta": run.meta,
        "summary": summary,
        "cases": run.cases,
        "methods": run.descriptions,
        "notes": run.notes,
        "reference": {t: {k: {"psnr": v[0], "lpips": v[1]} for k, v in r.items()} for t, r in REFERENCE.items()},
    }
    text = json.dumps(payload, indent=1, default=_json_default, allow_nan=False)
    items = [(out / "report.json", lambda p: Path(p).write_text(text + "\n"))]
    sheets = []
    for task, entries in run.images.items():
        if entries:
            path = out / f"contact-{task}.png"
            items.append((path, image_writer(path, render_contact_sheet(task, entries), bit_depth=8)))
            sheets.append(path)
    md = render_markdown(run, summary, [s.name for s in sheets])
    items.append((out / "report.md", lambda p: Path(p).write_text(md)))
    atomic_write_many(items)
    if earlier:
        for task in TASKS:
            stale = out / f"contact-{task}.png"
            if stale not in sheets and stale.is_file():
                stale.unlink()
    return {"md": out / "report.md", "json": out / "report.json", "sheets": sheets}


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def render_markdown(run: QualityRun, summary: dict, sheet_names: list[str]) -> str:
    """The human-readable report."""
    m = run.meta
    mach = m.get("machine", {})
    lines = [
        MD_TITLE,
        "",
        f"- date: {m.get('date')}; tasks: {', '.join(m.get('tasks', []))}; data: {', '.join(m.get('data', []))}"
        + ("; **quick mode (smoke test, not the protocol)**" if m.get("quick") else ""),
        f"- machine: {cpu_words(mach)}, {mach.get('cpu_count')} CPUs, {mach.get('platform')}, "
        f"python {mach.get('python')}, torch {mach.get('torch')} ({mach.get('torch_threads')} threads)",
        f"- code: git {m.get('git') or 'unknown'}",
        f"- time: {m.get('total_seconds')} s in all ({m.get('ground_truth_seconds')} s for ground truth)",
        "- metrics on sRGB in [0, 1] after cropping each case's border; PSNR (dB, higher is better, capped at 100), "
        "SSIM (higher is better), LPIPS AlexNet v0.1 (lower is better); s/case = the method's wall time per case.",
        "",
    ]
    for task in ("bokeh", "deblur", "refocus"):
        if task not in summary:
            continue
        lines += [f"## {task}", ""]
        for ds, rows in summary[task].items():
            lines += [f"### {ds}", "", "| method | n | PSNR ↑ | SSIM ↑ | LPIPS ↓ | s/case |", "|---|---:|---:|---:|---:|---:|"]
            for name, r in rows.items():
                lines.append(f"| {name} | {r['n']} | {_fmt(r['psnr'], 2)} | {_fmt(r['ssim'], 4)} | {_fmt(r['lpips'], 3)} | {_fmt(r['seconds'], 2)} |")
            lines.append("")
            if ds.startswith("lightfield:hci-antinous/2") and task in REFERENCE and not m.get("quick") and "no depth" not in ds:
                lines += ["Reference means quoted in the issues for this exact protocol:", "",
                          "| reference | PSNR | LPIPS |", "|---|---:|---:|"]
                lines += [f"| {k} | {v[0]:.2f} | {v[1]:.3f} |" for k, v in REFERENCE[task].items()]
                lines.append("")
        desc = run.descriptions.get(task, {})
        if desc:
            lines += ["Methods:", ""] + [f"- `{k}`: {v or '(no description)'}" for k, v in desc.items()] + [""]
    if sheet_names:
        lines += ["## Contact sheets", ""]
        lines += [f"- `{n}`: per case, top row input | ground truth | each method; bottom row |error| x4 "
                  "(mean over channels, black = 0) under each image" for n in sheet_names]
        lines.append("")
    if run.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in run.notes] + [""]
    lines += [
        "## Protocol",
        "",
        "- light field: hci-antinous at half resolution (views 2x2 area-averaged in linear light, disparity halved); "
        "ground truth = mean of the views within a disc of radius R view steps, each shifted so disparity s aligns "
        "(cubic B-spline), in linear light; R in {2, 4}; s = 95th/50th/5th percentile (near/middle/far) of the disparity; "
        "CoC = R (d - s) px; crop ceil(R max|d - s|) + 2 px.",
        "- lytro1g: the same on real Lytro captures (9x9 views, each first softened to the softest view's sharpness), "
        "disparity estimated from the views by a plane sweep.",
        "- lensblur: Google Lens Blur JPEGs; deblur: the rendered photo -> the original it stores; refocus: the rendered "
        "photo -> the original refocused by the layered renderer (quality high) with the file's lens at the 5th/50th "
        "percentile of its disparity (the target's blur is this renderer's: the task compares how the input's own "
        "blur is handled, not renderers); crop 8 px.",
        "- bokeh: centre view + true disparity -> refocused at s. deblur: refocused at s -> centre view. "
        "refocus: refocused at s1 -> refocused at s2 for near->far, far->near, middle->near (crop over both planes); "
        "the no-depth track gets no disparity.",
        "- synthetic: ray-traced dead-leaves scenes (refocus.bench.scenes.frozen_test_set, textured with the shared "
        "photos when present), no crop.",
        "- lightfield:DIR: the light-field protocol above at the folder's own resolution (a decoded Lytro capture: "
        "lytro1g's, depth estimated). paired:DIR: deblur only, each input image -> the target of the same name, "
        "whole images (quick: the first 2 pairs, centre 256 px), no crop.",
        "",
    ]
    return "\n".join(lines)


def _thumb(img: np.ndarray, width: int) -> np.ndarray:
    from PIL import Image

    h, w = img.shape[:2]
    if w == width:
        return img
    height = max(1, int(round(h * width / w)))
    pil = Image.fromarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8))
    return np.asarray(pil.resize((width, height), Image.LANCZOS), dtype=np.float32) / 255.0


def _error_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # A black-to-yellow-to-white ramp: small errors stay visible, large ones saturate.
    e = np.clip(np.abs(a - b).mean(axis=2) * 4.0, 0, 1)
    return np.stack([np.clip(3 * e, 0, 1), np.clip(3 * e - 1, 0, 1), np.clip(3 * e - 2, 0, 1)], axis=2).astype(np.float32)


def render_contact_sheet(task: str, entries: list, tile: int = 192) -> np.ndarray:
    """The contact sheet :func:`write_report` writes for a task: per case, a row of
    images (input | ground truth | methods) and a row of error maps, each ``tile`` px
    wide; ``entries`` is ``[(case, {method: output image})]``. Float32 H x W x 3 sRGB
    in [0, 1]."""
    from PIL import Image, ImageDraw

    label_h, pad = 14, 4
    columns = ["input", "ground truth"]
    for _, outs in entries:
        for name in outs:
            if name not in columns and name != "input":
                columns.append(name)
    blocks = []
    for case, outs in entries:
        tgt = case.target
        cells = [(case.input, _error_map(case.input, tgt)), (tgt, np.zeros_like(tgt))]
        for name in columns[2:]:
            if name in outs:
                cells.append((outs[name], _error_map(outs[name], tgt)))
            else:
                cells.append((np.full_like(tgt, 0.5), np.full_like(tgt, 0.5)))
        top = [_thumb(c[0], tile) for c in cells]
        bot = [_thumb(c[1], tile) for c in cells]
        th = top[0].shape[0]
        width = len(cells) * (tile + pad) + pad
        block = np.ones((label_h + 2 * th + 3 * pad, width, 3), dtype=np.float32)
        for i, (a, b) in enumerate(zip(top, bot)):
            x = pad + i * (tile + pad)
            block[label_h + pad : label_h + pad + th, x : x + tile] = a
            block[label_h + 2 * pad + th : label_h + 2 * pad + 2 * th, x : x + tile] = b
        blocks.append((f"{case.dataset} / {case.name} (crop {case.crop_px} px)", block))
    width = max(b.shape[1] for _, b in blocks)
    header_h = 2 * label_h + pad
    height = header_h + sum(b.shape[0] for _, b in blocks)
    sheet = np.ones((height, width, 3), dtype=np.float32)
    y = header_h
    for _, b in blocks:
        sheet[y : y + b.shape[0], : b.shape[1]] = b
        y += b.shape[0]
    pil = Image.fromarray((sheet * 255 + 0.5).astype(np.uint8))
    draw = ImageDraw.Draw(pil)
    draw.text((pad, 2), f"{task}: top = image, bottom = |error vs ground truth| x4", fill=(0, 0, 0))
    for i, name in enumerate(columns):
        draw.text((pad + i * (tile + pad), label_h + 2), name[: tile // 6], fill=(0, 0, 0))
    y = header_h
    for label, b in blocks:
        draw.text((pad, y + 1), label, fill=(80, 80, 80))
        y += b.shape[0]
    return np.asarray(pil, dtype=np.float32) / 255.0
