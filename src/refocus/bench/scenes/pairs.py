"""Layered training pairs for DeblurNet (numpy): "dead leaves" scenes with thin-lens blur.

The generator the shipped DeblurNet was trained on (``training/make_dataset.py``)
and validated on (:func:`frozen_pair_set`); formerly ``refocus.deblur.synth``, kept
bit for bit. The ray-traced generator (:mod:`.scenes`) is the benchmark's ground
truth; it also makes training pairs with highlights (``generate_pairs``).

A scene is a stack of planar layers, far to near, each a shape (ellipse, polygon or
blob) textured with a patch of a real photo (:func:`.textures.texture_pool`:
``skimage.data``) or a procedural texture, at its own disparity; the farthest layer
covers the frame and may be slanted (its disparity a linear ramp). The defocused
photo is rendered exactly for this layered model: every layer is blurred by the
aperture kernel of its own CoC radius (a slanted layer is cut into CoC slices 0.5 px
apart with linear "tent" weights) and composited back to front with the *over*
operator on blurred colour and blurred alpha. Because each layer's texture is known
under the nearer layers, the background that a blurred foreground edge reveals is
the true one (partial occlusion), as with a real lens.

All radiometry is in linear light. ``make_pair`` returns the clean linear pair;
:func:`degrade` then turns the blurred input into something that looks like a
camera JPEG (exposure, tone curve, Poisson-Gaussian noise, demosaicing softness,
JPEG) while the target only gets the same exposure and tone curve.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from refocus.aperture import ApertureConfig, kernel
from refocus.bench.scenes.textures import _pair_texture
from refocus.io.color import linear_to_srgb
from refocus.render import signed_coc_px

__all__ = ["MAX_COC_PX", "Pair", "degrade", "frozen_pair_set", "make_pair"]

#: Largest CoC radius (px) that ``make_pair`` draws; also the render margin.
MAX_COC_PX = 12.0


def _shape_mask(rng: np.random.Generator, size: int) -> np.ndarray:
    """Anti-aliased alpha (0..1) of a random ellipse, polygon or blob."""
    from scipy.ndimage import gaussian_filter

    ss = 2  # supersampling for smooth edges
    n = size * ss
    yy, xx = (np.mgrid[:n, :n].astype(np.float32) + 0.5) / ss
    # Power-law sizes as in dead-leaves models: many small leaves, a few big ones.
    r = float(np.exp(rng.uniform(np.log(6), np.log(0.45 * size))))
    cx, cy = rng.uniform(-0.1, 1.1, 2) * size
    kind = rng.integers(3)
    if kind == 0:
        a, b = r, r * rng.uniform(0.4, 1.0)
        th = rng.uniform(0, np.pi)
        dx, dy = xx - cx, yy - cy
        u = (np.cos(th) * dx + np.sin(th) * dy) / a
        v = (-np.sin(th) * dx + np.cos(th) * dy) / b
        m = (u * u + v * v) <= 1.0
    elif kind == 1:
        k = int(rng.integers(3, 8))
        ang = np.sort(rng.uniform(0, 2 * np.pi, k))
        rad = r * rng.uniform(0.6, 1.0, k)
        px, py = cx + rad * np.cos(ang), cy + rad * np.sin(ang)
        from skimage.draw import polygon

        m = np.zeros((n, n), bool)
        rr, cc = polygon(py * ss, px * ss, (n, n))
        m[rr, cc] = True
    else:
        noise = gaussian_filter(rng.standard_normal((n, n)).astype(np.float32), sigma=r * ss * 0.35)
        noise /= noise.std() + 1e-8
        m = noise > rng.uniform(0.3, 1.2)
    m = m.astype(np.float32).reshape(size, ss, size, ss).mean(axis=(1, 3))
    return m


@lru_cache(maxsize=4096)
def _kernel_fft(radius_q: int, front: bool, blades: int, rot_q: int, n: int) -> np.ndarray:
    """rfft2 of the aperture kernel of radius ``radius_q / 8`` px, centred at (0, 0)."""
    radius = radius_q / 8.0
    cfg = ApertureConfig() if blades == 0 else ApertureConfig(shape="polygon", blades=blades, rotation_deg=rot_q * 5.0)
    k = kernel(cfg, radius, front=front).astype(np.float32)
    kh, kw = k.shape
    pad = np.zeros((n, n), np.float32)
    pad[:kh, :kw] = k
    pad = np.roll(pad, (-(kh // 2), -(kw // 2)), axis=(0, 1))
    return np.fft.rfft2(pad)


def _blur(x: np.ndarray, coc_px: float, blades: int, rot_q: int) -> np.ndarray:
    """Circular convolution of C x n x n planes with the aperture kernel of |coc_px|."""
    r = abs(coc_px)
    if r < 0.25:
        return x
    kf = _kernel_fft(int(round(r * 8)), coc_px > 0, blades, rot_q, x.shape[-1])
    return np.fft.irfft2(np.fft.rfft2(x) * kf, s=x.shape[-2:]).astype(np.float32)


@dataclass
class Pair:
    """One training pair, linear light, float32.

    Attributes
    ----------
    sharp: H x W x 3 all-in-focus image.
    blurred: H x W x 3 defocused image (before :func:`degrade`).
    defocus_px: H x W unsigned CoC radius (px) of the visible surface in the sharp image.
    disparity: H x W disparity of the visible surface (larger = nearer, in [0, 1]).
    """

    sharp: np.ndarray
    blurred: np.ndarray
    defocus_px: np.ndarray
    disparity: np.ndarray


def make_pair(rng: np.random.Generator, size: int = 128, max_coc_px: float = MAX_COC_PX) -> Pair:
    """Draw one random layered scene and render it sharp and defocused.

    Parameters
    ----------
    rng: random generator (the only source of randomness: same seed, same pair).
    size: output side in px.
    max_coc_px: largest CoC radius in px (blur strength K is drawn up to it).
    """
    margin = int(np.ceil(max_coc_px)) + 2
    n = size + 2 * margin
    n_layers = int(rng.integers(2, 10))
    disp = np.sort(rng.uniform(0, 1, n_layers)).astype(np.float32)
    # Strength: a quarter of the scenes almost sharp, so that sharp input stays sharp.
    k_px = rng.uniform(0, 1.0) if rng.random() < 0.2 else rng.uniform(1.0, max_coc_px)
    focus = float(disp[rng.integers(n_layers)]) if rng.random() < 0.6 else float(rng.uniform(0, 1))
    blades = 0 if rng.random() < 0.8 else int(rng.integers(5, 10))
    rot_q = int(rng.integers(0, 72))

    out = np.zeros((3, n, n), np.float32)
    sharp = np.zeros((3, n, n), np.float32)
    disp_map = np.zeros((n, n), np.float32)
    yy, xx = np.mgrid[:n, :n].astype(np.float32) / n
    for i in range(n_layers):
        tex = _pair_texture(rng, n).transpose(2, 0, 1)
        alpha = np.ones((n, n), np.float32) if i == 0 else _shape_mask(rng, n)
        if i == 0 and rng.random() < 0.6:
            # Slanted background: disparity ramps over the frame (kept below the next layer).
            th = rng.uniform(0, 2 * np.pi)
            ramp = np.cos(th) * (xx - 0.5) + np.sin(th) * (yy - 0.5)
            span = rng.uniform(0.05, 0.5)
            d_layer = np.clip(disp[0] + span * ramp, 0, 1).astype(np.float32)
        else:
            d_layer = np.full((n, n), disp[i], np.float32)
        coc = signed_coc_px(d_layer, focus, k_px)
        lo, hi = float(coc.min()), float(coc.max())
        if hi - lo < 0.25:
            slices = [(0.5 * (lo + hi), np.ones_like(coc))]
        else:
            levels = np.arange(np.floor(lo / 0.5) * 0.5, hi + 0.5, 0.5)
            t = np.clip(1.0 - np.abs(coc[None] - levels[:, None, None]) / 0.5, 0, 1)
            slices = [(float(c), w) for c, w in zip(levels, t) if w.max() > 1e-4]
        premult = np.concatenate([tex * alpha, alpha[None]], axis=0)
        acc = np.zeros((4, n, n), np.float32)
        for c, w in slices:
            acc += _blur(premult * w, c, blades, rot_q)
        a = np.clip(acc[3], 0, 1)
        out = acc[:3] + (1 - a) * out
        sharp = tex * alpha + (1 - alpha) * sharp
        disp_map = d_layer * alpha + (1 - alpha) * disp_map
    sl = slice(margin, margin + size)
    sharp_c = sharp[:, sl, sl].transpose(1, 2, 0)
    blur_c = out[:, sl, sl].transpose(1, 2, 0)
    d_c = disp_map[sl, sl]
    return Pair(
        sharp=np.ascontiguousarray(np.clip(sharp_c, 0, 1), dtype=np.float32),
        blurred=np.ascontiguousarray(np.clip(blur_c, 0, 1), dtype=np.float32),
        defocus_px=np.abs(signed_coc_px(d_c, focus, k_px)).astype(np.float32),
        disparity=d_c.astype(np.float32),
    )


def degrade(
    rng: np.random.Generator,
    blurred_linear: np.ndarray,
    sharp_linear: np.ndarray,
    strength: float = 1.0,
    soft_prob: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Make a camera-like sRGB input from a linear blurred image, and its sRGB target.

    Exposure and a random tone curve apply to both (the network is not asked to
    guess them); Poisson-Gaussian sensor noise, demosaicing-like softness and JPEG
    compression only to the input. ``strength`` in [0, 1] scales the degradations
    (0: clean sRGB encoding of both). ``soft_prob``: how often the demosaicing-like
    softness is applied (it teaches the network that crisp-looking edges may still
    need sharpening; see the guard in :mod:`refocus.deblur.guard`).

    Returns
    -------
    (input_srgb, target_srgb), float32 H x W x 3 in [0, 1].
    """
    from scipy.ndimage import gaussian_filter

    exposure = float(np.exp(rng.uniform(-0.5, 0.4) * strength))
    gamma = float(np.exp(rng.uniform(-0.15, 0.15) * strength))

    def tone(x):
        return np.clip(linear_to_srgb(np.clip(x * exposure, 0, 1)) ** gamma, 0, 1).astype(np.float32)

    x = np.clip(blurred_linear * exposure, 0, 1)
    if strength > 0 and rng.random() < 0.8:
        # Poisson-Gaussian: shot noise scale a (signal-dependent) plus read noise b.
        a = float(np.exp(rng.uniform(np.log(1e-4), np.log(8e-3)))) * strength
        b = float(np.exp(rng.uniform(np.log(1e-4), np.log(3e-3)))) * strength
        sigma = np.sqrt(a * x + b * b)
        x = np.clip(x + sigma * rng.standard_normal(x.shape).astype(np.float32), 0, 1)
    if strength > 0 and rng.random() < soft_prob:
        x = gaussian_filter(x, sigma=(rng.uniform(0.2, 0.6) * strength, rng.uniform(0.2, 0.6) * strength, 0))
    inp = np.clip(linear_to_srgb(x) ** gamma, 0, 1).astype(np.float32)
    if strength > 0 and rng.random() < 0.6:
        from PIL import Image

        q = int(rng.integers(max(30, int(95 - 60 * strength)), 96))
        buf = io.BytesIO()
        Image.fromarray((inp * 255 + 0.5).astype(np.uint8)).save(buf, format="JPEG", quality=q)
        inp = np.asarray(Image.open(io.BytesIO(buf.getvalue())), dtype=np.float32) / 255.0
    return inp.astype(np.float32), tone(sharp_linear)


def frozen_pair_set(n: int = 8, size: int = 96, seed: int = 20240601, degraded: bool = True):
    """A deterministic small synthetic test set: list of (input_srgb, target_srgb, defocus_px).

    DeblurNet's validation set (``training/train_deblurnet.py``) and the
    ``synthetic-ours`` cases of ``training/eval_deblurnet.py``; formerly
    ``refocus.deblur.synth.frozen_test_set`` (renamed: the ray-traced generator's
    :func:`~refocus.bench.scenes.frozen_test_set` is the benchmark's).

    The seed is disjoint from training (which uses seeds < 10**6 per sample index
    offset), so these scenes are never trained on.
    """
    items = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        p = make_pair(rng, size)
        if degraded:
            inp, tgt = degrade(rng, p.blurred, p.sharp, strength=0.5)
        else:
            inp, tgt = linear_to_srgb(p.blurred), linear_to_srgb(p.sharp)
        items.append((inp, tgt, p.defocus_px))
    return items
