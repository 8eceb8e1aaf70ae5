"""User-facing errors.

Anything a user can cause (a bad file, a bad option) raises :class:`RefocusError`
with a one-line message; the CLI prints it and exits with a non-zero code instead
of showing a traceback.
"""


class RefocusError(Exception):
    """An error caused by the input or the options, with a one-line message."""

    exit_code = 2


def debug_requested() -> bool:
    """Whether ``REFOCUS_DEBUG=1`` asks for tracebacks instead of the one line (the
    command line and the UI read it here)."""
    import os

    return os.environ.get("REFOCUS_DEBUG") == "1"


def as_user_error(exc: BaseException) -> RefocusError:
    """Any exception as the one line a user sees, with the command line's exit code:
    a :class:`RefocusError` itself; a file-system fault (:func:`describe_os_error`,
    2); out of memory (3); anything else by its type and first line (1). The one rule
    for the command line (``refocus.cli.main``) and the UI: an OSError the UI did not
    expect (a 300-character depth-model name: "File name too long") showed a raw
    exception and "Error" in every panel (found 2026-12-07)."""
    if isinstance(exc, RefocusError):
        return exc
    if isinstance(exc, OSError):
        err, code = RefocusError(describe_os_error(exc)), 2
    elif isinstance(exc, MemoryError):
        err, code = RefocusError("out of memory; try a smaller image or --device cpu with fewer layers"), 3
    else:
        msg = (str(exc).splitlines() or [""])[0]
        err, code = RefocusError(f"{exc.__class__.__name__}: {msg} (set REFOCUS_DEBUG=1 for details)"), 1
    err.exit_code = code
    return err


def describe_os_error(exc: OSError, path=None, verb: str = "access") -> str:
    """One line for a file-system fault: the user's path and the cause.

    ``path`` is the path the user gave (a temporary file's name means nothing to them);
    without it, the path the error names.
    """
    import errno

    target = path if path is not None else (exc.filename or "")
    cause = exc.strerror or (str(exc).splitlines() or [""])[0] or exc.__class__.__name__
    hints = {
        errno.ENOSPC: "the disk is full",
        errno.EDQUOT: "the disk quota is exceeded",
        errno.EROFS: "the disk is read-only",
        errno.ENOTDIR: "a part of the path is a file, not a folder",
        errno.ENOENT: "the folder does not exist",
        errno.EACCES: "permission denied",
        errno.EPERM: "not permitted",
    }
    if verb != "write":
        hints.pop(errno.ENOENT)  # reading: the file itself may be what is missing
    hint = hints.get(exc.errno)
    if hint and hint.lower() != cause.lower():
        cause = f"{cause} ({hint})"
    return f"cannot {verb} {target}: {cause}" if target else f"file system error: {cause}"


class DiskError(RefocusError):
    """A file could not be written (full or read-only disk, missing folder...): exit 2."""


def unreadable_image(path, exc: BaseException, what: str = "image") -> RefocusError:
    """The one-line error for an image file that cannot be opened or decoded: the
    file's name and the cause in words (an empty file, not an image, truncated), for
    every reader (``info``'s header read and the commands' full decode alike)."""
    import os

    name = os.path.basename(os.fspath(path))
    try:
        empty = os.path.getsize(path) == 0
    except (OSError, TypeError, ValueError):
        empty = False
    cause = (str(exc).splitlines() or [""])[0].strip()
    kind = exc.__class__.__name__
    if empty:
        why = "the file is empty (0 bytes)"
    elif kind == "UnidentifiedImageError":
        formats = "8/16-bit PNG, TIFF, .npy, .pfm, EXR" if what == "depth map" else "JPEG, PNG, TIFF, WebP, HEIC, BMP"
        why = f"not an image, or not a format refocus reads ({formats})"
    elif any(w in cause.lower() for w in ("truncated", "broken data stream", "corrupt")) or isinstance(exc, EOFError):
        why = f"the file is truncated or damaged ({cause or kind})"
    else:
        why = f"{kind}: {cause}" if cause else kind
    # Pillow's own text quotes the full path (a server's temporary one, in the UI).
    why = why.replace(os.fspath(path), name) if isinstance(path, (str, os.PathLike)) else why
    return RefocusError(f"cannot read {what} {name}: {why}")


# --- Ctrl-C ------------------------------------------------------------------------
#
# One rule for the command-line tool: an interrupt ends the command with one line,
# "interrupted", and exit code 130, wherever it lands. Three places need care:
#
# * Python's default handler raises KeyboardInterrupt wherever the main thread is.
#   Raised inside a C library's callback into Python (numba compiling through
#   llvmlite's object-cache callback, a ctypes callback), the exception cannot
#   propagate: Python reports it as "unraisable" and the command went on and wrote its
#   output. Our handler records every interrupt, and our unraisable hook re-raises a
#   swallowed one in the main thread as soon as it runs Python code again.
# * Code that catches and drops the exception (or a command framework that turns it
#   into an exit code) cannot hide it either: :func:`interrupted` stays true, and
#   :func:`check_interrupted` raises before an output is committed.
# * An interrupt while modules are still being imported (before ``main`` runs) gives
#   one line and exit 130 through :data:`sys.excepthook`, not a traceback, whatever
#   exception it became on the way.

_interrupted = False
_installed: dict | None = None


def interrupted() -> bool:
    """Whether Ctrl-C (SIGINT) reached this process since the handler was installed."""
    return _interrupted


