"""The renderer's threads, as an object its caller owns.

On the CPU the renderer keeps both cores busy: the far and near sweeps (and, when
one holds nearly all the work, its parts) run on two threads, and a full-frame
compiled pass or a compiled kernel call over many windows is cut in two halves when
only one sweep runs (numpy, scipy and the compiled kernels release the GIL).
:class:`RenderThreads` holds the thread pools and the count of threaded sweeps
running; :func:`refocus.render.layered.render_layers` takes one as its ``threads``
argument, by default the process's shared one (:func:`shared_threads`): starting a
pool per render cost ~1 ms per thread, several times per frame, noticeable at
preview size. ``RenderThreads(parallel=False)`` renders on the calling thread.
"""

from __future__ import annotations

import threading


class RenderThreads:
    """Two threads for the sweeps, one helper that takes the second half of a split
    kernel call (:meth:`run_ranges`), started on first use. Their tasks never wait on
    their own pool's tasks, so concurrent renders sharing them only queue."""

    def __init__(self, parallel: bool = True):
        #: Whether anything runs on the pools (else all on the calling thread).
        self.parallel = bool(parallel)
        self._pools: dict = {}
        self._lock = threading.Lock()
        #: Threaded sweeps running now (all renders sharing this object).
        self._active = 0

    def _pool(self, kind: str):
        with self._lock:
            if kind not in self._pools:
                from concurrent.futures import ThreadPoolExecutor

                self._pools[kind] = ThreadPoolExecutor(max_workers=2 if kind == "sweeps" else 1, thread_name_prefix=f"refocus-{kind}")
            return self._pools[kind]

    def run_sweeps(self, sweep, parts: list[tuple[str, list[int], bool]]) -> dict:
        """``{name: sweep(layers, front)}`` for ``parts`` = [(name, layers, front)], on
        the sweep threads (in the order given: heaviest first), each counted as a
        running sweep while it runs (see :meth:`window_ranges`)."""

        def counted(layers, front):
            with self._lock:
                self._active += 1
            try:
                return sweep(layers, front)
            finally:
                with self._lock:
                    self._active -= 1

        pool = self._pool("sweeps")
        jobs = {name: pool.submit(counted, layers, front) for name, layers, front in parts}
        return {name: job.result() for name, job in jobs.items()}

    def window_ranges(self, n: int) -> list[tuple[int, int]]:
        """How to cut n windows of a compiled kernel call: in two halves when this is the
        only sweep running (the other core would idle: the focal plane near one end of
        the depth range, or the end of the longer sweep), else whole."""
        if n < 8 or not self.parallel or self._active != 1:
            return [(0, n)]
        return [(0, n // 2), (n // 2, n)]

    def run_ranges(self, fn, ranges: list[tuple[int, int]]) -> list:
        """``[fn(a, b) for (a, b) in ranges]``, the second range on the helper thread.
        The compiled kernels release the GIL and the ranges write disjoint tiles."""
        if len(ranges) == 1:
            return [fn(*ranges[0])]
        job = self._pool("helper").submit(fn, *ranges[1])
        first = fn(*ranges[0])
        return [first, job.result()]

    def in_row_halves(self, kernel, n_rows: int, *args) -> list:
        """``[kernel(0, m, *args), kernel(m, n_rows, *args)]`` with m = n_rows // 2, the
        two halves in two threads (the compiled kernels release the GIL): full-frame
        passes outside the sweeps would otherwise leave one core idle."""
        m = n_rows // 2
        ranges = [(0, m), (m, n_rows)] if self.parallel and m > 0 else [(0, n_rows)]
        return self.run_ranges(lambda a, b: kernel(a, b, *args), ranges)

    def shutdown(self) -> None:
        """Stop the pools' threads (they start again on the next use)."""
        with self._lock:
            pools, self._pools = self._pools, {}
        for pool in pools.values():
            pool.shutdown(wait=True)


_SHARED: RenderThreads | None = None
_SHARED_LOCK = threading.Lock()


def shared_threads() -> RenderThreads:
    """The process's shared :class:`RenderThreads` (the renderer's default)."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None:
            _SHARED = RenderThreads()
        return _SHARED
