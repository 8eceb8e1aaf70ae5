"""Process-level memory tuning for the refocus command, UI and benchmarks.

A render churns through many short-lived arrays of tens to hundreds of MB. glibc
serves allocations above its mmap threshold (at most 32 MB, however it adapts)
with fresh pages from the kernel and gives them back on free, so every such array
is page-faulted and zeroed again: on a 12 MP render that was 1.5-4 s of system time
(`ru_stime`) next to 14 s of user time. Raising the mmap and trim thresholds keeps
freed memory in the heap for the next array: on the second and later 12 MP, 64 px
renders of a process, system time 2.6-4.2 s -> 1.1-1.4 s and wall time about 1 s
less (2-core Xeon). The peak resident size grows a little with reuse (2.3 GB after
one render, 2.9 GB after three; the renderer's budget is 4 GB).

This changes the allocator of the whole process, so the library never calls it on
import; the ``refocus`` command, ``refocus ui`` and the benchmark children do.
``REFOCUS_NO_MALLOPT=1`` turns it off.
"""

from __future__ import annotations

import os
import sys

#: glibc's mallopt parameter numbers (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

_done = False


def keep_freed_memory(mmap_threshold_bytes: int = 1 << 30, trim_threshold_bytes: int = 1 << 30) -> bool:
    """Ask glibc to keep freed large blocks for reuse. Returns whether it applied.

    A no-op (False) off Linux/glibc, when ``REFOCUS_NO_MALLOPT=1``, or when called twice.
    """
    global _done
    if _done or os.environ.get("REFOCUS_NO_MALLOPT") == "1" or not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold_bytes)) == 1
        if not ok:  # some glibc versions cap the threshold at 32 MB
            ok = libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20) == 1
        ok = libc.mallopt(_M_TRIM_THRESHOLD, int(trim_threshold_bytes)) == 1 and ok
    except (OSError, AttributeError, ctypes.ArgumentError):  # not glibc (e.g. musl): nothing to tune
        return False
    _done = ok
    return ok
