"""``refocus bench quality``: every registered method on every case, scored.

Data sources (``--data``):

``lightfield``
    ``hci-antinous`` from the shared data (``$REFOCUS_SHARED/data`` or
    ``../shared/data`` relative to the current directory or the repository) at
    half resolution, with the protocol of :func:`refocus.bench.lightfield.lightfield_cases`:
    R in {2, 4}, focus at the 95th/50th/5th disparity percentile; bokeh, deblur and
    refocus cases (refocus also as a no-depth track).
``lytro1g``
    The real Lytro captures ``lytro1g-*`` from the shared data (9 x 9 sub-grid of
    256 x 256 views, :func:`refocus.bench.lightfield.load_lytro`), same protocol,
    with the disparity *estimated* from the views by a plane sweep (a real user's
    depth is always estimated): it serves as the methods' depth, for the focus
    percentiles and for the CoC. Real noise, demosaicing and imperfect depth.
``lightfield:DIR``
    Any folder of views (``input_CamNNN.png``, square grid, ``gt_disp_lowres.pfm``;
    or a decoded Lytro capture, ``IMG_*_AA_BB.png``) at full resolution, same protocol.
``synthetic``
    Ray-traced dead-leaves scenes (:func:`refocus.bench.scenes.frozen_test_set`):
    bokeh (all-in-focus -> lens photo) and deblur (lens photo -> all-in-focus).
    Textured with the shared data's ``photos`` too when that folder exists
    (:func:`synthetic_photo_dirs`), as the reports were made.
``paired:DIR``
    A DPDD/RealDOF-style folder (:mod:`refocus.bench.paired`): deblur only.
``lensblur``
    Google Camera Lens Blur JPEGs in the shared data's ``phone-depth`` folder (or
    ``lensblur:DIR``): each stores the photo it rendered and the original before the
    blur, so the deblur task has a real photo's content, noise and (phone-estimated)
    depth with Lens Blur's own, sRGB-blended blur as input, and the original as target.
    Refocus: the same input, and as target the original refocused by the project's
    renderer with the file's lens at the 5th / 50th percentile of its disparity (behind
    the subject). The target's blur is this renderer's, so that task compares how the
    input's own blur is handled (deblurring, subtracting it), not renderers: ``naive``
    (a Gaussian) is at a disadvantage there that has nothing to do with deblurring.
``all``
    ``lightfield``, ``lytro1g`` and ``synthetic``.

``quick`` keeps only a few small cases (R = 2; near and far focus; a 128 x 128 centre
of each light-field view; two 96 x 96 synthetic scenes; 2 paired images cropped
to 256 px; Lens Blur photos at a quarter of their size) so the whole run takes well under a minute; its numbers are for smoke
tests, not for comparison with the full protocol.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from refocus.bench.machine import git_state, machine_info
from refocus.errors import RefocusError, describe_os_error

_REPO_ROOT = Path(__file__).resolve().parents[3]
HCI_NAME = "hci-antinous"


def shared_data_dir() -> Path | None:
    """The shared data folder, or None: ``$REFOCUS_SHARED/data``, then ``../shared/data`` from cwd and repo."""
    env = os.environ.get("REFOCUS_SHARED")
    candidates = [Path(env) / "data"] if env else []
    candidates += [Path.cwd().parent / "shared" / "data", _REPO_ROOT.parent / "shared" / "data"]
    for c in candidates:
        if c.is_dir():
            return c
    return None


def synthetic_photo_dirs() -> tuple[Path, ...]:
    """The photo folders of the synthetic scenes: ``shared_data_dir() / "photos"``
    when it exists, else none (scikit-image's photos only: other scenes)."""
    data = shared_data_dir()
    photos = data / "photos" if data is not None else None
    return (photos,) if photos is not None and photos.is_dir() else ()


@dataclass
class Progress:
    """Callbacks the CLI uses to show progress (no-ops by default)."""

    start: Callable[[int], None] = lambda total: None
    advance: Callable[[str], None] = lambda description: None
    status: Callable[[str], None] = lambda message: None


@dataclass
class QualityRun:
    """Everything a report is made of.

    Attributes
    ----------
    cases:
        Per case: task, dataset, name, crop_px, meta, and per method its metrics
        (``psnr`` dB, ``ssim``, ``lpips``, ``seconds``).
    notes:
        Skipped methods, failures, data sources that were unavailable.
    images:
        For the contact sheets: task -> list of (case, {method: output image}).
    """

    cases: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    images: dict[str, list] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    descriptions: dict[str, dict[str, str]] = field(default_factory=dict)


def _parse_list(value: str, allowed: tuple[str, ...], what: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise RefocusError(f"empty {what} list")
    if "all" in items:
        return list(allowed)
    bad = [v for v in items if v not in allowed]
    if bad:
        raise RefocusError(f"unknown {what} {bad[0]!r}; expected one of {', '.join(allowed)} or all")
    return items


def parse_tasks(value: str) -> list[str]:
    """``"bokeh,deblur"`` or ``"all"`` -> list of tasks."""
    from refocus.bench.methods import TASKS

    return _parse_list(value, TASKS, "task")


#: What may start an item of ``--data``.
_SOURCE_WORDS = ("all", "lightfield", "lytro1g", "synthetic", "lensblur", "paired")


def _split_sources(value: str) -> list[str]:
    """The items of a comma-separated ``--data``; a comma not followed by a source
    word belongs to the folder before it (``paired:/data/blur,sharp set`` is one
    folder), so any folder name can be given."""
    items: list[str] = []
    for part in value.split(","):
        word = part.strip().partition(":")[0]
        if items and word not in _SOURCE_WORDS and ":" in items[-1]:
            items[-1] += "," + part
        else:
            items.append(part)
    return [v.strip() for v in items if v.strip()]


def parse_data(value: str) -> list[str]:
    """``--data`` value -> list of source specs (``lightfield``, ``lightfield:DIR``, ``synthetic``, ``paired:DIR``)."""
    specs = []
    seen: set[tuple[str, str]] = set()
    for item in _split_sources(value):
        if item == "all":
            specs += ["lightfield", "lytro1g", "synthetic"]
        elif item in ("lightfield", "lytro1g", "synthetic", "lensblur"):
            specs.append(item)
        elif item.startswith("lightfield:") or item.startswith("paired:") or item.startswith("lensblur:"):
            kind, _, path = item.partition(":")
            if not path:
                raise RefocusError(f"--data {kind}: needs a folder, e.g. {kind}:/path/to/dir")
            if not Path(path).is_dir():
                raise RefocusError(f"--data {item}: folder not found")
            # One folder spelt two ways ("d", "./d/") would be scored twice and counted twice in the means.
            if (kind, os.path.realpath(path)) in seen:
                continue
            seen.add((kind, os.path.realpath(path)))
            specs.append(item)
        else:
            raise RefocusError(f"unknown data source {item!r}; use lightfield, lytro1g, lightfield:DIR, synthetic, paired:DIR, lensblur[:DIR] or all")
    if not specs:
        raise RefocusError("no data source given")
    return list(dict.fromkeys(specs))


def folder_labels(specs: list[str]) -> dict[str, str]:
    """The name each ``KIND:DIR`` source gets in the report: the folder's name, or as
    many trailing path parts as it takes to tell it from the other folders given
    (``a/test_c`` and ``b/test_c``), so that two datasets never share a row."""
    paths = {s: Path(os.path.abspath(s.partition(":")[2])) for s in specs if ":" in s}

    def tail(p: Path, k: int) -> str:
        return "/".join(p.parts[-k:]) if len(p.parts) > 1 else str(p)

    labels = {}
    for s, p in paths.items():
        k = 1
        while k < len(p.parts) and any(tail(q, k) == tail(p, k) for o, q in paths.items() if o != s):
            k += 1
        labels[s] = tail(p, k)
    return labels


def _lightfield_cases(spec: str, tasks: list[str], quick: bool, progress: Progress,
                      label: str | None = None) -> tuple[list, list[str]]:
    from refocus.bench import lightfield as lfm

    notes: list[str] = []
    if spec == "lightfield":
        shared = shared_data_dir()
        folder = shared / "lightfields" / HCI_NAME if shared else None
        if folder is None or not folder.is_dir():
            return [], [f"lightfield: {HCI_NAME} not found (set REFOCUS_SHARED to the folder holding data/); skipped"]
        half = True
    else:
        folder, half = Path(spec.partition(":")[2]), False
    progress.status(f"loading light field {folder.name}")
    lytro = lfm.is_lytro_folder(folder)
    if lytro:
        progress.status(f"estimating the disparity of {folder.name} (plane sweep)")
        # Quick runs estimate on their crop only (a few seconds less per capture).
        lf = lfm.load_lytro(folder, estimate=False) if quick else _cached_lytro(folder)
    else:
        lf = lfm.load_lightfield(folder, half=half)
    if quick:
        h, w = lf.shape
        side = min(128, h, w)
        y0, x0 = (h - side) // 2, (w - side) // 2
        lf = lfm.LightField(
            lf.views_linear[:, :, y0 : y0 + side, x0 : x0 + side].copy(),
            None if lf.disparity is None else lf.disparity[y0 : y0 + side, x0 : x0 + side].copy(),
            lf.name,
        )
        if lytro:
            lf.disparity = lfm.estimate_disparity(lf)
    wanted = (2,) if quick else lfm.RADII
    radii = tuple(r for r in wanted if r <= lf.centre)

    def needs(r: int) -> str:
        return f"R = {r} needs {2 * r + 1}x{2 * r + 1} views"

    if not radii:
        return [], [f"lightfield {lf.name}: a {lf.grid}x{lf.grid} grid is too small for the benchmark's apertures "
                    f"({'; '.join(needs(r) for r in wanted)}); skipped"]
    if len(radii) < len(wanted):
        # A 7x7 decode lost its R = 4 rows without a word (found 2026-12-07).
        notes.append(f"lightfield {lf.name}: a {lf.grid}x{lf.grid} grid: "
                     + "; ".join(needs(r) for r in wanted if r not in radii) + ", left out")
    focus_names = ("near", "far") if quick else ("near", "middle", "far")
    pairs = lfm.REFOCUS_PAIRS[:1] if quick else lfm.REFOCUS_PAIRS
    name = label or lf.name
    dataset = f"lytro1g:{name}" if lytro else f"lightfield:{name}" + ("/2" if half else "")
    cases = []
    for task in tasks:
        progress.status(f"ground truth for {task} on {lf.name}")
        cases += lfm.lightfield_cases(lf, task, radii, focus_names, pairs, dataset=dataset, notes=notes)
        if task == "refocus":
            cases += lfm.lightfield_cases(lf, task, radii, focus_names, pairs, with_depth=False, dataset=dataset + " (no depth)",
                                          notes=notes)
    return cases, notes


_LYTRO_CACHE: dict = {}


def _cached_lytro(folder: Path):
    """:func:`refocus.bench.lightfield.load_lytro`, once per folder and process (the
    plane sweep takes ~8 s per capture)."""
    from refocus.bench import lightfield as lfm

    key = str(Path(folder).resolve())
    if key not in _LYTRO_CACHE:
        _LYTRO_CACHE[key] = lfm.load_lytro(folder)
    return _LYTRO_CACHE[key]


def _lytro_cases(tasks: list[str], quick: bool, progress: Progress) -> tuple[list, list[str]]:
    shared = shared_data_dir()
    root = shared / "lightfields" if shared else None
    folders = sorted(root.glob("lytro1g-*")) if root is not None and root.is_dir() else []
    if not folders:
        return [], ["lytro1g: no lytro1g-* captures found (set REFOCUS_SHARED to the folder holding data/); skipped"]
    cases, notes = [], []
    for folder in folders[:1] if quick else folders:
        c, n = _lightfield_cases(f"lightfield:{folder}", tasks, quick, progress)
        cases += c
        notes += n
    return cases, notes


#: Focal planes of the Lens Blur refocus cases: percentiles of the photo's disparity
#: (the file's own focus is on its subject, so these move it behind).
LENSBLUR_REFOCUS_PERCENTILES = {"far": 5.0, "middle": 50.0}


def _lensblur_target(original: np.ndarray, disparity: np.ndarray, focus_disparity: float, strength: float) -> np.ndarray:
    """The stored original refocused at ``focus_disparity`` with the file's lens K, by
    the layered renderer (quality "high", no highlight boost), in linear light."""
    from refocus.io import linear_to_srgb, srgb_to_linear
    from refocus.render import RenderConfig, coc_map, render_linear

    out = render_linear(srgb_to_linear(original), coc_map(disparity, focus_disparity, strength),
                        RenderConfig(highlight_gain=0.0, quality="high"))
    return np.clip(linear_to_srgb(out), 0.0, 1.0).astype(np.float32)


def _lensblur_cases(spec: str, tasks: list[str], quick: bool, progress: Progress,
                    label: str | None = None) -> tuple[list, list[str]]:
    """Cases from Lens Blur JPEGs. Deblur: the rendered photo -> the original it stores.
    Refocus: the rendered photo -> the original refocused behind the subject with the
    file's lens (:func:`_lensblur_target`). A ``lensblur:DIR`` source is its own dataset,
    ``lensblur:<label>`` (:func:`folder_labels`), as paired and light-field folders are:
    two folders were pooled into one "lensblur" row (found 2026-12-07)."""
    dataset = f"lensblur:{label}" if spec != "lensblur" and label else "lensblur"
    from refocus.bench.methods import Case
    from refocus.depth.embedded import read_lens_blur
    from refocus.pipeline import RefocusConfig, Refocuser
    from refocus.pipeline.photo import _resize
    from refocus.render import coc_map

    if "deblur" not in tasks and "refocus" not in tasks:
        return [], []
    if spec == "lensblur":
        shared = shared_data_dir()
        folder = shared / "phone-depth" if shared else None
    else:
        folder = Path(spec.partition(":")[2])
    # Any case: a camera's MOTO.JPG was passed over without a word (found 2026-12-07).
    files = (sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg") and p.is_file())
             if folder is not None and folder.is_dir() else [])
    cases, notes = [], []
    for f in files:
        progress.status(f"reading {f.name}")
        try:
            # Only a file that states its lens is a case: any other JPEG was sent through
            # the whole depth stage first, and a plain one ended in advice on --depth
            # that does not apply here (found 2026-12-07).
            if read_lens_blur(f.read_bytes()) is None:
                notes.append(f"lensblur: {f.name}: not a Lens Blur JPEG (no GFocus lens in its XMP); skipped")
                continue
            photo = Refocuser().prepare(f, RefocusConfig(deblur="never"))
        except OSError as exc:
            notes.append(f"lensblur: {describe_os_error(exc, f, 'read')}; skipped")
            continue
        except RefocusError as exc:
            notes.append(f"lensblur: {f.name}: {exc}; skipped")
            continue
        own = photo.own_lens
        if own is None or photo.all_in_focus is None:
            continue  # not a Lens Blur file, or one without its original
        inp, tgt, disp, k = photo.image, photo.all_in_focus, photo.disparity, own.strength_px
        if quick:
            h, w = photo.shape
            size = (max(1, h // 4), max(1, w // 4))
            inp, tgt, disp, k = _resize(inp, size), _resize(tgt, size), _resize(disp, size), k / 4
        meta = {"K": k, "focus_disparity": own.focus_disparity, "blur_at_infinity_px": own.blur_at_infinity_px,
                "max_coc_px": float(np.abs(coc_map(disp, own.focus_disparity, k)).max())}
        if "deblur" in tasks:
            cases.append(Case("deblur", dataset, f.stem, inp, tgt, disp, k, input_focus_disparity=own.focus_disparity,
                              crop_px=8, meta={**meta, "file": str(f)}))
        if "refocus" in tasks:
            for name, pct in LENSBLUR_REFOCUS_PERCENTILES.items():
                progress.status(f"ground truth for refocus on {f.name} ({name})")
                s2 = float(np.percentile(disp, pct))
                cases.append(Case("refocus", dataset, f"{f.stem}-to-{name}", inp, _lensblur_target(tgt, disp, s2, k),
                                  disp, k, focus_disparity=s2, input_focus_disparity=own.focus_disparity, crop_px=8,
                                  meta={**meta, "file": str(f), "to": name, "to_disparity": s2, "percentile": pct}))
    if not cases:
        notes.append("lensblur: no Lens Blur JPEG with its original found (set REFOCUS_SHARED, or lensblur:DIR); skipped")
    return cases, notes


def _synthetic_cases(tasks: list[str], quick: bool, progress: Progress) -> tuple[list, list[str]]:
    from refocus.bench.methods import Case

    wanted = [t for t in tasks if t in ("bokeh", "deblur")]
    notes = []
    if "refocus" in tasks:
        notes.append("synthetic: no refocus cases (a scene is rendered at one focus only)")
    if not wanted:
        return [], notes
    try:
        from refocus.bench.scenes import frozen_test_set
    except ImportError as exc:
        return [], notes + [f"synthetic: scene generator unavailable ({exc}); skipped"]
    progress.status("ray tracing synthetic scenes")
    photo_dirs = synthetic_photo_dirs()
    if not photo_dirs:
        notes.append("synthetic: no shared photos folder; scenes textured with scikit-image's photos only "
                     "(not the reports' scenes)")
    if quick:
        scenes = frozen_test_set(n=2, size=(96, 96), max_coc_px=(4.0, 8.0), photo_dirs=photo_dirs)
    else:
        scenes = frozen_test_set(n=6, size=(256, 256), photo_dirs=photo_dirs)
    cases = []
    for i, sc in enumerate(scenes):
        meta = {"seed": sc.seed, "K": sc.K, "focus_disparity": sc.focus_disparity, "aperture": sc.aperture.shape,
                "max_coc_px": float(np.abs(sc.coc_px).max())}
        name = f"scene{i:02d}-{sc.aperture.shape}"
        lens = np.clip(sc.lens, 0, 1).astype(np.float32)
        aif = np.clip(sc.all_in_focus, 0, 1).astype(np.float32)
        if "bokeh" in wanted:
            cases.append(Case("bokeh", "synthetic", name, aif, lens, sc.disparity, sc.K, focus_disparity=sc.focus_disparity,
                              aperture=sc.aperture, meta=meta))
        if "deblur" in wanted:
            cases.append(Case("deblur", "synthetic", name, lens, aif, sc.disparity, sc.K,
                              input_focus_disparity=sc.focus_disparity, aperture=sc.aperture, meta=meta))
    return cases, notes


def _paired_cases(spec: str, tasks: list[str], quick: bool, label: str | None = None) -> tuple[list, list[str]]:
    from refocus.bench.paired import paired_cases

    if "deblur" not in tasks:
        return [], [f"{spec}: paired data only has deblur cases; skipped"]
    folder = spec.partition(":")[2]
    dataset = f"paired:{label}" if label else None
    others = [t for t in tasks if t != "deblur"]
    notes = [f"{dataset or spec}: deblur cases only (a photo pair has no depth and no focus to render); "
             f"no {', '.join(others)} cases"] if others else []
    cases = paired_cases(folder, limit=2 if quick else None, max_side=256 if quick else None, dataset=dataset, notes=notes)
    return cases, notes


def build_cases(tasks: list[str], data: list[str], quick: bool = False, progress: Progress | None = None):
    """All cases for the requested tasks and data sources, plus notes on what was skipped."""
    progress = progress or Progress()
    cases, notes = [], []
    labels = folder_labels(data)
    for spec in data:
        if spec == "lightfield" or spec.startswith("lightfield:"):
            c, n = _lightfield_cases(spec, tasks, quick, progress, labels.get(spec))
        elif spec == "lytro1g":
            c, n = _lytro_cases(tasks, quick, progress)
        elif spec == "synthetic":
            c, n = _synthetic_cases(tasks, quick, progress)
        elif spec.startswith("paired:"):
            c, n = _paired_cases(spec, tasks, quick, labels.get(spec))
        elif spec == "lensblur" or spec.startswith("lensblur:"):
            c, n = _lensblur_cases(spec, tasks, quick, progress, labels.get(spec))
        else:
            raise RefocusError(f"unknown data source {spec!r}")
        cases += c
        notes += n
    return cases, notes


def run_quality(
    tasks: list[str],
    data: list[str],
    methods: list[str] | None = None,
    quick: bool = False,
    lpips_weights: str | os.PathLike | None = None,
    progress: Progress | None = None,
    sheet_cases: int = 3,
) -> QualityRun:
    """Run the quality benchmark (no files written; see :mod:`refocus.bench.report`).

    Parameters
    ----------
    tasks:
        Subset of ``bokeh``, ``deblur``, ``refocus``.
    data:
        Source specs (see :func:`parse_data`).
    methods:
        Only these method names (any task); None runs every registered method.
    quick:
        Few small cases (smoke test).
    lpips_weights:
        LPIPS weights file; when None and none is found, LPIPS is left out with a note.
    progress:
        Progress callbacks.
    sheet_cases:
        Cases per task kept (with every method's output) for the contact sheet.

    Returns
    -------
    :class:`QualityRun`.
    """
    from refocus.bench import methods as mreg
    from refocus.bench.lpips import find_weights, get_lpips
    from refocus.bench.metrics import compute_metrics

    progress = progress or Progress()
    run = QualityRun()
    run.notes += mreg.load_plugins()
    if methods is not None:
        unknown = [m for m in methods if m not in mreg.all_method_names()]
        if unknown:
            raise RefocusError(f"unknown method {unknown[0]!r}; registered: {', '.join(sorted(mreg.all_method_names()))}")
        if not any(mreg.methods_for(t, methods) for t in tasks):
            # Otherwise the run scores nothing and says "no cases", which points at the data.
            does = {m: [t for t in mreg.TASKS if mreg.methods_for(t, [m])] for m in methods}
            raise RefocusError(f"none of --methods {','.join(methods)} does the task {', '.join(tasks)} ("
                               + "; ".join(f"{m}: {', '.join(ts)}" for m, ts in does.items()) + ")")
    with_lpips = True
    try:
        weights = find_weights(lpips_weights)
        get_lpips(weights)
    except RefocusError as exc:
        if lpips_weights is not None:
            raise
        with_lpips, weights = False, None
        run.notes.append(f"LPIPS left out: {exc}")
    t0 = time.perf_counter()
    cases, notes = build_cases(tasks, data, quick, progress)
    run.notes += notes
    _check_case_sizes(cases, with_lpips)
    run.meta = {
        "tasks": tasks,
        "data": data,
        "quick": quick,
        # A report of some methods only said it came from a run of every method.
        "methods": list(methods) if methods else None,
        "lpips_weights": str(weights) if weights else None,
        "machine": machine_info(),
        "git": git_state(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "ground_truth_seconds": round(time.perf_counter() - t0, 2),
        "psnr_cap_db": 100.0,
    }
    plan = [(c, m) for c in cases for m in mreg.methods_for(c.task, methods)]
    progress.start(len(plan))
    skipped: set[tuple[str, str, str]] = set()
    by_case: dict[int, dict] = {}
    sheets: dict[str, list] = {}
    runnable = {id(c) for c, m in plan if m.name != "input" and not (m.needs_disparity and c.disparity is None)}
    on_sheet = _sheet_selection(cases, sheet_cases, runnable)
    for case, method in plan:
        progress.advance(f"{case.task} {case.dataset} {case.name}: {method.name}")
        run.descriptions.setdefault(case.task, {})[method.name] = method.description
        rec = by_case.setdefault(id(case), {
            "task": case.task, "dataset": case.dataset, "case": case.name, "crop_px": case.crop_px,
            "meta": case.meta, "results": {},
        })
        key = (case.task, case.dataset, method.name)
        if method.needs_disparity and case.disparity is None:
            if key not in skipped:
                run.notes.append(f"{case.task} / {case.dataset}: {method.name} skipped (needs depth)")
                skipped.add(key)
            continue
        t = time.perf_counter()
        try:
            out = method.fn(case)
        except mreg.MethodUnavailable as exc:
            if key not in skipped:
                run.notes.append(f"{case.task} / {case.dataset}: {method.name} skipped ({exc})")
                skipped.add(key)
            continue
        except Exception as exc:  # one failing method must not lose the others' results
            run.notes.append(f"{case.task} / {case.dataset} / {case.name}: {method.name} failed "
                             f"({exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''})")
            continue
        seconds = time.perf_counter() - t
        out = np.asarray(out, dtype=np.float32)
        if out.shape != case.target.shape:
            run.notes.append(f"{case.task} / {case.dataset} / {case.name}: {method.name} returned shape {out.shape}, "
                             f"expected {case.target.shape}; not scored")
            continue
        m = compute_metrics(out, case.target, case.crop_px, with_lpips=with_lpips, lpips_weights=weights)
        m["seconds"] = round(seconds, 3)
        rec["results"][method.name] = m
        if id(case) in on_sheet:
            kept = sheets.setdefault(case.task, [])
            entry = next((e for e in kept if e[0] is case), None)
            if entry is None:
                entry = (case, {})
                kept.append(entry)
            entry[1][method.name] = out
    run.cases = [by_case[id(c)] for c in cases if id(c) in by_case]
    run.images = sheets
    run.meta["total_seconds"] = round(time.perf_counter() - t0, 2)
    return run


#: Smallest side the metrics accept, px: SSIM's 7 x 7 window, LPIPS's AlexNet.
MIN_SIDE_SSIM_PX, MIN_SIDE_LPIPS_PX = 7, 32


def _check_case_sizes(cases: list, with_lpips: bool) -> None:
    """Refuse, before any method runs, a case too small to score once its border is
    cropped: otherwise the run stops at that case with the others' work lost."""
    need = MIN_SIDE_LPIPS_PX if with_lpips else MIN_SIDE_SSIM_PX
    for c in cases:
        h, w = c.target.shape[:2]
        side = min(h, w) - 2 * c.crop_px
        if side < need:
            where = c.meta.get("input") if isinstance(c.meta, dict) else None
            raise RefocusError(
                f"{c.dataset} / {c.name}" + (f" ({where})" if where else "") + f": {w}x{h} px"
                + (f" less a {c.crop_px} px border" if c.crop_px else "")
                + f" is too small to score; the metrics need at least {need} x {need} px"
                + (" (LPIPS)" if with_lpips else "")
            )


def _sheet_selection(cases: list, per_task: int, shown: set[int] | None = None) -> set[int]:
    """Ids of the cases shown on the contact sheets: per task, one per dataset (up to
    ``per_task``), the one with the widest crop, i.e. the strongest blur, where
    differences between methods are easiest to see. With ``shown``, only those case
    ids (the ones some method besides ``input`` can run on: a no-depth track without
    such a method is a row of empty tiles)."""
    chosen: set[int] = set()
    for task in dict.fromkeys(c.task for c in cases):
        best: dict[str, object] = {}
        for c in cases:
            if shown is not None and id(c) not in shown:
                continue
            if c.task == task and (c.dataset not in best or c.crop_px > best[c.dataset].crop_px):
                best[c.dataset] = c
        chosen.update(id(c) for c in list(best.values())[:per_task])
    return chosen


def summarise(run: QualityRun) -> dict:
    """Mean metrics per task, dataset and method: ``{task: {dataset: {method: {...}}}}``."""
    acc: dict = {}
    for rec in run.cases:
        for name, m in rec["results"].items():
            acc.setdefault(rec["task"], {}).setdefault(rec["dataset"], {}).setdefault(name, []).append(m)
    out: dict = {}
    for task, per_ds in acc.items():
        for ds, per_m in per_ds.items():
            for name, ms in per_m.items():
                row = {"n": len(ms)}
                for k in ("psnr", "ssim", "lpips", "seconds"):
                    vals = [x[k] for x in ms if x.get(k) is not None]
                    row[k] = float(np.mean(vals)) if vals else None
                out.setdefault(task, {}).setdefault(ds, {})[name] = row
    return out
