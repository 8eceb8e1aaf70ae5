"""``refocus bench tables``: the README's measured tables, rendered from benchmark reports.

The README's "Measured quality" and "Measured speed" tables are generated, not typed:
this module reads the ``report.json`` files written by ``refocus bench quality``
(layout in :mod:`refocus.bench.report`) and the ``speed.json`` written by
``refocus bench speed`` (:mod:`refocus.bench.speed`), renders one markdown block per
table, and can put each block between marker comments in a README::

    <!-- tables:quality:bokeh -->
    ...generated...
    <!-- /tables:quality:bokeh -->

Keys: ``quality:bokeh``, ``quality:refocus``, ``quality:deblur``, ``speed:cpu``,
``speed:cuda``. Each block ends with one line naming the command and the reports
(date, machine, git state) it came from. Nothing in a block depends on when it was
generated, so regenerating from the same reports changes nothing.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from refocus.bench.machine import cpu_words
from refocus.errors import RefocusError

QUALITY_TASKS = ("bokeh", "refocus", "deblur")

#: Columns come in this order (by prefix), then in the order the reports list them.
_DATASET_RANK = ("lightfield:hci-antinous", "lightfield:", "lytro1g:", "synthetic", "paired:")

#: Datasets whose cases are real captures: the per-case "wins" line counts them.
REAL_PREFIXES = ("lytro1g:",)

#: The naive baseline of each task, which a method should beat case by case (none for deblur).
BASELINES = {"bokeh": "gaussian-coc", "refocus": "naive"}

#: The dataset the quoted reference numbers (``report.json``'s ``reference``) were measured on.
REFERENCE_DATASET = "lightfield:hci-antinous/2"

#: Digits shown; "best" is decided on the shown values so the bold agrees with what is read.
PSNR_DIGITS = 2
LPIPS_DIGITS = 3
#: A win on a case must be at least this large: a guard that passes the input through
#: leaves float noise (1e-5 dB, 1e-9 LPIPS on lytro1g), which is a tie, not a win. LPIPS
#: is relative: on the refocus cases it is 1e-5 .. 3e-4 in all, and a real win there
#: (+1.4 dB) lowers it by 1e-5.
WIN_MIN_PSNR_DB = 0.01
WIN_MIN_LPIPS_RATIO = 1e-3

_LABEL_MAX_CHARS = 60


@dataclass
class QualityReport:
    path: str  # as the user gave it, for the generated line
    data: dict


@dataclass
class SpeedReport:
    path: str
    data: dict


@dataclass
class Sources:
    quality: list[QualityReport] = field(default_factory=list)
    speed: list[SpeedReport] = field(default_factory=list)


def load_reports(paths: list[str | Path]) -> Sources:
    """Read each JSON file and sort it by kind (quality ``report.json`` or ``speed.json``)."""
    if not paths:
        raise RefocusError("no report given (a report.json of refocus bench quality or a speed.json of refocus bench speed)")
    out = Sources()
    for p in paths:
        try:
            data = json.loads(Path(p).read_text(encoding="utf-8"))
        except OSError as exc:
            raise RefocusError(f"cannot read {p}: {exc.strerror or exc}") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise RefocusError(f"{p} is not valid JSON ({str(exc).splitlines()[0]})") from None
        if isinstance(data, dict) and isinstance(data.get("cases"), list) and "meta" in data:
            out.quality.append(QualityReport(str(p), data))
        elif isinstance(data, dict) and isinstance(data.get("rows"), list) and "machine" in data:
            out.speed.append(SpeedReport(str(p), data))
        else:
            raise RefocusError(f"{p} is neither a report.json of refocus bench quality nor a speed.json of refocus bench speed")
    _check_duplicates(out.quality)
    return out


def _check_duplicates(reports: list[QualityReport]) -> None:
    # The same case in two reports would be counted twice in the means; which one is
    # meant cannot be guessed, so the user has to leave one report out.
    seen: dict[tuple, str] = {}
    for rep in reports:
        for c in rep.data["cases"]:
            key = (c.get("task"), c.get("dataset"), c.get("case"))
            if key in seen and seen[key] != rep.path:
                raise RefocusError(f"case {' / '.join(map(str, key))} is in both {seen[key]} and {rep.path}; give one of them")
            seen[key] = rep.path


# ---------------------------------------------------------------------------------------
# quality tables


def _dataset_rank(name: str) -> int:
    for i, prefix in enumerate(_DATASET_RANK):
        if name.startswith(prefix):
            return i
    return len(_DATASET_RANK)


def datasets_for(reports: list[QualityReport], task: str) -> list[str]:
    """The datasets of ``task`` in column order; the no-depth refocus tracks are left out
    (they are another protocol: the methods that need depth do not run there)."""
    found: list[str] = []
    for rep in reports:
        for c in rep.data["cases"]:
            ds = c.get("dataset")
            if c.get("task") == task and ds not in found and not str(ds).endswith("(no depth)"):
                found.append(ds)
    return sorted(found, key=lambda d: (_dataset_rank(d), found.index(d)))


def short_label(description: str | None, name: str) -> str:
    """``"short description (`name`)"``: the description up to its first top-level comma,
    without a trailing parenthesis; the name keeps two methods with one description apart."""
    text = (description or "").strip()
    depth = 0
    for i, ch in enumerate(text):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and text[i : i + 2] in (", ", "; "):
            text = text[:i]
            break
    text = re.sub(r"\s*\([^()]*\)$", "", text).strip()
    if len(text) > _LABEL_MAX_CHARS:
        text = text[: _LABEL_MAX_CHARS - 1].rstrip() + "…"
    text = _md_escape(text)
    return f"{text} (`{name}`)" if text else f"`{name}`"


def _md_escape(text: str) -> str:
    # A bare "|" would split a table cell (the refocus baseline's CoC is |R(d - s2)|).
    return text.replace("|", "\\|")


def _fmt(v: float | None, digits: int) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def _mean(values: list) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def _methods(reports: list[QualityReport], task: str) -> dict[str, str]:
    """Method -> description, in the reports' order (``input`` first when present)."""
    out: dict[str, str] = {}
    for rep in reports:
        for name, desc in rep.data.get("methods", {}).get(task, {}).items():
            out.setdefault(name, desc)
        for c in rep.data["cases"]:
            if c.get("task") == task:
                for name in c.get("results", {}):
                    out.setdefault(name, "")
    if "input" in out:
        out = {"input": out.pop("input"), **out}
    return out