def check_interrupted() -> None:
    """Raise :class:`KeyboardInterrupt` when an interrupt was recorded, even one that
    some library swallowed; call it before committing an output."""
    if _interrupted:
        raise KeyboardInterrupt


def _redeliver() -> None:
    """Raise KeyboardInterrupt again in the main thread, from a helper thread: it lands
    once the main thread runs Python code again, out of the callback that swallowed it
    (raising it here, still inside that callback, would be swallowed again)."""
    import _thread

    try:
        _thread.start_new_thread(_thread.interrupt_main, ())
    except RuntimeError:  # interpreter shutting down: the recorded flag still decides the exit code
        pass


_deferring = 0


class interrupts_deferred:
    """Within it, Ctrl-C is recorded, not raised; it is raised on leaving (with the
    handler of :func:`install_interrupt_handler`; without it Python's own applies).

    For what must not be cut in the middle: starting worker processes (an interrupt
    between a fork and the data the child reads gave an ``EOFError`` traceback from
    the child). Blocking SIGINT in the main thread is not enough: another thread can
    take the signal, and Python then runs the handler in the main thread anyway.
    """

    def __enter__(self):
        global _deferring
        _deferring += 1
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        global _deferring
        _deferring -= 1
        if _deferring == 0 and exc_type is None:
            check_interrupted()


def _on_sigint(signum, frame) -> None:
    global _interrupted
    _interrupted = True
    if _deferring:
        return
    f = frame
    while f is not None:
        if f.f_code is _unraisable_hook.__code__:  # reporting a swallowed one: deliver later
            _redeliver()
            return
        f = f.f_back
    raise KeyboardInterrupt


def _unraisable_hook(unraisable) -> None:
    exc_type = getattr(unraisable, "exc_type", None)
    if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
        _redeliver()  # no "Exception ignored ... Traceback" on the screen: stop instead
        return
    previous = (_installed or {}).get("unraisablehook") or __import__("sys").__unraisablehook__
    previous(unraisable)


def report_interrupt() -> None:
    """Print the one line for an interrupt on stderr."""
    import sys

    try:
        sys.stdout.flush()
    except Exception:
        pass
    try:
        sys.stderr.write("interrupted\n")
        sys.stderr.flush()
    except Exception:
        pass


def _excepthook(exc_type, exc, tb) -> None:
    # Any exception once Ctrl-C was recorded: Python wraps a KeyboardInterrupt that
    # lands in a class's creation (pydantic's, while a module is imported) in a
    # RuntimeError ("Error calling __set_name__ ..."), which printed a traceback.
    if _interrupted or (exc_type is not None and issubclass(exc_type, KeyboardInterrupt)):
        import os

        report_interrupt()
        os._exit(130)  # only reached before main() runs: nothing to clean up yet
    previous = (_installed or {}).get("excepthook") or __import__("sys").__excepthook__
    previous(exc_type, exc, tb)


def install_interrupt_handler() -> bool:
    """Install the Ctrl-C handling described above (main thread only; a SIGINT that the
    parent process set to be ignored stays ignored). Returns True when it installed it
    now (then :func:`uninstall_interrupt_handler` restores what was there)."""
    global _installed, _interrupted
    import signal
    import sys
    import threading

    if _installed is not None or threading.current_thread() is not threading.main_thread():
        return False
    current = signal.getsignal(signal.SIGINT)
    if current is signal.SIG_IGN:  # e.g. started in the background by a shell
        return False
    previous = {
        "sigint": current,
        "unraisablehook": sys.unraisablehook,
        "excepthook": sys.excepthook,
    }
    try:
        signal.signal(signal.SIGINT, _on_sigint)
    except (ValueError, OSError):  # not the main interpreter
        return False
    _interrupted = False
    _installed = previous
    sys.unraisablehook = _unraisable_hook
    sys.excepthook = _excepthook
    return True


def uninstall_interrupt_handler() -> None:
    """Restore the SIGINT handler and hooks found by :func:`install_interrupt_handler`."""
    global _installed, _interrupted
    import signal
    import sys

    if _installed is None:
        return
    # The record belongs to the run that installed the handler: an in-process caller
    # (tests, the UI) must not find a later atomic write refused for an old interrupt.
    previous, _installed, _interrupted = _installed, None, False
    try:
        signal.signal(signal.SIGINT, previous["sigint"])
    except (ValueError, OSError, TypeError):
        pass
    if sys.unraisablehook is _unraisable_hook:
        sys.unraisablehook = previous["unraisablehook"]
    if sys.excepthook is _excepthook:
        sys.excepthook = previous["excepthook"]


def _launched_as_cli() -> bool:
    import os
    import sys

    argv = getattr(sys, "argv", None) or [""]
    if os.path.basename(str(argv[0])).lower() in ("refocus", "refocus.exe", "refocus-script.py"):
        return True  # the console script
    orig = list(getattr(sys, "orig_argv", None) or [])
    return any(a == "-m" and orig[i + 1 : i + 2] == ["refocus.cli"] for i, a in enumerate(orig))  # python -m refocus.cli


# The ``refocus`` script imports the package (numpy, pydantic, torch...) before its
# main() can run; this module is imported early in that, so an interrupt there gives
# one line too. Library users (``import refocus``) keep Python's own handling.
if _launched_as_cli():
    install_interrupt_handler()
