"""Printing for the commands: a stderr console, and notes shown as written.

Every user-facing text goes through :func:`rich.markup.escape` here: rich would
otherwise read ``pip install 'refocus[depth]'`` or a file named ``a[1].jpg`` as
markup and silently drop the bracketed part.
"""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape


def stderr_console() -> Console:
    return Console(stderr=True, soft_wrap=True)


def print_notes(console: Console, notes, style: str = "yellow") -> None:
    """One line per note; notes that start with ``warning: `` are shown as warnings."""
    for note in notes:
        note = str(note)
        if note.startswith("warning: "):
            console.print(f"[{style}]warning:[/] {escape(note.removeprefix('warning: '))}")
        else:
            console.print(f"[{style}]note:[/] {escape(note)}")