def quality_table(reports: list[QualityReport], task: str, datasets: list[str] | None = None) -> dict | None:
    """The numbers of one task's table, or None when no report has that task.

    Returns ``{"task", "datasets", "n_cases": {ds: n}, "rows": [{"name", "label",
    "cells": {ds: {"psnr_db", "lpips", "n"} or None}}], "cases": {ds: [case, ...]}}``.
    """
    cols = datasets_for(reports, task) if datasets is None else list(datasets)
    cases = {ds: [c for rep in reports for c in rep.data["cases"] if c.get("task") == task and c.get("dataset") == ds]
             for ds in cols}
    cols = [ds for ds in cols if cases[ds]]
    if not cols:
        return None
    rows = []
    for name, desc in _methods(reports, task).items():
        cells = {}
        for ds in cols:
            res = [c["results"][name] for c in cases[ds] if name in c.get("results", {})]
            cells[ds] = ({"psnr_db": _mean([r.get("psnr") for r in res]), "lpips": _mean([r.get("lpips") for r in res]),
                          "n": len(res)} if res else None)
        if any(cells.values()):
            rows.append({"name": name, "label": short_label(desc, name), "cells": cells})
    return {"task": task, "datasets": cols, "n_cases": {ds: len(cases[ds]) for ds in cols}, "rows": rows,
            "cases": {ds: cases[ds] for ds in cols}}


