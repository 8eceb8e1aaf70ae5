"""Issue 14 item 3 experiment: can the photo's own lens (K, focal plane) be fitted from its blur?

    python tools/own_lens_fit.py [--deblurnet [--weights FILE] [--textured | --welsch]]   # from the repository root
    python tools/own_lens_fit.py --synthesis [--oracle | --wiener-lens SCALE | --raw | --scales] [--synthetic]

hci-antinous (true disparity) is refocused by the light field at R = 2 and 4 view steps with
the focus at the 5th/50th/95th percentile of its disparity; the true lens is then
K = R * (d_max - d_min) px for the normalised disparity and f = (s - d_min) / (d_max - d_min).
The blur measured per disparity bin (edge re-blur readings, or with --deblurnet DeblurNet's
defocus map, median over edge pixels, or with --textured over the more textured half of the
pixels; --weights: another DeblurNet, e.g. the photo-trained one) is fitted with sqrt((K (d - f))^2 + 0.5^2) by grid
search, residuals capped at 3 px. With --welsch the fit is per pixel instead of per bin: a
bounded (Welsch) loss with a tolerance of 1 px + 25 % of the predicted blur, each disparity bin
weighted equally (so the far wall, most of antinous, does not outvote the rest).
With --synthesis the blur is read by analysis by synthesis instead: per disparity bin, the
disc radius (of a grid, linear light) that best maps an all-in-focus image onto the photo,
over the more textured half of the pixels farther than K px from a depth edge (where no
other depth's blur spills in); the all-in-focus image is DeblurNet's, the light field's
centre view (--oracle: what the method can do with a perfect one), or a Wiener
deconvolution with the true lens scaled by SCALE (--wiener-lens: does the loop pin K down?);
--raw: DeblurNet without its guard; --scales: also read at 1/2 and 1/4 of the size (2 x 2 and
4 x 4 means, the raw net on each), a bin taking the coarser reading where the finer one is
over 3 px per unit of scale (or missing): a blur the net cannot undo at full size is
smaller, and undone, at a coarser one.
With --synthetic, 12 ray-traced development scenes instead of antinous (`synthetic_cases`).
Results: docs/depth.md, "The photo's own lens".
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from refocus.bench.lightfield import FOCUS_PERCENTILES, load_lightfield, refocus_srgb
from refocus.pipeline.sharpness import _edge_readings, _median_per_bin, blur_by_disparity

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
N_BINS = 24


def fit_v(centres: np.ndarray, blur_px: np.ndarray, floor_px: float = 0.5) -> tuple[float, float]:
    ok = np.isfinite(blur_px)
    c, y = centres[ok], blur_px[ok]
    best = (np.inf, np.nan, np.nan)
    for f in np.linspace(-0.3, 1.3, 321):
        a = np.abs(c - f)[None, :]
        ks = np.linspace(0.5, 60, 400)[:, None]
        cost = (np.minimum(np.abs(np.sqrt((ks * a) ** 2 + floor_px**2) - y[None, :]), 3.0) ** 2).sum(axis=1)
        i = int(np.argmin(cost))
        if cost[i] < best[0]:
            best = (float(cost[i]), float(ks[i, 0]), float(f))
    return best[1], best[2]


def fit_v_welsch(dn: np.ndarray, blur_px: np.ndarray, n_bins: int = N_BINS,
                 floor_px: float = 0.5, tol_px: float = 1.0, tol_rel: float = 0.25,
                 max_pixels: int = 20000, seed: int = 0) -> tuple[float, float]:
    """Per-pixel V fit with a bounded loss; (K px per unit of dn, focus in dn).

    A pixel whose reading is off by more than the tolerance (soft texture read as blur, a
    flat region read as sharp) costs at most 1, so no single failure mode moves the vertex.
    """
    rng = np.random.default_rng(seed)
    d, y = dn.ravel(), np.abs(blur_px).ravel()
    take = rng.choice(d.size, min(max_pixels, d.size), replace=False)
    d, y = d[take], y[take]
    idx = np.minimum((d * n_bins).astype(np.int64), n_bins - 1)
    counts = np.bincount(idx, minlength=n_bins).astype(np.float64)
    w = 1.0 / counts[idx]
    best = (np.inf, np.nan, np.nan)
    ks = np.linspace(0.5, 60, 240)[:, None]
    for f in np.linspace(-0.3, 1.3, 161):
        pred = np.sqrt((ks * np.abs(d - f)[None, :]) ** 2 + floor_px**2)
        r = (pred - y[None, :]) / (tol_px + tol_rel * pred)
        cost = ((1.0 - np.exp(-0.5 * r * r)) * w[None, :]).sum(axis=1)
        i = int(np.argmin(cost))
        if cost[i] < best[0]:
            best = (float(cost[i]), float(ks[i, 0]), float(f))
    return best[1], best[2]


SYNTH_RADII_PX = np.array([0, 0.5, 1, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 19, 22, 26, 30], np.float32)


def blur_by_synthesis(photo: np.ndarray, all_in_focus: np.ndarray, dn: np.ndarray, edge_margin_px: float,
                      n_bins: int = N_BINS) -> tuple[np.ndarray, np.ndarray]:
    """Per disparity bin, the disc radius (px, of :data:`SYNTH_RADII_PX`) whose blur of
    ``all_in_focus`` best matches ``photo`` (sRGB), over the more textured half of the
    pixels at least ``edge_margin_px`` from a depth edge. (bin centres, radius; NaN: a
    bin with fewer than 40 such pixels)."""
    from scipy import ndimage
    from scipy.signal import fftconvolve

    from refocus.aperture import ApertureConfig, kernel
    from refocus.io.color import linear_to_srgb, srgb_to_linear

    lin = srgb_to_linear(all_in_focus)
    err = []
    for r in SYNTH_RADII_PX:
        if r == 0:
            b = all_in_focus
        else:
            pad = int(np.ceil(r)) + 1
            lp = np.pad(lin, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
            k = kernel(ApertureConfig(), float(r))
            b = linear_to_srgb(np.stack([fftconvolve(lp[..., c], k, mode="same") for c in range(3)], -1)[pad:-pad, pad:-pad])
        err.append(((np.clip(b, 0, 1) - photo) ** 2).mean(-1))
    err = np.stack(err)
    depth_edge = (np.abs(ndimage.sobel(dn, 0)) + np.abs(ndimage.sobel(dn, 1))) > 0.2
    far = ~ndimage.binary_dilation(depth_edge, iterations=max(int(edge_margin_px), 1))
    g = ndimage.gaussian_gradient_magnitude(all_in_focus.mean(-1), 1.0)
    use = far & (g > np.percentile(g[far], 50))
    idx = np.minimum((dn * n_bins).astype(np.int64), n_bins - 1)
    out = np.full(n_bins, np.nan)
    for b in range(n_bins):
        m = (idx == b) & use
        if m.sum() >= 40:
            out[b] = SYNTH_RADII_PX[int(np.argmin(err[:, m].sum(axis=1)))]
    return (np.arange(n_bins) + 0.5) / n_bins, out


def _mean_down(a: np.ndarray, s: int) -> np.ndarray:
    h, w = a.shape[0] // s * s, a.shape[1] // s * s
    return a[:h, :w].reshape(h // s, s, w // s, s, *a.shape[2:]).mean(axis=(1, 3)).astype(np.float32)


def blur_by_synthesis_scales(photo: np.ndarray, dn: np.ndarray, edge_margin_px: float,
                             scales: tuple[int, ...] = (1, 2, 4), limit_px: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """:func:`blur_by_synthesis` with the raw DeblurNet at several sizes: per bin the
    finest reading of at most ``limit_px`` per unit of scale (px of ``photo``)."""
    from refocus.deblur import deblur

    blur = None
    for s in scales:
        ph, d = _mean_down(photo, s), _mean_down(dn, s)
        centres, b = blur_by_synthesis(ph, deblur(ph, guard=False)[0], d, edge_margin_px / s)
        b = b * s
        if blur is None:
            blur = b
        else:
            take = (~np.isfinite(blur) | (blur > limit_px * s)) & np.isfinite(b)
            blur[take] = b[take]
    return centres, blur


def antinous_cases():
    """(name, photo, normalised disparity, true K, true focus, all-in-focus) of antinous
    refocused at R = 2 and 4 with the focus at three percentiles."""
    lf = load_lightfield(SHARED / "lightfields" / "hci-antinous")
    disp = lf.disparity
    lo, hi = float(disp.min()), float(disp.max())
    dn = (disp - lo) / (hi - lo)
    for radius in (2, 4):
        for name, pct in FOCUS_PERCENTILES.items():
            s = float(np.percentile(disp, pct))
            yield f"R={radius} {name:6s}", refocus_srgb(lf, s, radius), dn, radius * (hi - lo), (s - lo) / (hi - lo), lf.centre_view_srgb()


def synthetic_cases():
    """The same from 12 ray-traced scenes (`refocus.bench.scenes.make_scene`, seeds
    777000-777011, 384 px, 8 planes, textures from the EXIF corpus, largest CoC
    6/10/16/24 px, disc / 6 blades / 5 curved blades): a development set that is not
    antinous, so that what is chosen here is checked there."""
    from refocus.aperture import ApertureConfig
    from refocus.bench.scenes import make_scene

    apertures = [ApertureConfig(), ApertureConfig(shape="polygon", blades=6), ApertureConfig(shape="polygon", blades=5, curvature=0.5)]
    for n in range(12):
        sc = make_scene(777000 + n, (384, 384), max_coc_px=(6.0, 10.0, 16.0, 24.0)[n % 4], aperture=apertures[n // 4],
                        n_planes=8, photo_dirs=[SHARED / "photos" / "exif-corpus"])
        yield f"seed {777000 + n}", sc.lens, sc.disparity, float(sc.K), float(sc.focus_disparity), sc.all_in_focus


def main() -> None:
    ok_count = total = 0
    for name, img, dn, k_true, f_true, oracle in (synthetic_cases() if "--synthetic" in sys.argv else antinous_cases()):
        if "--synthesis" in sys.argv:
            from refocus.deblur import deblur
            from refocus.deblur.classical import wiener_deblur

            if "--oracle" in sys.argv:
                aif = oracle
            elif "--wiener-lens" in sys.argv:
                scale = float(sys.argv[sys.argv.index("--wiener-lens") + 1])
                aif = wiener_deblur(img, np.abs(scale * k_true * (dn - f_true)), nsr=0.01)
            elif "--scales" in sys.argv:
                centres, blur = blur_by_synthesis_scales(img, dn, k_true)
                aif = None
            else:
                aif = deblur(img, guard="--raw" not in sys.argv)[0]
            if aif is not None:
                centres, blur = blur_by_synthesis(img, aif, dn, k_true)
            k, f = fit_v(centres, blur)
        else:
            centres, blur = blur_by_disparity(img, dn, N_BINS)
            if "--deblurnet" in sys.argv:
                from refocus.deblur import deblur

                weights = sys.argv[sys.argv.index("--weights") + 1] if "--weights" in sys.argv else None
                _, defocus = deblur(img, weights=weights, guard=False)
                edges, _ = _edge_readings(img)
                if "--textured" in sys.argv:
                    from scipy import ndimage

                    g = ndimage.gaussian_gradient_magnitude(img.mean(axis=2), 1.0)
                    edges = (g > np.median(g)).ravel()
                idx = np.minimum((dn * N_BINS).astype(np.int64), N_BINS - 1)
                blur = _median_per_bin(idx.ravel()[edges], np.abs(defocus).ravel()[edges], N_BINS)
            if "--welsch" in sys.argv and "--deblurnet" in sys.argv:
                k, f = fit_v_welsch(dn, defocus)
            else:
                k, f = fit_v(centres, blur)
        ok = abs(k / k_true - 1) <= 0.15 and abs(f - f_true) <= 0.05
        ok_count, total = ok_count + ok, total + 1
        print(f"{name} true K {k_true:5.2f} f {f_true:.3f} | fit K {k:5.2f} ({100 * (k / k_true - 1):+.0f} %)"
              f" f {f:.3f} ({100 * (f - f_true):+.1f} % of the range){'  within the bar' if ok else ''}", flush=True)
    print(f"within the bar (K 15 %, focus 5 % of the range): {ok_count} of {total}")


if __name__ == "__main__":
    main()
