"""The renderer's coarse steps, written once with the primitive array operations.

:class:`ArrayBackend` is what the numpy and torch backends share: the hooks the
algorithm (:mod:`refocus.render.layered`, :mod:`~refocus.render.dense`,
:mod:`~refocus.render.sparse`) calls for its coarse steps -- image in and out,
band counts, block and tile reductions, the push-pull fill, band splats, the
coarse fill and a tile-sparse layer's windows -- implemented with the primitives
each backend defines (``windows``, ``put_tiles``, ``box_down2``, ``upsample`` ...).
The numba backend (:mod:`refocus.render.backends.numba`) overrides the hooks with
compiled kernels that repeat these expressions operation by operation.
"""

from __future__ import annotations

import numpy as np

from refocus.render.plan import BLOCK, CHUNK_PX, EPS, PULL_FULL, smoothstep


def add_(view, value) -> None:
    """``view += value`` in place. Written ``a[i] += b``, Python would also assign the
    result back (``a[i] = a[i]``): a redundant copy, one more kernel launch on a GPU."""
    view += value


def mul_(view, value) -> None:
    """``view *= value`` in place (see :func:`add_`)."""
    view *= value


def block_reduce(a: np.ndarray, b: int, op) -> np.ndarray:
    """Reduce a 2-D numpy array over b x b blocks with a binary ufunc (np.minimum,
    np.maximum); its sides must be multiples of b.

    Strided pairwise passes: a reshape + reduction over two axes is an order of
    magnitude slower in numpy.
    """
    h, w = a.shape
    rows = a.reshape(h // b, b, w)
    r = rows[:, 0].copy()
    for k in range(1, b):
        op(r, rows[:, k], out=r)
    cols = r.reshape(h // b, w // b, b)
    out = cols[..., 0].copy()
    for k in range(1, b):
        op(out, cols[..., k], out=out)
    return out


class ArrayBackend:
    """The renderer's hooks in terms of a backend's primitive operations."""

    name = "array"
    #: Compiled kernels (a module), on the numba backend only.
    jit = None
    #: Run the two sweeps (and their parts) on threads: numpy and the compiled
    #: kernels release the GIL; torch queues its own work.
    parallel_sweeps = False
    #: Render the finest layers tile-sparse (see refocus.render.sparse).
    tile_sparse = False

    # --- frame in and out ----------------------------------------------------
    def image_in(self, image_linear, off: int, Hp: int, Wp: int, booster, threads):
        """The H x W x 3 image channel-first, edge-padded to (Hp, Wp) and by ``off``
        on every side, highlights boosted (``booster``, see refocus.render.highlights)."""
        H, W = image_linear.shape[:2]
        x_big = self.image_chw_padded(image_linear, off, off + Hp - H, off, off + Wp - W)
        return booster.expand(x_big, self, off)

    def image_out(self, back, front, H: int, W: int, booster, threads):
        """The result: the far sweep's premultiplied (4, Hp, Wp) accumulator
        un-premultiplied, the near one over it (either may be None), cropped to
        (H, W), clipped at 0, highlights compressed. In place on the accumulators:
        this join is serial, full-frame work."""
        if back is not None:
            out = back[:3]
            out /= self.clip(back[3:4], EPS, None)
            if front is not None:
                out *= 1.0 - front[3:4]
                out += front[:3]
        else:
            out = front[:3]
            out /= self.clip(front[3:4], EPS, None)
        out = booster.compress(self.contiguous(self.clip(out[:, :H, :W], 0.0, None)), self)
        return self.output_hwc(out)

    def bright_share(self, y, lo: float, radius: int):
        """Mean over (2 radius + 1)^2 squares (edges replicated) of each pixel's
        brightness above ``lo``: smoothstep((y - lo) / (1 - lo)), 0 below ``lo``
        (see refocus.render.highlights)."""
        k = 1.0 / (1.0 - lo)
        return self.box_mean(self.map_above(y, lo, lambda v: smoothstep((v - lo) * k)), radius)

    # --- reductions ------------------------------------------------------------
    def band_counts(self, coc, centres32: np.ndarray, threads) -> np.ndarray:
        """``bincount(searchsorted(centres32, coc, 'left'), minlength=n + 1)[:n + 1]``
        (n layers), as a numpy array."""
        n = len(centres32)
        j = self.searchsorted(centres32, coc, right=False)
        return self.bincount(j, minlength=n + 1)[: n + 1]

    def block_minmax(self, a: np.ndarray, b: int) -> tuple[np.ndarray, np.ndarray]:
        """Min and max of a 2-D numpy array (host memory, on every backend) over
        b x b blocks (its sides multiples of b)."""
        return block_reduce(a, b, np.minimum), block_reduce(a, b, np.maximum)

    def tile_reduce(self, blocks: np.ndarray, m: int, per: int, high: bool, memo: dict, name) -> np.ndarray:
        """Max (``high``) or min of a numpy block map over ``per`` x ``per`` block
        tiles widened by ``m`` blocks (edge-clamped). ``memo``: a dict the caller
        keeps for the frame, where the dilated block map (the same for every tile
        size) is kept under ``(name, m, high)``."""
        dkey = (name, m, high)
        if dkey not in memo:
            from scipy import ndimage

            f = ndimage.maximum_filter if high else ndimage.minimum_filter
            memo[dkey] = f(blocks, size=2 * m + 1, mode="nearest") if m > 0 else blocks
        return block_reduce(memo[dkey], per, np.maximum if high else np.minimum)

    # --- resampling --------------------------------------------------------------
    def splat_down(self, x, q: int):
        """Downsample (C, H, W) by q (a power of two) in factor-2 steps of
        centroid-preserving splats (:meth:`downsample`).

        A plain block average would move small bright spots to their block centre
        (by up to (q - 1) / 2 pixels); the splat keeps them where they are.
        """
        while q > 1:
            x = self.downsample(x, 2)
            q //= 2
        return x

    def block_means(self, x, q: int):
        """q x q block means of (C, H, W) (H, W multiples of q; any strides)."""
        return self.box_down(self.contiguous(x), q)

    def pushpull(self, values, weights, clamp_level: int, level0: int = 0):
        """Fill low-weight pixels of premultiplied ``values`` (C,H,W) from their surroundings.

        ``weights`` (1,H,W) in [0, 1]. Returns colours defined everywhere: at fully
        covered pixels the input colour, elsewhere a smooth extrapolation.
        The pulls to levels ``clamp_level`` and coarser clamp (:meth:`pull_down2`);
        ``level0`` is the input's level (its pixels are 2^level0 px of the layer's
        level: the coarse fill starts at blocks).
        """
        # Box averaging is enough here: the fill is a smooth extrapolation, and it is
        # the hot loop of the renderer.
        c = values.shape[0]
        pyr = [self.concat([values, weights])]
        while pyr[-1].shape[1] > 1 or pyr[-1].shape[2] > 1:
            level = self.box_down2(pyr[-1])
            if level0 + len(pyr) >= clamp_level:
                self.pull_down2(level)
            pyr.append(level)
        top = pyr[-1]
        fill = top[:c] / self.clip(top[c:], EPS, None)
        for level in reversed(pyr[:-1]):
            fill = self.upsample(fill, 2, level.shape[1], level.shape[2])
            fill *= 1.0 - level[c:]  # in place: this loop runs at full size per layer
            fill += level[:c]
        return fill

    def pull_down2(self, m):
        """Clamp one pull step of the push-pull fill, in place on ``m`` (C + 1, h, w),
        the 2 x 2 block means of (premultiplied colour, weight): a block whose
        pixels carry ``4 PULL_FULL`` pixels' worth of weight is fully known one
        level up (colour its weighted mean), as in Gortler et al., The Lumigraph
        (1996).

        With the means alone a block stayed as partly known as its pixels, so a
        hole's fill took a share of every coarser level up to the mean of the
        whole frame: on a smooth depth ramp the hidden part of each near layer
        showed the far end's colour through the small alpha gaps between
        neighbouring blurred layers, as bands one layer apart (1500 x 256 px ramp,
        K = 100: up to 18 of 255 levels where the exact result is black). Only
        the coarse levels clamp (:func:`~refocus.render.plan.pull_clamp_level`):
        the fine ones keep the means, which the background revealed next to a
        depth edge prefers (bench: see refocus.render.plan.PULL_FULL)."""
        c = m.shape[0] - 1
        m *= 1.0 / self.clip(m[c:], PULL_FULL, None)

    # --- the tile-sparse layers (refocus.render.sparse) ------------------------------
    def _ramp(self, cw, lo, inv):
        """clip((cw - lo) * inv, 0, 1): one ramp R of a layer's tent (float32 lo, inv)."""
        return self.clip((cw - lo) * inv, 0.0, 1.0)

    def _tent(self, cw, ramps):
        """R_lo - R_hi of the CoC windows ``cw`` for ``ramps`` = (has_lo, lo, inv_lo,
        has_hi, hi, inv_hi) (see SparseLevels.ramps)."""
        has_lo, lo, inv_lo, has_hi, hi, inv_hi = ramps
        w = self._ramp(cw, lo, inv_lo) if has_lo else self.zeros(cw.shape) + 1.0
        if has_hi:
            w -= self._ramp(cw, hi, inv_hi)
        return w

    def band_splat(self, coc, x, o: int, T: int, groups, w_out, wx_out, acc, threads) -> None:
        """Tent weights W of the tiles (ty, tx) of side T, read with 2 px of margin
        from (o + ty T, o + tx T) of the padded CoC (1,.,.) and image (3,.,.), and
        W x, splatted to half that resolution into the tiles of ``w_out`` (1,.,.) and
        ``wx_out`` (3,.,.). ``groups``: [(ramps, ty, tx)]. With ``acc`` (a pair of
        (1|3,.,.) arrays at the source level) the tiles' W and W x are also added
        into it."""
        F = T + 4  # two px of splat margin on each side
        coc_src, x_src = coc[:, o:, o:], x[:, o:, o:]
        chunk = max(1, CHUNK_PX // (F * F))
        for ramps, ty_g, tx_g in groups:
            for j0 in range(0, ty_g.size, chunk):
                ty, tx = ty_g[j0 : j0 + chunk], tx_g[j0 : j0 + chunk]
                w = self._tent(self.windows(coc_src, F, T, ty, tx), ramps)
                both = self.concat([w, w * self.windows(x_src, F, T, ty, tx)], axis=1)
                if acc is not None:
                    inner = both[:, :, 2:-2, 2:-2]
                    for acc_ch, sl in ((acc[0], slice(0, 1)), (acc[1], slice(1, 4))):
                        tiles = self.get_tiles(acc_ch, T, ty, tx)
                        tiles += inner[:, sl]
                        self.put_tiles(acc_ch, tiles, ty, tx)
                q = self.down_win(both, 2)
                self.put_tiles(w_out, self.contiguous(q[:, 0:1]), ty, tx)
                self.put_tiles(wx_out, self.contiguous(q[:, 1:4]), ty, tx)

    def coarse_fill(self, xb, behind: np.ndarray, per: int, pulled, m0: int, clamp_level: int):
        """The push-pull fill at block resolution: its input holds the image's block
        means ``xb`` (3,.,.) with weight 1 in the tiles (``per`` blocks) where
        ``behind``, else 0, and each batch's windows' block level ``top`` (N, 4,.,.)
        over their tiles (offset m0) for ``pulled`` = [(top, ty, tx)]."""
        one = np.repeat(np.repeat(behind, per, axis=0), per, axis=1).astype(np.float32)[None]
        one_b = self.asarray(one)
        pc = self.contiguous(self.concat([xb * one_b, one_b]))
        for top, ty, tx in pulled:
            self.put_tiles(pc, self.contiguous(top[:, :, m0 : m0 + per, m0 : m0 + per]), ty, tx)
        return self.pushpull(pc[:3], pc[3:4], clamp_level, BLOCK.bit_length() - 1)

    def layer_windows(self, job, acc, threads) -> None:
        """Composite one tile-sparse layer into ``acc`` (4, Hp/s, Wp/s) in place,
        window by window (``job``: a refocus.render.sparse.WindowJob), in batches of
        windows sized for the cache."""
        s, T, E, half = job.s, job.T, job.E, job.half
        Wn = T + 2 * E
        has_lo, has_hi = job.tent[0], job.tent[3]
        ty_all, tx_all = job.ty, job.tx
        F = (Wn + 2) * s
        o = job.off - (E + 1) * s
        coc_src = job.coc_big[:, o:, o:]
        x_src = job.x_big[:, o:, o:]
        chunk = max(1, CHUNK_PX // (F * F))

        def D(a):
            return self.down_win(a, s)

        if job.dense_in is not None:
            dense_pad = self.concat_pad_edge(job.dense_in, E)
            chunk = max(1, CHUNK_PX // (Wn * Wn))

        read = slice(E - half, E + T + half)  # what the kernel reads of a window
        # Pass 1: the layer's inputs in every active window, and its pull pyramid.
        parts, hidden_max = [], 0.0
        for j0 in range(0, ty_all.size, chunk):
            ty, tx = ty_all[j0 : j0 + chunk], tx_all[j0 : j0 + chunk]
            if job.dense_in is not None:
                wv = self.windows(dense_pad, Wn, T, ty, tx)
                part = {"ty": ty, "tx": tx, "alpha": wv[:, 0:1], "colour": wv[:, 1:4]}
                if has_hi and not job.additive:
                    hid = self.clip(wv[:, 4:5], 0.0, 1.0)
                    part["need"] = np.nonzero(self.window_max(hid[:, :, read, read]) > 1e-4)[0]
                    hidden_max = max(hidden_max, 1.0 if part["need"].size else 0.0)
                    part["hidden"] = hid
                    pyr = [self.concat([wv[:, 5:8], 1.0 - hid], axis=1)]
                    for _ in range(BLOCK.bit_length() - 1):
                        pyr.append(self.box_down2_win(pyr[-1]))
                    part["pyr"] = pyr
                parts.append(part)
                continue
            cw = self.windows(coc_src, F, T * s, ty, tx)
            xw = self.windows(x_src, F, T * s, ty, tx)
            if s == 1:
                X = D(xw)
            else:  # D(x) is shared by all layers of the level: gather it
                X = self.windows(job.level_x(), Wn, T, ty, tx)
            if has_lo:
                r_lo = self._ramp(cw, job.tent[1], job.tent[2])
                alpha, colour = D(r_lo), D(r_lo * xw)
            else:
                alpha, colour = self.zeros(X[:, :1].shape) + 1.0, X + 0.0
            part = {"ty": ty, "tx": tx, "alpha": alpha}
            if has_hi and job.additive:  # the tent share alone: W_i = R_i - R_{i+1}
                r_hi = self._ramp(cw, *job.tent[4:])
                alpha -= D(r_hi)
                colour -= D(r_hi * xw)
            elif has_hi:
                # O_i (nearer, other surfaces) where the own shares apply, else R_{i+1}.
                ok = job.own_ok(ty, tx)
                r_hi = self._ramp(cw, *job.own[4:]) if ok.all() else self._ramp(cw, *job.tent[4:])
                if ok.any() and not ok.all():
                    r_hi[ok] = self._ramp(cw[ok], *job.own[4:])
                hid = self.clip(D(r_hi), 0.0, 1.0)
                hx = D(r_hi * xw)
                colour -= hx
                X -= hx  # content at or behind layer i
                part["need"] = np.nonzero(self.window_max(hid[:, :, read, read]) > 1e-4)[0]
                hidden_max = max(hidden_max, 1.0 if part["need"].size else 0.0)
                part["hidden"] = hid
                pyr = [self.concat([X, 1.0 - hid], axis=1)]
                for _ in range(BLOCK.bit_length() - 1):
                    pyr.append(self.box_down2_win(pyr[-1]))
                part["pyr"] = pyr
            part["colour"] = colour
            parts.append(part)
            del cw, xw, X

        if hidden_max > 1e-4:
            fc = job.coarse_fill([(p["pyr"][-1], p["ty"], p["tx"]) for p in parts])

        # Pass 2: fine push-pull levels, blur and composite, per chunk.
        kerns = job.kernel_stack()
        hy, hx_ = kerns.shape[1] // 2, kerns.shape[2] // 2
        for part in parts:
            ty, tx = part["ty"], part["tx"]
            colour = part["colour"]
            need = part.get("need")
            if need is not None and need.size and hidden_max > 1e-4:
                # The fill is pushed down only in the windows where it shows.
                sel = None if need.size == ty.size else need
                pyr = part["pyr"] if sel is None else [p[sel] for p in part["pyr"]]
                tys, txs = (ty, tx) if sel is None else (ty[sel], tx[sel])
                f = self.upsample2_win(self.windows(fc, Wn // BLOCK + 2, T // BLOCK, tys, txs))[:, :, 2:-2, 2:-2]
                for lev in range(len(pyr) - 2, -1, -1):
                    if lev < len(pyr) - 2:
                        f = self.upsample2_win(f)
                    p = pyr[lev]
                    f *= 1.0 - p[:, 3:]
                    f += p[:, :3]
                if sel is None:
                    f *= part["hidden"]
                    colour += f
                else:
                    f *= part["hidden"][sel]
                    colour[sel] += f
            stack = self.concat([colour, part["alpha"]], axis=1)[:, :, E - hy : E + T + hy, E - hx_ : E + T + hx_]
            k_idx = job.kernel_index(ty, tx)
            if kerns.shape[0] == 1:
                blurred = self.conv_valid_win(stack, kerns[0])
            else:  # a cat's-eye: each window its tile's kernel
                blurred = self.zeros((stack.shape[0], 4, T, T))
                for n in np.unique(k_idx):
                    sel = np.nonzero(k_idx == n)[0]
                    blurred[sel] = self.conv_valid_win(stack[sel], kerns[int(n)])
            a = self.clip(blurred[:, 3:4], 0.0, 1.0)
            tiles = self.get_tiles(acc, T, ty, tx)
            if job.additive:
                add_(tiles, blurred)
            elif job.front:
                t_rest = 1.0 - tiles[:, 3:4]
                add_(tiles[:, :3], t_rest * blurred[:, :3])
                add_(tiles[:, 3:4], t_rest * a)
            else:
                tiles *= 1.0 - a
                add_(tiles[:, :3], blurred[:, :3])
                add_(tiles[:, 3:4], a)
            self.put_tiles(acc, tiles, ty, tx)