def _best(rows: list[dict], ds: str, key: str, digits: int, higher: bool) -> str | None:
    shown = [_fmt(r["cells"][ds][key], digits) for r in rows if r["cells"].get(ds) and r["cells"][ds][key] is not None]
    if len(shown) < 2:  # one value is not "best" of anything
        return None
    return (max if higher else min)(shown, key=float)


def wins(table: dict) -> list[dict]:
    """Per method, on the real captures: on how many cases it beats ``input`` and the
    task's baseline in both PSNR and LPIPS, by at least :data:`WIN_MIN_PSNR_DB` and
    :data:`WIN_MIN_LPIPS_RATIO` of the other's LPIPS. Cases where either side has no LPIPS are not counted, so
    each count has its own denominator.

    Returns ``[{"name", "vs": {other: (wins, cases)}}]``.
    """
    real = [c for ds in table["datasets"] if ds.startswith(REAL_PREFIXES) for c in table["cases"][ds]]
    if not real:
        return []
    others = ["input"] + ([BASELINES[table["task"]]] if table["task"] in BASELINES else [])
    out = []
    for row in table["rows"]:
        name = row["name"]
        if name == "input":
            continue
        vs = {}
        for other in others:
            if other == name:
                continue
            n_won = n_cases = 0
            for c in real:
                a, b = c["results"].get(name), c["results"].get(other)
                if not a or not b or None in (a.get("psnr"), a.get("lpips"), b.get("psnr"), b.get("lpips")):
                    continue
                n_cases += 1
                n_won += a["psnr"] >= b["psnr"] + WIN_MIN_PSNR_DB and a["lpips"] <= b["lpips"] * (1 - WIN_MIN_LPIPS_RATIO)
            if n_cases:
                vs[other] = (n_won, n_cases)
        if vs:
            out.append({"name": name, "vs": vs})
    return out


def _references(reports: list[QualityReport], task: str) -> dict[str, dict]:
    # The quoted numbers hold for the full protocol on hci-antinous only; the measured
    # "input" row already stands for the quoted one.
    for rep in reports:
        if not rep.data["meta"].get("quick"):
            ref = rep.data.get("reference", {}).get(task, {})
            return {k: v for k, v in ref.items() if k != "input"}
    return {}


def render_quality(reports: list[QualityReport], task: str, command: str, datasets: list[str] | None = None) -> str | None:
    """One task's markdown block (table, wins line, provenance line), or None without data."""
    table = quality_table(reports, task, datasets)
    if table is None:
        return None
    cols, rows = table["datasets"], table["rows"]
    lines = ["| method: PSNR ↑ (dB) / LPIPS ↓ | " + " | ".join(f"`{ds}`" for ds in cols) + " |",
             "|---|" + "---:|" * len(cols)]
    best = {ds: (_best(rows, ds, "psnr_db", PSNR_DIGITS, True), _best(rows, ds, "lpips", LPIPS_DIGITS, False)) for ds in cols}
    for row in rows:
        cells = []
        for ds in cols:
            cell = row["cells"][ds]
            if cell is None:
                cells.append("")
                continue
            psnr, lpips = _fmt(cell["psnr_db"], PSNR_DIGITS), _fmt(cell["lpips"], LPIPS_DIGITS)
            psnr = f"**{psnr}**" if psnr == best[ds][0] else psnr
            lpips = f"**{lpips}**" if lpips == best[ds][1] else lpips
            # A mean over fewer cases than the column's is not comparable; say so.
            extra = f" (n = {cell['n']})" if cell["n"] != table["n_cases"][ds] else ""
            cells.append(f"{psnr} / {lpips}{extra}")
        lines.append(f"| {row['label']} | " + " | ".join(cells) + " |")
    if REFERENCE_DATASET in cols:
        for name, ref in _references(reports, task).items():
            cells = [f"*{_fmt(ref.get('psnr'), PSNR_DIGITS)} / {_fmt(ref.get('lpips'), LPIPS_DIGITS)}*"
                     if ds == REFERENCE_DATASET else "" for ds in cols]
            lines.append(f"| *quoted, not measured here:* {_md_escape(name)} | " + " | ".join(cells) + " |")
    lines.append("| cases (n) | " + " | ".join(str(table["n_cases"][ds]) for ds in cols) + " |")
    out = "\n".join(lines)
    won = wins(table)
    if won:
        real = [ds for ds in cols if ds.startswith(REAL_PREFIXES)]
        parts = []
        for w in won:
            parts.append(f"`{w['name']}` " + ", ".join(f"beats `{o}` on {k} of {n}" for o, (k, n) in w["vs"].items()))
        out += (f"\n\nPer case on the real captures ({', '.join(f'`{d}`' for d in real)}), better in both PSNR and LPIPS: "
                + "; ".join(parts) + ".")
    used = [rep for rep in reports if any(c.get("task") == task and c.get("dataset") in cols for c in rep.data["cases"])]
    out += "\n\n" + provenance_quality(used, command)
    return out


