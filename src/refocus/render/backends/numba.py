"""The numba backend: the numpy backend with its coarse steps compiled.

The numpy path spends most of its time in many small whole-batch passes (window
gathers, ramps, the push-pull fill's upsampling, FFT convolutions, tile reads and
writes), each streaming its batch through memory and each holding the GIL between
numpy calls. The kernels of :mod:`~refocus.render.backends._numba_sparse` do the
same arithmetic for the tile-sparse layers window by window while the window sits
in the CPU cache, convolve with the aperture kernel directly (at levels 1 and 2 a
kernel has at most about 13 x 13 taps); those of
:mod:`~refocus.render.backends._numba_frame` fuse the full-frame passes around them
(image in and result out with their luminance, the highlight boost's bright-pixel share,
band counts, x2 downsampling, block
and tile reductions). They release the GIL, so the renderer's two sweeps run on two
cores, and a kernel call over many windows is cut in two halves when one sweep runs
alone (:class:`refocus.render.threads.RenderThreads`).

Every kernel mirrors a numpy expression of :mod:`~refocus.render.backends.base` /
:mod:`~refocus.render.backends.numpy` operation by operation (the same float32
roundings wherever the order is the same), so the two backends agree to float32
round-off (``tests/test_render.py`` checks it); the x2 resampling is bit for bit
the numpy backend's. When numba is missing, or ``REFOCUS_NO_JIT=1``,
:func:`kernels` returns None and the numpy backend runs instead
(:func:`refocus.render.backends.cpu_backend`). numba compiles the kernels once per
machine and caches the result next to their modules (about a minute on a 2-core
laptop, announced on stderr).
"""

from __future__ import annotations

import os
from types import SimpleNamespace

import numpy as np

from refocus.render.backends.numpy import NumpyBackend
from refocus.render.plan import BLOCK, EPS

_KERNELS = None
_TRIED = False
#: The kernel modules, next to this one.
_MODULES = ("_numba_sparse", "_numba_frame")


def kernels():
    """The compiled kernels (a namespace over both kernel modules), or None when
    numba is unavailable or disabled by the environment variable ``REFOCUS_NO_JIT=1``."""
    global _KERNELS, _TRIED
    if os.environ.get("REFOCUS_NO_JIT", "") not in ("", "0"):
        return None
    if not _TRIED:
        _TRIED = True
        try:
            from refocus.render.backends import _numba_frame, _numba_sparse
        except ImportError:
            _KERNELS = None
        else:
            _notice_first_compilation(_numba_sparse)
            names = {}
            for mod in (_numba_sparse, _numba_frame):
                names.update({k: v for k, v in vars(mod).items() if not k.startswith("_") and hasattr(v, "py_func")})
            _KERNELS = SimpleNamespace(**names)
    return _KERNELS


def _notice_first_compilation(module) -> None:
    """Say so when the kernels have never been compiled here: the first render then
    waits ~30-60 s (once; numba caches the machine code next to the module)."""
    import sys
    from pathlib import Path

    import numba

    dirs = [Path(module.__file__).parent / "__pycache__"]
    if numba.config.CACHE_DIR:
        dirs.append(Path(numba.config.CACHE_DIR))
    try:  # where numba caches when the package folder is not writable
        from numba.misc.appdirs import AppDirs

        dirs.append(Path(AppDirs(appname="numba", appauthor=False).user_cache_dir))
    except Exception:
        pass
    index = f"{module.__name__.rsplit('.', 1)[-1]}.blur_composite-*.nbi"
    if not any(any(d.rglob(index)) for d in dirs if d.is_dir()):
        print("refocus: compiling the CPU renderer for this machine (first run only, about a minute)", file=sys.stderr)


