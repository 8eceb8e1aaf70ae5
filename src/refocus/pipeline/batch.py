"""Refocusing every photo of a folder, in parallel processes, resumably.

* Each photo is written to ``OUTDIR/<stem><ext>`` atomically; photos whose outputs
  would share a name (``x.jpg`` and ``x.png``, ``x.heic`` and ``x.jpg``) are written to
  ``<stem>-<their extension><ext>`` instead, so neither replaces the other (names that
  differ only by case, ``B.jpg`` and ``b.jpg``, also get a short hash of the exact name).
  A rerun keeps an output that exists and decodes (an empty or unreadable one is redone,
  with a note), and does only what is missing; a kept output recorded as made with other
  settings, or from a photo or depth map changed since, is named in a note
  (``BatchSummary.stale``; ``overwrite`` redoes it). The record is an extended attribute
  of the output (``user.refocus.batch``), so no file is added to the output folder.
* Temporary files of a killed run are removed when the next batch starts.
* Every entry of the folder is accounted for: done, kept, skipped with a reason
  (hidden, a depth map, not a photo, a sub-folder) or failed with a reason (a photo
  that is unreadable, has no depth, ... or a folder named like a photo); the others
  go on.
* Workers exit when the parent process dies (even by ``kill -9``).
* One batch at a time writes into an output folder (a second is refused while the
  first runs; the lock is on the folder and dies with the process).
* Depth maps are looked up next to each photo (or in ``depth_dir``) as
  ``<stem><depth_suffix>.<ext>``; such files are not treated as photos. A suffix that
  is a path, ends with an extension, or is empty without ``depth_dir`` is refused.
  Without ``depth_dir`` and ``depth_suffix`` a photo with no map beside it gets its
  depth as ``refocus refocus`` would (embedded, the network, its blur). Given either,
  every photo must have its map there: one without fails, saying which names were
  looked for, and nothing else stands in for it (not ``PHOTO-disparity.*`` beside it,
  not a map embedded in it, not the network): those maps are what was asked for.
* At most one worker per CPU core: asking for more uses one per core, with a warning
  (each worker holds its own models in memory; more would only share the cores).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import time
import warnings
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from refocus.errors import RefocusError
from refocus.io.outputs import DEFAULT_JPEG_QUALITY, check_jpeg_quality
from refocus.pipeline.config import RefocusConfig

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".heic", ".heif", ".bmp")
DEPTH_SUFFIXES = (".png", ".npy", ".pfm", ".tif", ".tiff", ".exr")


@dataclass
class BatchSummary:
    """What a batch run did; ``skipped`` and ``failed`` hold (name, one-line reason);
    ``redone`` lists outputs found empty or unreadable and made again; ``stale`` the
    kept outputs recorded as made with other settings or from a since-changed file."""

    done: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    redone: list[tuple[str, str]] = field(default_factory=list)
    #: Kept outputs that this run would have made otherwise: (name, why), e.g. "made
    #: with other settings (strength 10.0 -> 20.0)". ``overwrite=True`` redoes them.
    stale: list[tuple[str, str]] = field(default_factory=list)
    #: What the pipeline noted for a photo done, one (name, note) per note: where its
    #: depth came from when it was guessed, a model that could not be had... (`refocus
    #: refocus` prints them; the batch printed nothing for a photo done).
    notes: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0


def find_photos(folder: str | os.PathLike, depth_suffix: str = "-disparity") -> list[Path]:
    """Photos in ``folder`` (not recursive, sorted), skipping depth maps and hidden files."""
    return scan_folder(folder, depth_suffix)[0]


def scan_folder(
    folder: str | os.PathLike, depth_suffix: str = "-disparity"
) -> tuple[list[Path], list[tuple[str, str]], list[tuple[str, str]]]:
    """Every entry of ``folder``: (photos, skipped with a reason, failed with a reason)."""
    import stat

    from refocus.errors import describe_os_error

    folder = Path(folder)
    try:
        st = folder.stat()
    except FileNotFoundError:
        raise RefocusError(f"not a folder: {folder} (it does not exist)") from None
    except OSError as exc:  # a folder on the way that cannot be searched, a file on the way...
        raise RefocusError(describe_os_error(exc, folder, "read")) from None
    except ValueError:  # a NUL in the name
        raise RefocusError(f"not a folder: {folder!r}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise RefocusError(f"not a folder: {folder} (it is a file)")
    photos, skipped, failed = [], [], []
    try:
        entries = sorted(folder.iterdir())
    except OSError as exc:
        raise RefocusError(describe_os_error(exc, folder, "list")) from None
    for p in entries:
        photo_like = p.suffix.lower() in PHOTO_SUFFIXES
        if p.name.startswith("."):
            skipped.append((p.name, "hidden"))
        elif p.is_dir():
            if photo_like:
                failed.append((p.name, "is a folder, not a photo"))
            else:
                skipped.append((p.name, "a folder (batch does not descend into folders)"))
        elif not p.is_file():
            (failed if photo_like else skipped).append((p.name, _not_a_file(p)))
        elif depth_suffix and p.stem.endswith(depth_suffix) and p.suffix.lower() in PHOTO_SUFFIXES + DEPTH_SUFFIXES:
            skipped.append((p.name, f"a depth map (name ends with {depth_suffix})"))
        elif not photo_like:
            skipped.append((p.name, f"not a photo ({p.suffix or 'no extension'})"))
        else:
            photos.append(p)
    return photos, skipped, failed


def _not_a_file(p: Path) -> str:
    """Why ``p`` (neither a folder nor a regular file) is not read: a broken or looping
    link, a device, a pipe..."""
    if p.is_symlink():
        try:
            p.resolve(strict=True)
        except RuntimeError:
            return "a symbolic link loop"
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return "a symbolic link loop"
            try:
                return f"a broken symbolic link (to {os.readlink(p)})"
            except OSError:
                return "a broken symbolic link"
    return "not a regular file"


def output_problem(path: Path) -> str | None:
    """Why an existing output cannot be kept (empty, undecodable), or None when it is good."""
    try:
        if path.stat().st_size == 0:
            return "was empty"
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    from refocus.io import read_image

    try:
        read_image(path)  # a full decode: a truncated JPEG or PNG fails here
    except RefocusError as exc:
        return f"could not be decoded ({str(exc).splitlines()[0]})"
    except MemoryError:
        return "could not be decoded (out of memory)"
    return None


def find_depth(photo: Path, depth_dir: Path | None, depth_suffix: str) -> Path | None:
    """The depth map of ``photo``, if there is one (:func:`refocus.depth.find_neighbour_depth`)."""
    from refocus.depth import find_neighbour_depth

    return find_neighbour_depth(photo, depth_dir, depth_suffix)


def output_for(photo: Path, out_dir: Path, fmt: str | None) -> Path:
    """Where the result of ``photo`` goes; HEIC/BMP inputs become JPEG/PNG."""
    ext = fmt or photo.suffix.lower()
    if not ext.startswith("."):
        ext = "." + ext
    ext = {".heic": ".jpg", ".heif": ".jpg", ".bmp": ".png"}.get(ext, ext)
    return out_dir / f"{photo.stem}{ext}"


def outputs_for(photos: list[Path], out_dir: Path, fmt: str | None) -> dict[Path, Path]:
    """Where each photo's result goes: :func:`output_for`, except that photos whose
    outputs would coincide keep their own extension in the name (``x-jpg.png``,
    ``x-png.png``), which is the same on every rerun, so resuming still finds them."""
    natural = {p: output_for(p, out_dir, fmt) for p in photos}
    by_name: dict[str, list[Path]] = {}
    for p, out in natural.items():
        # Case folded: on a case-insensitive disk (macOS, Windows) x.JPG and x.jpg clash too.
        by_name.setdefault(out.name.casefold(), []).append(p)
    result = dict(natural)
    for group in by_name.values():
        if len(group) > 1:
            for p in group:
                out = natural[p]
                result[p] = out.with_name(f"{p.stem}-{p.suffix.lstrip('.')}{out.suffix}")
    # Names that still coincide, case folded: photos whose names differ only by case
    # (B.jpg and b.jpg, x.JPG and x.jpg), or a photo literally named like a renamed
    # output (x-jpg.jpg beside x.jpg and x.png). The renamed ones also get a short hash
    # of their exact name: still the same on every rerun, and distinct.
    again: dict[str, list[Path]] = {}
    for p, out in result.items():
        again.setdefault(out.name.casefold(), []).append(p)
    for group in again.values():
        if len(group) > 1:
            for p in group:
                if result[p] != natural[p]:
                    out = result[p]
                    tag = hashlib.sha1(os.fsencode(p.name)).hexdigest()[:6]
                    result[p] = out.with_name(f"{out.stem}-{tag}{out.suffix}")
    return result


def _exit_with_parent(parent_pid: int, interval_s: float = 0.5) -> None:
    """Exit this worker as soon as its parent is gone (a killed parent cannot tell its
    pool; orphaned workers would finish their photo and then wait forever)."""
    import threading

    def watch() -> None:
        while True:
            time.sleep(interval_s)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="refocus-parent-watch", daemon=True).start()


class _Stopped(BaseException):
    """Raised in a worker that the parent stops (after Ctrl-C) while it writes an output:
    unwinding through the atomic writer removes the unfinished temporary file."""


_writing = False  # a worker is inside write_image (see _on_stop)


def _on_stop(signum, frame) -> None:
    """SIGTERM from the parent (it was interrupted): end now, writing nothing more."""
    if _writing:
        raise _Stopped
    os._exit(128 + int(signum))


def _init_worker(parent_pid: int | None = None) -> None:
    import signal

    # Ctrl-C reaches every process of the terminal's group. The parent alone handles it:
    # it stops the workers (_stop_workers), so that none prints a KeyboardInterrupt
    # traceback or goes on to write an output. The workers were started with SIGINT
    # blocked (_sigint_blocked), so none arrived before this.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_stop)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    if parent_pid is not None:
        _exit_with_parent(parent_pid)
    # Processes already give the parallelism; more threads per process would
    # only fight over the same cores.
    try:
        import torch

        torch.set_num_threads(1)
    except Exception:
        pass


# What each output was made from (the settings, the photo's and depth map's size and
# time) is kept on the output itself, in an extended attribute, so that a rerun can say
# which outputs it keeps were made otherwise (no file is added to the output folder).
# Where the disk has no extended attributes (FAT, some network disks, macOS, Windows)
# nothing is recorded and kept outputs are kept as before, without the note.
_RECORD_ATTR = "user.refocus.batch"
# Settings that do not change the picture.
_UNRECORDED = ("device", "max_megapixels")


def _file_sig(path: str | os.PathLike | None) -> list | None:
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


#: Settings recorded since a later version, as the outputs recorded before them were made.
_RECORD_DEFAULTS = {"jpeg_quality": DEFAULT_JPEG_QUALITY}


def _record(cfg: RefocusConfig, photo: str | os.PathLike, depth: str | os.PathLike | None,
            jpeg_quality: int = DEFAULT_JPEG_QUALITY, output: str | os.PathLike | None = None) -> dict:
    settings = cfg.model_dump(mode="json", exclude=set(_UNRECORDED))
    # Only where it shapes the file: a PNG or TIFF output was called stale when only
    # --jpeg-quality changed.
    if output is None or Path(output).suffix.lower() in (".jpg", ".jpeg", ".webp"):
        settings["jpeg_quality"] = jpeg_quality
    return {
        "settings": settings,
        "photo": [os.path.realpath(photo), _file_sig(photo)],
        "depth": None if depth is None else [os.path.realpath(depth), _file_sig(depth)],
    }


def _write_record(output: str | os.PathLike, record: dict) -> None:
    try:
        os.setxattr(output, _RECORD_ATTR, json.dumps(record, separators=(",", ":")).encode())
    except (AttributeError, OSError):  # no extended attributes here
        pass


def _read_record(output: str | os.PathLike) -> dict | None:
    try:
        record = json.loads(os.getxattr(output, _RECORD_ATTR))
    except (AttributeError, OSError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("settings"), dict) else None


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def kept_mismatch(output: str | os.PathLike, now: dict) -> str | None:
    """Why a kept output may not be what this run would make (other settings, a photo
    or depth map changed since), from the record on it; None when it matches or when
    there is no record."""
    was = _read_record(output)
    if was is None:
        return None
    old, new = _RECORD_DEFAULTS | _flat(was["settings"]), _RECORD_DEFAULTS | _flat(now["settings"])
    changed = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    if changed:
        shown = ", ".join(f"{k} {old.get(k)} -> {new.get(k)}" for k in changed[:3])
        more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        return f"made with other settings ({shown}{more})"
    old_photo, new_photo = was.get("photo") or [None, None], now["photo"]
    if old_photo[0] is not None and old_photo[0] != new_photo[0]:
        return f"made from another photo ({old_photo[0]})"
    if old_photo[1] is not None and old_photo[1] != new_photo[1]:
        return "the photo changed after this output was made"
    old_depth, new_depth = was.get("depth"), now["depth"]
    if (old_depth is None) != (new_depth is None) or (old_depth and old_depth[0] != new_depth[0]):
        return "made with another depth map"
    if old_depth and old_depth[1] != new_depth[1]:
        return "the depth map changed after this output was made"
    return None


def process_one(photo: str, output: str, cfg_json: str, depth: str | None,
                jpeg_quality: int = DEFAULT_JPEG_QUALITY) -> tuple[str, str]:
    """Refocus one photo (runs in a worker process). Returns (status, message)."""
    from refocus.io import write_image
    from refocus.pipeline.core import refocus

    global _writing
    try:
        cfg = RefocusConfig.model_validate_json(cfg_json)
        made_from = _record(cfg, photo, depth, jpeg_quality, output)  # before reading: a later change shows on the next run
        if depth is not None:
            cfg = cfg.model_copy(update={"depth_path": depth})
        res = refocus(photo, cfg)
        _writing = True
        try:
            write_image(output, res.image, res.info, quality=jpeg_quality)
        finally:
            _writing = False
        _write_record(output, made_from)
        return "done", "\n".join(n.replace("\n", " ") for n in res.notes)
    except _Stopped:
        os._exit(143)  # the unfinished output's temporary file is gone
    except RefocusError as exc:
        return "failed", _first_line(exc, photo) or type(exc).__name__
    except MemoryError:
        return "failed", "out of memory"
    except Exception as exc:  # one bad file must not stop the batch
        return "failed", f"{type(exc).__name__}: {_first_line(exc, photo)}"


def _first_line(exc: BaseException, photo: str) -> str:
    """The first line of an error's message; a line break inside the photo's name (which
    the message may quote) is written as an escape, so the reason is not cut there."""
    text = str(exc)
    for name in sorted({photo, os.path.basename(photo)}, key=len, reverse=True):
        if "\n" in name or "\r" in name:
            text = text.replace(name, name.replace("\n", "\\n").replace("\r", "\\r"))
    lines = text.splitlines()
    return lines[0] if lines else ""


def run_batch(
    folder: str | os.PathLike,
    out_dir: str | os.PathLike,
    cfg: RefocusConfig,
    *,
    workers: int | None = None,
    depth_dir: str | os.PathLike | None = None,
    depth_suffix: str | None = None,
    fmt: str | None = None,
    jpeg_quality: int = DEFAULT_JPEG_QUALITY,
    overwrite: bool = False,
    on_start: Callable[[int], None] | None = None,
    on_progress: Callable[[str, str, str], None] | None = None,
) -> BatchSummary:
    """Refocus every photo of ``folder`` into ``out_dir``.

    Parameters
    ----------
    cfg : the settings for every photo (a focus point is in each photo's pixels).
    workers : processes (default, and at most: the number of CPU cores available;
        never more than the photos to do).
    depth_dir, depth_suffix : where depth maps are found (see module docs); the suffix
        defaults to ``-disparity``. Given either, every photo needs its map there.
    fmt : output extension (default: the input's).
    jpeg_quality : quality of JPEG and WebP outputs, 1..100.
    overwrite : redo photos whose output exists (default: keep them).
    on_start : called with the number of photos to process.
    on_progress : called with (file name, status, message) as each finishes.
    """
    from refocus.io.outputs import check_outputs
    from refocus.pipeline.options import IMAGE_SUFFIXES

    t0 = time.perf_counter()
    folder, out_dir = Path(folder), Path(out_dir)
    if fmt is not None:
        # ".JPG", "JPG " and "jpg" are one format, and one output name: a rerun with
        # another spelling must find the outputs of the first.
        fmt = "." + fmt.strip().lstrip(".").lower()
        if fmt not in IMAGE_SUFFIXES:
            raise RefocusError(f"unsupported output format {fmt.lstrip('.') or '(empty)'}: use {', '.join(IMAGE_SUFFIXES)}")
    if workers is not None and workers < 1:
        raise RefocusError(f"the number of workers must be at least 1, got {workers}")
    check_jpeg_quality(jpeg_quality)  # before any work: refused by every photo's write, it would fail them all
    # Given either option, the maps they name are the only depth a photo may get (module docs).
    maps_required = depth_dir is not None or depth_suffix is not None
    if depth_suffix is None:
        from refocus.depth import NEIGHBOUR_SUFFIX

        depth_suffix = NEIGHBOUR_SUFFIX
    _check_depth_lookup(depth_dir, depth_suffix)
    photos, skipped, failed = scan_folder(folder, depth_suffix)
    # The output folder inside the input folder is this batch's own, not an entry to
    # fail on every rerun (-o photos/results.jpg would read "a folder named like a photo").
    own, source = out_dir.resolve(), folder.resolve()
    if own.parent == source:
        failed = [(n, why) for n, why in failed if n != own.name]
        skipped = [(n, why) for n, why in skipped if n != own.name]
        if (folder / own.name).is_dir():
            skipped.append((own.name, "the output folder"))
    if not photos and not failed:
        raise RefocusError(f"no photos in {folder} ({', '.join(PHOTO_SUFFIXES)})")
    if own == source:
        raise RefocusError("the output folder must differ from the input folder (inputs are never overwritten)")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RefocusError(f"cannot create output folder {out_dir}: {exc.strerror or exc}") from None
    if not os.access(out_dir, os.W_OK):
        raise RefocusError(f"output folder is not writable: {out_dir}")
    with _folder_lock(out_dir):
        from refocus.io.image import clean_stale_parts

        # Temporary files of a killed run: removed now, even when nothing is left to write.
        clean_stale_parts(out_dir, force=True)
        ddir = Path(depth_dir) if depth_dir is not None else None
        summary = BatchSummary(skipped=skipped, failed=list(failed))
        todo = []
        outputs = outputs_for(photos, out_dir, fmt)
        claimed: dict[str, str] = {}
        for p in photos:
            out = outputs[p]
            if out.name.casefold() in claimed:  # only a photo literally named like a renamed output
                summary.failed.append((p.name, f"its output {out.name} is also {claimed[out.name.casefold()]}'s; rename one"))
                continue
            claimed[out.name.casefold()] = p.name
            depth = find_depth(p, ddir, depth_suffix)
            if depth is None and maps_required:
                summary.failed.append((p.name, _missing_map(p, ddir, depth_suffix)))
                continue
            try:
                check_outputs([out], [p, depth, cfg.aperture.image_path, cfg.focus_mask])
            except RefocusError as exc:
                summary.failed.append((p.name, str(exc)))
                continue
            if out.exists() and not overwrite:
                problem = output_problem(out)
                if problem is None:
                    summary.kept.append(p.name)
                    why = kept_mismatch(out, _record(cfg, p, depth, jpeg_quality, out))
                    if why is not None:
                        summary.stale.append((p.name, why))
                    continue
                summary.redone.append((p.name, f"the output {out.name} {problem}"))
            todo.append((str(p), str(out), None if depth is None else str(depth)))
        cores = _cpu_count()
        if workers is not None and workers > cores and len(todo) > cores:
            # Each worker holds its own copy of the models and a photo's buffers: more
            # workers than cores only share the same cores and multiply the memory.
            warnings.warn(f"{workers} workers asked for, {cores} used: one per CPU core available", stacklevel=2)
        n_workers = max(1, min(workers or cores, cores, len(todo) or 1))
        _check_room(todo, out_dir)
        if on_start is not None:
            on_start(len(todo))
        cfg_json = cfg.model_dump_json()
        if cfg.aperture.shape == "custom" and cfg.aperture.image is not None and not cfg.aperture.image_path:
            raise RefocusError("a custom aperture in batch mode must come from a file (--aperture PATH.png)")

        def record(name: str, status: str, msg: str) -> None:
            if status == "done":
                summary.done.append(name)
                summary.notes.extend((name, note) for note in msg.split("\n") if note)
            else:
                summary.failed.append((name, msg))
            if on_progress is not None:
                on_progress(name, status, msg)

        if n_workers == 1:
            for photo, out, depth in todo:
                status, msg = process_one(photo, out, cfg_json, depth, jpeg_quality)
                record(Path(photo).name, status, msg)
        else:
            import multiprocessing as mp

            pool = None
            try:
                # The workers start with SIGINT blocked (they inherit the mask): Ctrl-C
                # during their start-up cannot print a traceback from them. The resource
                # tracker is started first: starting it unblocks SIGINT in this thread.
                from multiprocessing import resource_tracker

                resource_tracker.ensure_running()
                from refocus.errors import interrupts_deferred

                with interrupts_deferred(), _sigint_blocked():
                    pool = ProcessPoolExecutor(
                        n_workers, mp_context=mp.get_context("spawn"), initializer=_init_worker, initargs=(os.getpid(),)
                    )
                    pending = {pool.submit(process_one, photo, out, cfg_json, depth, jpeg_quality): Path(photo).name
                               for photo, out, depth in todo}
                while pending:
                    finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in finished:
                        name = pending.pop(fut)
                        try:
                            status, msg = fut.result()
                        except Exception as exc:  # a worker died (killed for memory...)
                            status, msg = "failed", f"worker crashed: {type(exc).__name__}"
                        record(name, status, msg)
            except BaseException:  # Ctrl-C (or a failure here): no worker may go on writing
                if pool is not None:
                    _stop_workers(pool)
                raise
            finally:
                if pool is not None:
                    pool.shutdown(wait=True, cancel_futures=True)
    summary.seconds = time.perf_counter() - t0
    return summary


@contextlib.contextmanager
def _folder_lock(out_dir: Path):
    """Hold an exclusive lock on the output folder itself while a batch writes into it.

    Two batches into one folder each saw the other's outputs as missing and both
    redid every photo. The lock is on the folder, so no lock file is left behind, and
    the kernel drops it when the process dies, even by ``kill -9``. Where folders
    cannot be locked (Windows, some network disks) the batch runs unlocked.
    """
    try:
        import fcntl

        fd = os.open(out_dir, os.O_RDONLY)
    except (ImportError, OSError):  # pragma: no cover - not POSIX, or an odd disk
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RefocusError(
                f"another refocus batch is writing into {out_dir}: wait for it to finish (a rerun then does only what "
                "is missing) or choose another output folder"
            ) from None
        except OSError:  # pragma: no cover - a disk without locks
            pass
        yield
    finally:
        os.close(fd)  # releases the lock


def _missing_map(photo: Path, depth_dir: Path | None, depth_suffix: str) -> str:
    """The one-line reason a photo fails when the depth maps were named and its own is missing."""
    from refocus.depth import NEIGHBOUR_EXTENSIONS, NEIGHBOUR_SUFFIX

    where = f"in {depth_dir}" if depth_dir is not None else "beside it"
    asked = "--depth-dir" if depth_dir is not None else "--depth-suffix"
    why = f"no depth map {photo.stem}{depth_suffix}{{{','.join(NEIGHBOUR_EXTENSIONS)}}} {where}"
    unused = find_depth(photo, None, NEIGHBOUR_SUFFIX)
    if unused is not None:
        # Say so: the user may well expect this one to be taken.
        why += f" ({unused.name} beside it is not used)"
    return f"{why}: with {asked} every photo needs its own map"


def _check_depth_lookup(depth_dir: str | os.PathLike | None, depth_suffix: str) -> None:
    """Refuse a depth-map folder that is not one, and a suffix that cannot name a
    depth map beside its photo."""
    if depth_dir is not None and not Path(depth_dir).is_dir():
        raise RefocusError(f"the depth map folder is not a folder: {depth_dir}")
    if any(c in depth_suffix for c in ("/", "\\", "\0")):
        raise RefocusError(f"the depth suffix {depth_suffix!r} is a path: give the end of a file name, e.g. -disparity")
    ext = Path("x" + depth_suffix).suffix.lower()
    if ext in DEPTH_SUFFIXES:
        raise RefocusError(
            f"the depth suffix {depth_suffix!r} ends with a file extension: give it without {ext} "
            f"(the maps may be {', '.join(DEPTH_SUFFIXES)})"
        )
    if not depth_suffix and depth_dir is None:
        raise RefocusError(
            "an empty depth suffix needs a depth map folder (--depth-dir): beside the photos, "
            "PHOTO.jpg's depth map would be named like a photo (PHOTO.png)"
        )


def _check_room(todo: list[tuple[str, str, str | None]], out_dir: Path) -> None:
    """Refuse to start when the outputs (estimated from the photos' declared sizes)
    cannot fit on the output folder's disk: better than failing hours in."""
    from refocus.io.image import check_free_space, estimate_output_bytes
    from refocus.io.limits import photo_size

    need = 0
    for photo, out, _ in todo:
        size = photo_size(photo)
        if size is not None:
            need += estimate_output_bytes(size[0], size[1], Path(out).suffix, 16)
    if need:
        check_free_space(out_dir / "outputs", need)


@contextlib.contextmanager
def _sigint_blocked():
    """SIGINT blocked for this (the main) thread meanwhile; processes started inside
    inherit the mask. An interrupt that arrives meanwhile is delivered at the end."""
    import signal
    import threading

    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _stop_workers(pool: ProcessPoolExecutor, timeout_s: float = 10.0) -> None:
    """Stop the pool's workers now (SIGTERM, see _on_stop; SIGKILL after ``timeout_s``)
    and wait for them, so that none writes an output after the parent was interrupted."""
    import multiprocessing as mp
    from concurrent.futures.process import _process_worker

    procs = list((getattr(pool, "_processes", None) or {}).values())
    # One started but not yet recorded by the pool (interrupted in between).
    procs += [p for p in mp.active_children() if getattr(p, "_target", None) is _process_worker and p not in procs]
    for p in procs:
        try:
            if p.is_alive():
                p.terminate()
        except (OSError, ValueError):
            pass
    deadline = time.monotonic() + timeout_s
    for p in procs:
        try:
            p.join(max(0.0, deadline - time.monotonic()))
            if p.is_alive():
                p.kill()
                p.join(1.0)
        except (OSError, ValueError, AssertionError):
            pass


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1