def _quality_command(meta: dict) -> str:
    args = ["refocus", "bench", "quality", "--task", ",".join(meta.get("tasks") or []) or "all",
            "--data", ",".join(meta.get("data") or []) or "?"]
    if meta.get("quick"):
        args.append("--quick")
    if meta.get("methods"):
        args += ["--methods", ",".join(meta["methods"])]
    return " ".join(shlex.quote(a) for a in args)


def provenance_quality(reports: list[QualityReport], command: str) -> str:
    """The generated line: this command, and per report the run that wrote it."""
    parts = []
    for rep in reports:
        m = rep.data["meta"]
        mach = m.get("machine", {})
        machine = f"{cpu_words(mach)}, {mach.get('cpu_count', '?')} CPUs, torch {mach.get('torch', '?')}"
        quick = "; **quick mode: a smoke test, not the protocol**" if m.get("quick") else ""
        parts.append(f"`{rep.path}` (`{_quality_command(m)}`, {m.get('date', 'date unknown')}, {machine}, "
                     f"git {m.get('git') or 'unknown'}{quick})")
    return f"<sub>Generated by `{command}` from " + "; ".join(parts) + ".</sub>"


# ---------------------------------------------------------------------------------------
# speed tables


def _seconds(v: float) -> str:
    return f"{v:.3f} s" if v < 1 else f"{v:.1f} s"


def _gibibytes(mib: float | None) -> str:
    # speed.json's "_mb" values are MiB (ru_maxrss / 1024, bytes / 2**20).
    return "" if mib is None else f"{mib / 1024:.1f} GiB"


def _stage_label(row: dict) -> str:
    stage = row.get("stage")
    if stage == "render":
        what = "renderer, a subject in focus (depth jumps)" if row.get("scene") == "subject" else "renderer"
        return what + (f", cat's-eye {row['cats_eye']:g}" if row.get("cats_eye") else "")
    if stage == "deblur":
        return "DeblurNet"
    if stage == "depth":
        return "depth (Depth Anything V2 Small, random weights, + edge-aware upsampling)"
    if stage == "pipeline":
        return "whole pipeline (depth file → renderer)"
    if stage == "grain":
        return "--grain: the photo's noise measured and added back"
    if stage == "interactive":
        size = str(row.get("size_label", "")).split(" ")[0]
        what = "UI draft" if row.get("draft") else "UI re-render after a focus click, preview"
        with_ = f", cat's-eye {row['cats_eye']:g}" if row.get("cats_eye") else ""
        return f"{what} {size}{with_}".strip()
    return str(stage)


def _speed_key(row: dict) -> tuple:
    return (row.get("stage"), row.get("max_coc_px"), row.get("size"), row.get("size_label"), row.get("draft"), row.get("scene"),
            row.get("cats_eye"))