class NumbaBackend(NumpyBackend):
    """CPU path with compiled kernels: the numpy backend's hooks and resampling
    replaced by :func:`kernels` (see the module docstring)."""

    name = "numba"

    def __init__(self, jit=None):
        #: The compiled kernels (:func:`kernels`).
        self.jit = jit if jit is not None else kernels()
        if self.jit is None:
            raise RuntimeError("numba kernels are unavailable (numba missing, or REFOCUS_NO_JIT=1)")
        self._no_level = np.zeros((1, 1, 1), np.float32)  # placeholder for unused kernel inputs

    # --- frame in and out ----------------------------------------------------
    def image_in(self, image_linear, off, Hp, Wp, booster, threads):
        x_big = np.empty((3, Hp + 2 * off, Wp + 2 * off), np.float32)
        img = np.ascontiguousarray(image_linear, dtype=np.float32)
        lum = np.empty(x_big.shape[1:], np.float32)
        threads.in_row_halves(self.jit.image_in, x_big.shape[1], img, x_big, off, off, lum)
        return booster.expand(x_big, self, off, y=lum)

    def image_out(self, back, front, H, W, booster, threads):
        out, lum = np.empty((H, W, 3), np.float32), np.empty((H, W), np.float32)
        dummy = np.zeros((4, 1, 1), np.float32)
        threads.in_row_halves(self.jit.image_out, H, dummy if back is None else back, dummy if front is None else front,
                              back is not None, front is not None, out, np.float32(EPS), lum)
        return booster.compress(out, self, channel_axis=-1, y=lum)

    def bright_share(self, y, lo, radius):
        out = np.empty(y.shape, np.float32)
        self.jit.bright_share(np.ascontiguousarray(y, dtype=np.float32), np.float32(lo), int(radius), out)
        return out

    # --- reductions and resampling -------------------------------------------------
    def band_counts(self, coc, centres32, threads):
        return sum(threads.in_row_halves(self.jit.band_counts, coc.shape[0], coc, centres32))

    def block_minmax(self, a, b):
        return self.jit.block_minmax(a, b)

    def tile_reduce(self, blocks, m, per, high, memo, name):
        return self.jit.tile_range(blocks, m, per, high)

    def downsample(self, x, s):
        c, h, w = x.shape
        if s == 2 and h % 2 == 0 and w % 2 == 0:
            return self.jit.splat_down2(np.ascontiguousarray(x))
        return super().downsample(x, s)

    def upsample(self, x, s, h, w):
        if s == 2 and x.shape[1] * 2 == h and x.shape[2] * 2 == w:
            return self.jit.upsample2(np.ascontiguousarray(x))
        return super().upsample(x, s, h, w)

    def block_means(self, x, q):
        if q == 4:  # the block side of the coarse fill (plan.BLOCK)
            return self.jit.box_down4(x)
        return super().block_means(x, q)

    # --- the tile-sparse layers ----------------------------------------------------
    def band_splat(self, coc, x, o, T, groups, w_out, wx_out, acc, threads):
        jit = self.jit
        has_acc = acc is not None
        acc_w, acc_wx = (acc[0], acc[1]) if has_acc else (self._no_level, self._no_level)
        xc = np.ascontiguousarray(x)
        for ramps, ty, tx in groups:
            ty, tx = ty.astype(np.int64), tx.astype(np.int64)
            threads.run_ranges(lambda a, b: jit.band_splat(coc, xc, o, ty[a:b], tx[a:b], T, ramps, w_out, wx_out, has_acc, acc_w, acc_wx),
                               threads.window_ranges(ty.size))

    def coarse_fill(self, xb, behind, per, pulled, m0, clamp_level):
        tops = np.concatenate([top for top, _, _ in pulled]) if len(pulled) > 1 else pulled[0][0]
        ty = np.concatenate([t for _, t, _ in pulled]).astype(np.int64)
        tx = np.concatenate([t for _, _, t in pulled]).astype(np.int64)
        pc = self.jit.coarse_map(np.ascontiguousarray(xb), behind, per, np.ascontiguousarray(tops), ty, tx, m0)
        return self.jit.pushpull(pc, np.float32(EPS), BLOCK.bit_length() - 1, clamp_level)

    def layer_windows(self, job, acc, threads):
        """The same steps as the numpy backend's, window by window in the CPU cache;
        the level-2 layers without precomputed inputs keep the numpy expressions."""
        if job.dense_in is None and job.s != 1:
            return super().layer_windows(job, acc, threads)
        jit, T, E, half = self.jit, job.T, job.E, job.half
        Wn = T + 2 * E
        ty, tx = job.ty.astype(np.int64), job.tx.astype(np.int64)
        if job.dense_in is not None:
            mode, levels = 1, tuple(np.ascontiguousarray(d) for d in job.dense_in)
            # Level-array windows carry the own nearer shares in their inputs already.
            groups = [(job.own, ty, tx)]
        else:
            mode, levels = 0, (self._no_level,) * 4
            # Windows grouped by whether they use the pixels' own nearer shares (the
            # step of own_step) or the plain tent.
            groups = job.groups(ty, tx)

        # Frame mode: window n (its one-pixel splat margin dropped) starts at
        # off - E + (ty, tx) * T of the padded frame.
        def src(g, a, b):
            ramps, tyg, txg = g
            return (mode, job.coc_big, job.x_big, job.off - E, levels, tyg[a:b], txg[a:b], T, E, Wn, ramps)

        calls = []  # (group, ranges, pulled per range)
        if job.additive:  # no fill: nothing to pull
            n_w = Wn // 2
            for g in groups:
                ranges = threads.window_ranges(g[1].size)
                calls.append((g, ranges, [(np.zeros((1, 4, n_w, n_w), np.float32), None, np.zeros(g[1].size, np.bool_))] * len(ranges)))
            groups = []
        for g in groups:
            ranges = threads.window_ranges(g[1].size)
            calls.append((g, ranges, threads.run_ranges(lambda a, b: jit.pull(*src(g, a, b), E - half, E + T + half), ranges)))
        use_fill = job.tent[3] and not job.additive and any(bool(need.any()) for _, _, pulled in calls for _, _, need in pulled)
        if use_fill:
            tops = [(p2, g[1][a:b], g[2][a:b]) for g, ranges, pulled in calls for (a, b), (_, p2, _) in zip(ranges, pulled)]
            fc = np.ascontiguousarray(job.coarse_fill(tops))
        else:
            fc = np.zeros((3, 1, 1), np.float32)
        kerns = np.ascontiguousarray(job.kernel_stack(), dtype=np.float32)
        for g, ranges, pulled in calls:
            if job.composite is not None and not job.additive:
                # Tiles whose over render is not shown: pulled (for the fill), not blurred.
                keep = np.asarray(job.composite(g[1], g[2]), bool)
                if not keep.any():
                    continue
                if not keep.all():
                    idx = np.nonzero(keep)[0]
                    p1 = np.concatenate([p[0] for p in pulled])[idx]
                    need = np.concatenate([p[2] for p in pulled])[idx]
                    g = (g[0], g[1][idx], g[2][idx])
                    ranges = threads.window_ranges(idx.size)
                    pulled = [(p1[a:b], None, need[a:b]) for a, b in ranges]
            parts = {r: p for r, p in zip(ranges, pulled)}
            k_idx = job.kernel_index(g[1], g[2])
            threads.run_ranges(lambda a, b: jit.blur_composite(*src(g, a, b), parts[(a, b)][0], fc, parts[(a, b)][2], use_fill, kerns,
                                                               k_idx[a:b], acc, job.front, job.additive), ranges)

    # --- per-pixel passes of the pipeline ----------------------------------------
    def residual_coc(self, coc_px, blur_px):
        # one compiled pass: this sits on the UI's re-render path
        return self.jit.coc_effective(np.ascontiguousarray(coc_px, dtype=np.float32), np.ascontiguousarray(blur_px, dtype=np.float32))

    def blend_kept(self, rendered, src, coc, blur, keep_px, sharp_px, agree):
        # one compiled pass instead of a selection and a gather
        out = np.array(rendered, dtype=np.float32)
        self.jit.blend_kept(out, np.ascontiguousarray(src, dtype=np.float32), np.ascontiguousarray(coc, dtype=np.float32),
                            np.ascontiguousarray(blur, dtype=np.float32), float(keep_px), np.float32(sharp_px), float(agree))
        return out

