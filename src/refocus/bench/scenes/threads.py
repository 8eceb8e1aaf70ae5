"""Torch's CPU thread count while scenes are generated: an argument, not a hidden setting.

Generation is a long run of small tensor operations, and on a busy 2-core machine a
2-thread pool made a 0.3 ms ``addcmul_`` take 14 ms. So the generators run on one
thread by default (:data:`GENERATION_THREADS`); parallelise across processes (e.g.
DataLoader workers) instead. torch's thread count is process-wide, so each
generator takes it as an argument, ``threads``, and :class:`cpu_threads` sets it for
the duration of the call only, restoring the caller's count after (also on an
error). ``threads=None`` leaves torch's setting alone. Other devices are unaffected.
Keep the default where images must be reproduced bit for bit (the frozen sets):
a parallel reduction may round differently with another thread count.
"""

from __future__ import annotations

import torch

from refocus.errors import RefocusError

__all__ = ["GENERATION_THREADS", "cpu_threads"]

#: Default torch CPU threads of the generators (see the module docstring).
GENERATION_THREADS = 1


class cpu_threads:
    """Context manager: torch's CPU thread count set to ``threads`` inside, restored after.

    Parameters
    ----------
    device:
        Where the work runs; no effect unless it is the CPU.
    threads:
        Threads inside the block (>= 1), or None to leave torch's setting alone.
    """

    def __init__(self, device: torch.device | str, threads: int | None = GENERATION_THREADS):
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise RefocusError(f"threads must be a positive integer or None, got {threads!r}")
        self.threads = threads
        self.active = threads is not None and torch.device(device).type == "cpu"

    def __enter__(self):
        if self.active:
            self.n = torch.get_num_threads()
            torch.set_num_threads(self.threads)
        return self

    def __exit__(self, *exc):
        if self.active:
            torch.set_num_threads(self.n)