def render_speed(reports: SpeedReport | list[SpeedReport], device: str, command: str) -> str | None:
    """The speed table of one device (``cpu`` or ``cuda``), or None when no report has rows for it.

    Several reports are merged row by row: a later report's row replaces an earlier
    one of the same stage, CoC and size (a rerun), and stages only one report has are
    kept (``refocus bench speed --stages depth`` next to a full run)."""
    reports = [reports] if isinstance(reports, SpeedReport) else list(reports)
    merged: dict[tuple, tuple[SpeedReport, dict]] = {}  # each row with the report it came from
    for rep in reports:
        for r in rep.data["rows"]:
            if r.get("device") == device:
                merged[_speed_key(r)] = (rep, r)
    if not merged:
        return None
    rows = [r for _, r in merged.values()]
    # Only the reports whose rows survived the merge speak for the table, in the given order.
    used = [rep for rep in reports if any(origin is rep for origin, _ in merged.values())]
    gpu = device == "cuda"
    head = ["stage", "max \\|CoC\\|", "median"] + (["with numpy in/out", "peak GPU memory"] if gpu else ["peak memory"]) + ["target"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    failed = []
    for r in rows:
        coc = f"{r['max_coc_px']:g} px" if r.get("max_coc_px") else "—"
        if "median_s" in r:
            median = _seconds(r["median_s"])
        else:
            median = "failed"
            failed.append(f"{_stage_label(r)}: {r.get('error', 'no result')}")
        cells = [_stage_label(r), coc, median]
        if gpu:
            host_s = r.get("host_copies_s")
            cells += [_seconds(float(np.median(host_s))) if host_s else "", _gibibytes(r.get("peak_gpu_mb"))]
        else:
            cells.append(_gibibytes(r.get("peak_rss_mb")))
        cells.append(f"≤ {r['target_s']:g} s" if r.get("target_s") is not None else "")
        lines.append("| " + " | ".join(_md_escape(c) if i == 0 else c for i, c in enumerate(cells)) + " |")
    return "\n".join(lines) + "\n\n" + provenance_speed(list(merged.values()), used, command, failed)


def _speed_machine(data: dict) -> str:
    mach = data.get("machine", {})
    return (f"{cpu_words(mach)}, {mach.get('cpu_count', '?')} cores" + (f", {mach['gpu']}" if mach.get("gpu") else "")
            + f", torch {mach.get('torch', '?')}")


def provenance_speed(rows: list[tuple[SpeedReport, dict]], used: list[SpeedReport], command: str, failed: list[str]) -> str:
    """The line under a speed table: where its ``rows`` (each with the report it came
    from) come from and on what machine; ``used``, the reports those are, in the
    order they were given (the last one's settings head the line).

    Rows merged from reports of different machines (a depth-only rerun on another
    host) name each report's machine and stages: one machine for all would put a
    number on a CPU it was not measured on.
    """
    report = used[-1]
    d = report.data
    machines = {r.path: _speed_machine(r.data) for r in used}
    if len(set(machines.values())) > 1:
        parts = []
        for rep in used:
            stages = sorted({_stage_label(row).split(" (")[0] for origin, row in rows if origin is rep})
            parts.append(f"`{rep.path}`: {machines[rep.path]} ({', '.join(stages)})")
        machine = "machines differ: " + "; ".join(parts)
    else:
        machine = machines[report.path]
    rows = [row for _, row in rows]
    sizes = sorted({str(r.get("size")) for r in rows if r.get("stage") != "interactive"})
    where = ", ".join(f"`{rep.path}`" for rep in used)
    text = (f"<sub>Generated by `{command}` from {where} (`refocus bench speed`, {machine}, "
            f"renderer quality {d.get('quality', '?')}, median of {d.get('repeats', '?')}, image {', '.join(sizes) or '?'}")
    # speed.json does not record these (the hand-written tables had them from notes);
    # say so rather than leave the reader to assume they were checked.
    missing = [w for k, w in (("date", "date"), ("git", "git state")) if not d.get(k)]
    text += f", {d['date']}" if d.get("date") else ""
    text += f", git {d['git']}" if d.get("git") else ""
    text += "; **quick mode: a smoke test, not the protocol**" if any(r.data.get("quick") for r in used) else ""
    text += ")."
    text += (f" The speed report records no {' or '.join(missing)}, no memory targets and no BokehMe timings."
             if missing else " The speed report records no memory targets and no BokehMe timings.")
    if failed:
        text += " Failed: " + "; ".join(_md_escape(f) for f in failed) + "."
    return text + "</sub>"


# ---------------------------------------------------------------------------------------
# all blocks, and the README


def render_blocks(sources: Sources, command: str, datasets: list[str] | None = None) -> dict[str, str]:
    """Marker key -> markdown block, for every table the reports have data for."""
    blocks: dict[str, str] = {}
    if sources.quality:
        if datasets is not None:
            known = {c.get("dataset") for rep in sources.quality for c in rep.data["cases"]}
            unknown = [d for d in datasets if d not in known]
            if unknown:
                raise RefocusError(f"--datasets: {unknown[0]!r} is in no report; they have {', '.join(sorted(map(str, known)))}")
        for task in QUALITY_TASKS:
            cols = None
            if datasets is not None:
                cols = [d for d in datasets if any(c.get("task") == task and c.get("dataset") == d
                                                   for rep in sources.quality for c in rep.data["cases"])]
            block = render_quality(sources.quality, task, command, cols)
            if block is not None:
                blocks[f"quality:{task}"] = block
    for device in ("cpu", "cuda"):
        # Several speed reports are merged row by row, later ones replacing reruns.
        block = render_speed(sources.speed, device, command) if sources.speed else None
        if block is not None:
            blocks[f"speed:{device}"] = block
    if not blocks:
        raise RefocusError("the reports hold no results to tabulate")
    return blocks


def _markers(key: str) -> tuple[str, str]:
    return f"<!-- tables:{key} -->", f"<!-- /tables:{key} -->"


def wrap(key: str, block: str) -> str:
    """A block between its markers (blank lines around it keep the markdown a table)."""
    start, end = _markers(key)
    return f"{start}\n\n{block}\n\n{end}"


def replace_blocks(text: str, blocks: dict[str, str], name: str = "README") -> str:
    """``text`` with each key's marked region replaced by its block; every key must have
    exactly one start and one end marker, in that order."""
    for key, block in blocks.items():
        start, end = _markers(key)
        i, j = text.find(start), text.find(end)
        if i < 0 or j < 0:
            raise RefocusError(f"{name} has no {start} … {end} markers for the {key} table; add them where it goes")
        if text.count(start) > 1 or text.count(end) > 1:
            raise RefocusError(f"{name} has the {key} markers more than once")
        if j < i:
            raise RefocusError(f"{name}: {end} comes before {start}")
        text = text[:i] + wrap(key, block) + text[j + len(end):]
    return text


def update_readme(readme: str | Path, blocks: dict[str, str]) -> bool:
    """Put the blocks into ``readme`` in place (atomically); False when nothing changed
    (the file is then not written at all)."""
    from refocus.io import atomic_write_bytes

    path = Path(readme)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RefocusError(f"cannot read {readme}: {exc.strerror or exc}") from None
    try:
        # newline="" semantics: work on the text as stored, so CRLF files stay CRLF.
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RefocusError(f"{readme} is not UTF-8 text") from None
    crlf = "\r\n" in text
    new = replace_blocks(text, {k: v.replace("\n", "\r\n") if crlf else v for k, v in blocks.items()}, name=str(readme))
    if new == text:
        return False
    data = new.encode("utf-8")
    atomic_write_bytes(path, lambda tmp: Path(tmp).write_bytes(data))
    return True
