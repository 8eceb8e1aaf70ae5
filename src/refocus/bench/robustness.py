"""Mutated inputs through the CLI: every run must end with exit 0 or 2, within memory.

``refocus bench robustness`` (and ``tests/test_fuzz.py``) take real files (photos,
phone photos with embedded depth, disparity PNGs), make mutants of them with a fixed
seed (bit flips, overwritten or zeroed ranges, truncation, insertions, duplicated
ranges, and declared sizes set huge: the decompression-bomb class), and run each one
in this process through :func:`refocus.cli.main` on the fast paths (``info``, and
``depth --no-refine --no-estimate``). Per run: the exit code, the seconds, and the
peak resident memory (Linux: the peak is reset before each run through
``/proc/self/clear_refs``). Results are grouped per input class (source kind x
mutation) with medians and peaks, and written as JSON.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import statistics
import struct
import tempfile
import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

MUTATIONS = ("flip", "overwrite", "zero", "truncate", "insert", "duplicate", "huge-size")


@dataclass
class Run:
    source: str
    kind: str  # input class of the source: jpeg-photo, gdepth-jpeg, heic, png-disparity
    mutation: str
    command: str
    exit_code: int
    seconds: float
    peak_mb: float
    message: str


def source_kind(path: Path) -> str:
    data = path.read_bytes()[:200_000]
    if path.suffix.lower() == ".png":
        return "png-disparity" if "disparity" in path.stem else "png-photo"
    if data[4:8] == b"ftyp":
        return "heic"
    if b"GDepth" in data or b"depthmap" in data:
        return "gdepth-jpeg"
    return "jpeg-photo"


def _huge_size(data: bytes, rng: random.Random) -> bytes:
    """Declare a large size in the header (PNG IHDR with its CRC fixed, JPEG SOF)."""
    w, h = rng.choice([(30256, 32550), (12000, 9000), (65535, 65535), (8000, 6000)])
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        ihdr = bytearray(data[12:29])
        ihdr[4:12] = struct.pack(">II", w, h)
        crc = struct.pack(">I", zlib.crc32(bytes(ihdr)) & 0xFFFFFFFF)
        return data[:12] + bytes(ihdr) + crc + data[33:]
    # JPEG: the SOF of the primary image, or of a later one (an embedded map) at random.
    sofs = [i for i in range(len(data) - 9) if data[i] == 0xFF and data[i + 1] in (0xC0, 0xC1, 0xC2)]
    if not sofs:
        return _flip(data, rng)
    i = rng.choice(sofs)
    return data[: i + 5] + struct.pack(">HH", min(h, 65535), min(w, 65535)) + data[i + 9 :]


def _flip(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 16)):
        i = rng.randrange(len(b))
        b[i] ^= 1 << rng.randrange(8)
    return bytes(b)


def mutate(data: bytes, mutation: str, rng: random.Random) -> bytes:
    """One mutant of ``data``. Mutations favour the first 64 KB half the time: the
    headers and metadata parsers live there."""
    n = len(data)
    head = min(n, 65536)

    def pos() -> int:
        return rng.randrange(head) if rng.random() < 0.5 else rng.randrange(n)

    if mutation == "flip":
        return _flip(data, rng)
    if mutation in ("overwrite", "zero"):
        i, k = pos(), rng.choice([1, 2, 4, 16, 256, 4096])
        fill = bytes(k) if mutation == "zero" else rng.randbytes(k)
        return data[:i] + fill[: n - i] + data[i + k :]
    if mutation == "truncate":
        return data[: pos()]
    if mutation == "insert":
        i = pos()
        return data[:i] + rng.randbytes(rng.choice([1, 3, 64, 1024])) + data[i:]
    if mutation == "duplicate":
        i = pos()
        k = rng.choice([2, 16, 300, 65536])
        return data[: i + k] + data[i : i + k] + data[i + k :]
    if mutation == "huge-size":
        return _huge_size(data, rng)
    raise ValueError(mutation)


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_cli(main: Callable[[list[str]], object], argv: list[str]) -> tuple[int, str]:
    """``refocus ARGV`` in this process through ``main`` (:func:`refocus.cli.main`):
    (exit code, last line of stderr)."""
    err = io.StringIO()
    code = 0
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    lines = [ln for ln in err.getvalue().splitlines() if ln.strip()]
    return code, lines[-1] if lines else ""


def run_fuzz(
    sources: list[Path],
    n_mutants: int,
    seed: int = 0,
    photo_for_depth: Path | None = None,
    depth_max_pixels: int = 4_000_000,
    progress=None,
    *,
    cli_main: Callable[[list[str]], object],
) -> list[Run]:
    """Run ``n_mutants`` mutants spread over ``sources``; see the module docstring.

    ``cli_main`` is :func:`refocus.cli.main`, passed in by the command because the
    CLI sits above the benchmark (imports run downward).

    Mutants of photos run ``info``, and ``depth`` when the source has at most
    ``depth_max_pixels`` (writing a 12 MP depth set takes seconds); mutants of
    disparity PNGs run ``depth PHOTO --depth MUTANT`` with ``photo_for_depth``.
    """
    from refocus.io.limits import photo_size

    rng = random.Random(seed)
    originals = [(p, p.read_bytes(), source_kind(p), photo_size(p)) for p in sources]
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="refocus-fuzz-") as tmp:
        tmpd = Path(tmp)
        for i in range(n_mutants):
            src, data, kind, size = originals[i % len(originals)]
            mutation = MUTATIONS[(i // len(originals)) % len(MUTATIONS)]
            mutant = tmpd / f"m{i}{src.suffix.lower()}"
            mutant.write_bytes(mutate(data, mutation, rng))
            out = tmpd / f"o{i}.npy"
            if kind == "png-disparity":
                if photo_for_depth is None:
                    continue
                commands = [["depth", str(photo_for_depth), "--depth", str(mutant), "-o", str(out), "--no-refine"]]
            else:
                commands = [["info", str(mutant)]]
                small = size is not None and size[0] * size[1] <= depth_max_pixels
                if small and i % 2 == 0:
                    commands.append(["depth", str(mutant), "-o", str(out), "--no-refine", "--no-estimate"])
            for argv in commands:
                _reset_peak()
                t0 = time.perf_counter()
                code, msg = run_cli(cli_main, argv)
                runs.append(Run(src.name, kind, mutation, argv[0], code, time.perf_counter() - t0, _peak_mb(), msg[:300]))
                if progress is not None:
                    progress(runs[-1])
            for p in tmpd.iterdir():
                p.unlink()
    return runs


def summarise(runs: list[Run]) -> dict[str, dict]:
    """Per input class (source kind / mutation): runs, exit codes, median s, peak MiB."""
    groups: dict[str, list[Run]] = {}
    for r in runs:
        groups.setdefault(f"{r.kind}/{r.mutation}", []).append(r)
    out = {}
    for key in sorted(groups):
        rs = groups[key]
        codes: dict[str, int] = {}
        for r in rs:
            codes[str(r.exit_code)] = codes.get(str(r.exit_code), 0) + 1
        out[key] = {
            "runs": len(rs),
            "exit_codes": codes,
            "median_s": round(statistics.median(r.seconds for r in rs), 4),
            "max_s": round(max(r.seconds for r in rs), 4),
            "median_peak_mb": round(statistics.median(r.peak_mb for r in rs), 1),
            "peak_mb": round(max(r.peak_mb for r in rs), 1),
        }
    return out


def default_sources(data_dir: Path) -> tuple[list[Path], Path | None]:
    """The fuzz corpus in the shared data: phone photos with depth, BokehMe photos and
    their disparity PNGs, and the smallest three EXIF-corpus JPEGs."""
    phone = sorted((data_dir / "phone-depth").glob("*.jp*g")) + sorted((data_dir / "phone-depth").glob("*.heic"))
    photos = sorted((data_dir / "photos").glob("bokehme-*.jpg"))
    disp = sorted((data_dir / "photos").glob("bokehme-*-disparity.png"))[:1]
    corpus = sorted((data_dir / "photos" / "exif-corpus").glob("*.jpg"), key=lambda p: p.stat().st_size)[:3]
    photo_for_depth = data_dir / "photos" / "bokehme-13.jpg"
    return phone + photos + disp + corpus, (photo_for_depth if photo_for_depth.exists() else None)


#: The keys of every report this command writes (how an earlier one is recognised).
REPORT_KEYS = {"seed", "summary", "runs"}


def write_json(runs: list[Run], path: Path, seed: int, mutants: int | None = None) -> Path:
    import time

    from refocus.bench.machine import git_state, machine_info

    path.parent.mkdir(parents=True, exist_ok=True)
    # Times and memory mean something only beside the machine and the code they came from.
    meta = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine_info(), "git": git_state(), "mutants": mutants}
    doc = {"seed": seed, "meta": meta, "summary": summarise(runs), "runs": [asdict(r) for r in runs]}
    from refocus.io import atomic_write_bytes

    return atomic_write_bytes(path, lambda tmp: Path(tmp).write_text(json.dumps(doc, indent=1)))


def data_dir_default() -> Path:
    """The shared data folder, found as ``refocus bench quality`` finds it (so both
    commands work from any folder); ``../shared/data`` names it in the error when absent."""
    from refocus.bench.quality import shared_data_dir

    env = os.environ.get("REFOCUS_SHARED")
    if env:
        return Path(env) / "data"
    return shared_data_dir() or Path("../shared/data")


def check_out(out: Path, inputs: list[Path], overwrite: bool = False) -> None:
    """Refuse, before the run, an ``--out`` that cannot be written, that is one of the
    inputs, or that holds anything but an earlier report of this command (without
    ``overwrite``): a user's JSON or PNG named there was replaced without a word
    (found 2026-12-07)."""
    from refocus.bench.report import json_keys
    from refocus.errors import RefocusError
    from refocus.io.image import check_output_folder, nearest_existing
    from refocus.io.outputs import check_outputs

    out = Path(out)
    if out.is_dir():
        raise RefocusError(f"--out {out} is a folder; --out names the JSON file to write, e.g. {out / 'robustness.json'}")
    p = nearest_existing(out.parent)
    # Missing folders are made at the end (write_json): check the nearest one that exists.
    check_output_folder(p / out.name if p.is_dir() else out)
    check_outputs([out], inputs)
    if out.exists() and not overwrite and not REPORT_KEYS <= json_keys(out):
        raise RefocusError(f"{out} already exists and is not from an earlier report of this command; "
                           "choose another --out or pass --overwrite")
