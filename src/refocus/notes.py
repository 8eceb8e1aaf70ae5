"""Warnings collected as notes, per thread.

``warnings.catch_warnings`` swaps process-wide state (the filter list and
``warnings.showwarning``) and puts back what it saw on entry. Two threads using it at
once (the UI serves two sessions at a time) put back each other's state: one session's
notes reach the other's list, and a recorder left installed swallows every later
warning of the process. Here, while any thread collects, one hook stands in front of
``warnings.showwarning`` and sends each thread's warnings to that thread's own list;
the last collector to leave puts the previous ``showwarning`` back.

Limits: a ``catch_warnings(record=True)`` running in another thread at the same time
(a library's, pytest's) still swaps ``showwarning`` from under the hook, as it would
under any other; and the filters run first, so a caller's "error" or "ignore" filter
for a warning still applies inside a block.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

_local = threading.local()
_lock = threading.Lock()
_state = {"hook": None, "previous": None, "users": 0}

#: refocus's own warnings are shown every time they are raised, not once per code
#: location (Python's default): a second photo with the same fault gets the same note.
#: Appended to the filter list, so that a caller's own filters come first.
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

    return show


def _enter() -> None:
    with _lock:
        if _state["users"] == 0 or warnings.showwarning is not _state["hook"]:
            # First collector, or a catch_warnings elsewhere (pytest's, per test) has
            # put its own showwarning in place since: stand in front of what is there.
            _state["previous"] = warnings.showwarning
            _state["hook"] = warnings.showwarning = _make_hook(warnings.showwarning)
        _state["users"] += 1
        if not any(f[0] == "always" and f[3] is not None and f[3].pattern == _OURS for f in warnings.filters):
            warnings.filterwarnings("always", module=_OURS, append=True)


def _leave() -> None:
    with _lock:
        _state["users"] -= 1
        if _state["users"] == 0 and warnings.showwarning is _state["hook"]:
            warnings.showwarning = _state["previous"]
            _state["hook"] = _state["previous"] = None


@contextmanager
def collect_warnings() -> Iterator[list[warnings.WarningMessage]]:
    """Collect the warnings this thread raises inside the block into the list it
    yields (other threads' warnings go where they went before). Nested blocks each get
    only their own."""
    _enter()
    outer = _sink()
    collected: list[warnings.WarningMessage] = []
    _local.sink = collected
    try:
        yield collected
    finally:
        _local.sink = outer
        _leave()


@contextmanager
def ignoring_warnings(category: type[Warning], library_dir: str | None = None) -> Iterator[None]:
    """Drop this thread's warnings of ``category`` (only those raised in files under a
    folder named ``library_dir``, e.g. ``"PIL"``) inside the block; the others are
    passed on as if the block were not there (after it, also when it raises)."""
    import os

    caught: list[warnings.WarningMessage] = []
    raised = True
    try:
        with collect_warnings() as caught:
            yield
        raised = False
    finally:
        for w in caught:
            if issubclass(w.category, category) and (library_dir is None or f"{os.sep}{library_dir}{os.sep}" in str(w.filename)):
                continue
            try:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            except Warning:
                if not raised:  # under an "error" filter; the block's own exception goes first
                    raise
