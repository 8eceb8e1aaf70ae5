"""Warnings collected as notes, per thread.

``warnings.catch_warnings`` swaps process-wide state (the filter list and
``warnings.showwarning``) and puts back what it saw on entry. Two threads using it at
once (the UI serves two sessions at a time) put back each other's state: one session's
notes reach the other's list, and a recorder left installed swallows every later
warning of the process. Here one hook is installed and each thread collects into its
own list; nothing is swapped per call.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

_local = threading.local()
_install_lock = threading.Lock()

_OURS = r"refocus(\.|$)"


def _sink() -> list | None:
    return getattr(_local, "sink", None)


def _make_hook(previous):
    def show(message, category, filename, lineno, file=None, line=None):
        sink = _sink()
        if sink is None:
            previous(message, category, filename, lineno, file, line)
        else:
            sink.append(warnings.WarningMessage(message, category, filename, lineno, file, line))

    show._refocus_notes = True
    return show


def _install() -> None:
    """Put the hook in place unless it is there (a ``catch_warnings`` elsewhere, pytest's
    per test, restores the state it saw on entry, without it), and start a new
    memory of warnings already shown."""
    with _install_lock:
        if not getattr(warnings.showwarning, "_refocus_notes", False):
            warnings.showwarning = _make_hook(warnings.showwarning)
        # Our own notes are shown every time they are raised, not once per code
        # location (Python's default). Adding the filter (again: it moves to the front,
        # not twice) also makes Python forget which warnings it has shown, so a library's
        # warning about a second photo becomes that photo's note too.
        warnings.filterwarnings("always", module=_OURS)


@contextmanager
def collect_warnings() -> Iterator[list[warnings.WarningMessage]]:
    """Collect the warnings this thread raises inside the block into the list it
    yields (other threads' warnings go where they went before). Nested blocks each get
    only their own."""
    _install()
    outer = _sink()
    collected: list[warnings.WarningMessage] = []
    _local.sink = collected
    try:
        yield collected
    finally:
        _local.sink = outer


@contextmanager
def ignoring_warnings(category: type[Warning], library_dir: str | None = None) -> Iterator[None]:
    """Drop this thread's warnings of ``category`` (only those raised in files under a
    folder named ``library_dir``, e.g. ``"PIL"``) inside the block; the others are
    passed on as if the block were not there, also when it raises."""
    import os

    caught: list[warnings.WarningMessage] = []
    try:
        with collect_warnings() as caught:
            yield
    finally:
        for w in caught:
            if issubclass(w.category, category) and (library_dir is None or f"{os.sep}{library_dir}{os.sep}" in str(w.filename)):
                continue
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
