"""Printing for the commands: a stderr console, and notes shown as written.

Every user-facing text goes through :func:`rich.markup.escape` here: rich would
otherwise read ``pip install 'refocus[depth]'`` or a file named ``a[1].jpg`` as
markup and silently drop the bracketed part.
"""

from __future__ import annotations

import os
import sys
import warnings

from rich.console import Console
from rich.markup import escape


def stderr_console() -> Console:
    return Console(stderr=True, soft_wrap=True)


def progress_bar(console: Console, *columns, transient: bool = True):
    """A rich ``Progress`` for the commands' long work, drawn only on a terminal:
    off one rich draws no live bar, but stopping it still printed an empty line (or,
    not transient, the bar's last state) before the result or the error, which must
    stay one line. No columns: rich's default ones."""
    from rich.progress import Progress

    return Progress(*columns, console=console, transient=transient, disable=not console.is_terminal)


def stage_progress(console: Console, first: str = "reading the photo"):
    """A context manager giving ``progress(fraction, text)``, the pipeline's stage
    reports (:func:`refocus.pipeline.refocuser.reporting`), shown as a bar with the
    stage's name: a 24 MP photo spends minutes in DeblurNet on a CPU, and a spinner
    alone does not say whether it moves."""
    from contextlib import contextmanager

    from rich.progress import BarColumn, TextColumn, TimeElapsedColumn

    @contextmanager
    def cm():
        prog = progress_bar(console, TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
        task = prog.add_task(escape(first), total=1.0)

        def said(fraction, text) -> None:
            if not prog.live.is_started:  # a refusal before the first stage shows no bar
                prog.start()
            prog.update(task, completed=min(max(float(fraction), 0.0), 1.0), description=escape(text))

        try:
            yield said
        finally:
            if prog.live.is_started:
                prog.stop()

    return cm()


def print_notes(console: Console, notes, style: str = "yellow") -> None:
    """One line per note; notes that start with ``warning: `` are shown as warnings."""
    for note in notes:
        note = str(note)
        if note.startswith("warning: "):
            console.print(f"[{style}]warning:[/] {escape(note.removeprefix('warning: '))}")
        else:
            console.print(f"[{style}]note:[/] {escape(note)}")


# --- warnings ----------------------------------------------------------------------
#
# Python prints a warning as "FILE:LINE: UserWarning: text" and the source line under
# it; a user sees the inside of Pillow (".../PIL/TiffImagePlugin.py:950: UserWarning:
# Corrupt EXIF data...") with no word of which photo. Every command shows warnings as
# the project's own notes are shown: one line, "warning: text", and for a library's
# warning about a file, the name of the input being read when it was raised.

_LIBRARY_DIRS = (f"{os.sep}PIL{os.sep}", f"{os.sep}pillow_heif{os.sep}", f"{os.sep}tifffile{os.sep}", f"{os.sep}imagecodecs{os.sep}")
_PATH_LOCALS = ("path", "image_path", "photo", "image", "source")


def _input_being_read(frame) -> str | None:
    """The file a refocus function was reading when a library warned: the innermost
    refocus frame that holds a path (``path``, ``image_path``...) to an existing file."""
    while frame is not None:
        module = str(frame.f_globals.get("__name__", ""))
        if module.startswith("refocus.") and module != __name__:
            local = frame.f_locals
            for key in _PATH_LOCALS:
                value = local.get(key)
                if isinstance(value, (str, os.PathLike)):
                    try:
                        if os.path.isfile(value):
                            return os.fspath(value)
                    except (OSError, TypeError, ValueError):
                        continue
        frame = frame.f_back
    return None


def format_warning(message, category, filename: str) -> str:
    """The one line (without the ``warning:`` prefix) shown for a warning."""
    text = " ".join(str(message).split()) or getattr(category, "__name__", "warning")
    if any(d in str(filename) for d in _LIBRARY_DIRS):
        source = _input_being_read(sys._getframe(1))
        if source is not None:
            text = f"{source}: {text}"
    return text


def install_warning_format():
    """Show every warning as one ``warning: ...`` line on stderr (once per text) instead
    of Python's two-line form with a library's file and line. Returns a function that
    puts the previous ``warnings.showwarning`` back."""
    previous = warnings.showwarning
    shown: set[str] = set()

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        try:
            text = format_warning(message, category, filename)
        except Exception:  # never let a warning's formatting stop a command
            text = " ".join(str(message).split())
        if text in shown:
            return
        shown.add(text)
        try:
            stderr_console().print(f"[yellow]warning:[/] {escape(text)}")
        except Exception:
            pass

    warnings.showwarning = show

    def restore() -> None:
        if warnings.showwarning is show:
            warnings.showwarning = previous

    return restore
