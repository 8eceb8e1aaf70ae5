"""Textures for both scene generators: the one place photos and patterns come from.

Two banks of linear-light photos, each drawn from by its own generator:

* :func:`photo_bank` (torch, (3, h, w) tensors), for the ray-traced scenes
  (:mod:`.layers`): the photos bundled with scikit-image plus, when the caller
  names them, the ``*.jpg`` files of ``photo_dirs``. Folders are an explicit
  argument, never found from the package's own location: the benchmark passes the
  shared data's ``photos`` folder (:func:`refocus.bench.quality.shared_data_dir`),
  tests and training pass what they mean to use. Cached per tuple of folders
  (and per device).
* :func:`texture_pool` (numpy, H x W x 3 arrays), for the layered training pairs
  (:mod:`.pairs`): scikit-image's photos only, a slightly different list, kept as
  it was so that those pairs (and DeblurNet's frozen validation set) do not change.

and the random textures the generators paint their shapes with:
:func:`_scene_texture` (a photo patch or a procedural pattern, torch, drawn with
:class:`_Rand`) and :func:`_pair_texture` (numpy, drawn with a
``numpy.random.Generator``). scikit-image images that are missing from an
installation (or would need a download) are skipped.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from refocus.errors import RefocusError
from refocus.io.color import srgb_to_linear

__all__ = ["photo_bank", "texture_pool"]

#: scikit-image's bundled images (no download needed) in :func:`photo_bank`.
_SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "colorwheel")
_SKIMAGE_GRAY = ("camera", "brick", "grass", "gravel", "moon", "coins", "clock")

#: scikit-image's images in :func:`texture_pool` (the training pairs' list).
_COLOR_IMAGES = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "retina", "colorwheel")
_GRAY_IMAGES = ("camera", "brick", "grass", "gravel", "moon", "text", "page", "clock", "coins")

#: Longest side of a photo from ``photo_dirs`` in :func:`photo_bank`, px.
_PHOTO_MAX_SIDE = 768


# --------------------------------------------------------------------------- colour


def _srgb_to_linear_t(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x <= 0.04045, x / 12.92, ((x.clamp(min=0.04045) + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb_t(x: torch.Tensor) -> torch.Tensor:
    x = x.clamp(0.0, 1.0)
    # exp(log(x) / 2.4) rather than x ** (1 / 2.4): 1.5x faster on the CPU (pow with
    # a fractional exponent is not vectorised), equal to within 1.2e-7.
    hi = x.clamp(min=0.0031308).log_().mul_(1 / 2.4).exp_().mul_(1.055).sub_(0.055)
    return torch.where(x <= 0.0031308, x * 12.92, hi)


class _Rand:
    """Scalar random draws from a CPU torch generator (deterministic on every device)."""

    def __init__(self, gen: torch.Generator):
        self.g = gen

    def u(self, lo: float = 0.0, hi: float = 1.0) -> float:
        return lo + (hi - lo) * float(torch.rand((), generator=self.g))

    def i(self, lo: int, hi: int) -> int:
        """Integer in [lo, hi]."""
        return int(torch.randint(lo, hi + 1, (), generator=self.g))

    def t(self, *shape) -> torch.Tensor:
        return torch.rand(*shape, generator=self.g)

    def colour(self) -> torch.Tensor:
        return _srgb_to_linear_t(self.t(3))


# --------------------------------------------------------------------------- photo banks


def _skimage_images(names: Sequence[str]):
    """(name, image) for each of scikit-image's bundled images that loads."""
    import skimage.data as skd

    for name in names:
        try:
            img = getattr(skd, name)()
        except Exception:  # an image missing from this build, or needing a download
            continue
        yield name, img


def _photo_dirs_key(photo_dirs: Sequence[str | Path] | str | Path) -> tuple[Path, ...]:
    """``photo_dirs`` as a tuple of resolved folders (one path alone is accepted);
    a folder that does not exist is an error."""
    if isinstance(photo_dirs, (str, Path)):
        photo_dirs = (photo_dirs,)
    dirs = tuple(Path(d).expanduser().resolve() for d in photo_dirs)
    for d in dirs:
        if not d.is_dir():
            raise RefocusError(f"photo folder {d} does not exist")
    return dirs


@lru_cache(maxsize=8)
def _photo_bank_cpu(photo_dirs: tuple[Path, ...]) -> tuple[torch.Tensor, ...]:
    """The bank of :func:`photo_bank` on the CPU, for resolved, existing folders."""
    imgs: list[np.ndarray] = []
    try:
        for _, img in _skimage_images(_SKIMAGE_PHOTOS + _SKIMAGE_GRAY):
            a = np.asarray(img)
            if a.ndim == 2:
                a = np.repeat(a[..., None], 3, axis=2)
            imgs.append(a[..., :3])
    except ImportError:  # pragma: no cover - scikit-image is a core dependency
        pass
    from PIL import Image

    for folder in photo_dirs:
        for p in sorted(folder.glob("*.jpg")):
            try:
                with Image.open(p) as im:
                    im = im.convert("RGB")
                    im.thumbnail((_PHOTO_MAX_SIDE, _PHOTO_MAX_SIDE))
                    imgs.append(np.asarray(im))
            except Exception:
                continue
    # Decoded through a 256-entry table: torch's elementwise pow differs in the last
    # bit with the number of threads it runs on, so the bank (and every scene made
    # from it) depended on the thread count when it was first cached (found
    # 2026-12-07: test_scenes_photos failed after test_formulas had generated scenes
    # on one thread).
    lut = _srgb_to_linear_t(torch.arange(256, dtype=torch.float32) / 255.0).numpy()
    out = []
    for a in imgs:
        x = torch.from_numpy(lut[np.asarray(a, dtype=np.uint8)]).permute(2, 0, 1)
        out.append(x.contiguous())
    return tuple(out)


_BANK_ON_DEVICE: dict[tuple[tuple[Path, ...], str], tuple[torch.Tensor, ...]] = {}


def photo_bank(photo_dirs: Sequence[str | Path] | str | Path = (),
               device: str | torch.device = "cpu") -> tuple[torch.Tensor, ...]:
    """Linear-light photo textures, (3, h, w) float32 tensors on ``device``.

    Parameters
    ----------
    photo_dirs:
        Folders of extra photos (a sequence, or one path): their ``*.jpg`` files
        (not recursive), in name order, each reduced to at most 768 px a side. A
        folder that does not exist raises :class:`~refocus.errors.RefocusError`;
        unreadable files are skipped. The default, none, leaves scikit-image's
        bundled photos only.
    device:
        Torch device of the tensors.

    The bank is scikit-image's photos first, then each folder's, in the order given:
    the same folders give the same bank, hence the same scenes. Cached per tuple of
    folders and device.
    """
    dirs = _photo_dirs_key(photo_dirs)
    key = (dirs, str(torch.device(device)))
    if key not in _BANK_ON_DEVICE:
        _BANK_ON_DEVICE[key] = tuple(x.to(device) for x in _photo_bank_cpu(dirs))
    return _BANK_ON_DEVICE[key]


@lru_cache(maxsize=1)
def texture_pool() -> tuple[np.ndarray, ...]:
    """Linear-light float32 H x W x 3 photos bundled with scikit-image (no download),
    the training pairs' textures (:mod:`.pairs`)."""
    pool = []
    for _, img in _skimage_images(_COLOR_IMAGES + _GRAY_IMAGES + ("stereo_motorcycle",)):
        if isinstance(img, tuple):
            pool.extend(srgb_to_linear(np.asarray(a, np.float32) / 255.0) for a in img[:2])
            continue
        img = np.asarray(img, dtype=np.float32)
        img = img / (255.0 if img.max() > 1.5 else 1.0)
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        pool.append(srgb_to_linear(img[..., :3]))
    return tuple(pool)


# --------------------------------------------------------------------------- random textures


def _scene_texture(r: _Rand, Hp: int, Wp: int, gx: torch.Tensor, gy: torch.Tensor, dev: torch.device,
                   photo_prob: float, bank: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """A random (3, Hp, Wp) linear texture: a patch of one of ``bank``'s photos (on
    ``dev``; with probability ``photo_prob``) or a procedural pattern."""
    kind = r.u()
    if bank and kind < photo_prob:
        img = bank[r.i(0, len(bank) - 1)]
        _, h, w = img.shape
        # Scale 0.6..1.6 px of photo per canvas px, limited by the photo's size.
        scale = min(r.u(0.6, 1.6), h / Hp, w / Wp)
        ch, cw = max(8, int(Hp * scale)), max(8, int(Wp * scale))
        y0, x0 = r.i(0, h - ch), r.i(0, w - cw)
        crop = img[:, y0 : y0 + ch, x0 : x0 + cw]
        if r.u() < 0.5:
            crop = crop.flip(-1)
        tex = F.interpolate(crop[None], size=(Hp, Wp), mode="bilinear", align_corners=False, antialias=scale > 1)[0]
        # Vary exposure and tint so that the same photo gives many textures.
        return tex * (r.u(0.5, 1.4) * (0.8 + 0.4 * r.t(3))).to(dev)[:, None, None]
    c0, c1 = r.colour().to(dev), r.colour().to(dev)
    kind = (kind - photo_prob) / max(1e-9, 1 - photo_prob)
    th = r.u(0, math.pi)
    proj = gx * math.cos(th) + gy * math.sin(th)
    if kind < 0.3:  # multi-octave value noise
        m = torch.zeros(Hp, Wp, device=dev)
        amp, tot = 1.0, 0.0
        cells = r.i(3, 8)
        for _ in range(4):
            g = r.t(1, 1, cells + 1, cells + 1).to(dev)
            m += amp * F.interpolate(g, size=(Hp, Wp), mode="bicubic", align_corners=True)[0, 0]
            tot += amp
            amp *= r.u(0.35, 0.7)
            cells *= 2
        m = (m / tot).clamp(0, 1)
        lo, hi = float(m.min()), float(m.max())
        m = (m - lo) / max(hi - lo, 1e-6)
    elif kind < 0.55:  # stripes, period >= 4 px so they stay antialiased
        period = r.u(4.0, 40.0)
        m = 0.5 + 0.5 * torch.sin(2 * math.pi * proj / period + r.u(0, 6.3))
        m = ((m - 0.5) * r.u(1.0, 4.0) + 0.5).clamp(0, 1)
    elif kind < 0.8:  # linear gradient
        lo, hi = float(proj.min()), float(proj.max())
        m = (proj - lo) / max(hi - lo, 1e-6)
    else:  # rotated checker with ~1 px soft edges
        period = r.u(6.0, 48.0)
        proj2 = -gx * math.sin(th) + gy * math.cos(th)
        s = torch.sin(math.pi * proj / period) * torch.sin(math.pi * proj2 / period)
        m = (0.5 + s * period / 2).clamp(0, 1)
    return c0[:, None, None] * (1 - m)[None] + c1[:, None, None] * m[None]


def _pair_texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """A size x size linear texture: a random photo crop (rescaled, flipped, tinted)
    or, one time in six, a procedural pattern with sharp detail."""
    from scipy.ndimage import zoom

    if rng.random() < 1 / 6:
        yy, xx = np.mgrid[:size, :size].astype(np.float32)
        kind = rng.integers(3)
        if kind == 0:  # stripes / gratings
            f = rng.uniform(0.05, 0.6)
            th = rng.uniform(0, np.pi)
            base = 0.5 + 0.5 * np.sign(np.sin(f * (np.cos(th) * xx + np.sin(th) * yy)))
        elif kind == 1:  # checkerboard
            p = int(rng.integers(3, 16))
            base = ((xx // p + yy // p) % 2).astype(np.float32)
        else:  # value noise at a random scale
            n = rng.random((size // 4 + 2, size // 4 + 2)).astype(np.float32)
            base = zoom(n, size / (size // 4 + 2), order=int(rng.integers(0, 2)))[:size, :size]
        c0, c1 = rng.random(3), rng.random(3)
        tex = c0[None, None] + (c1 - c0)[None, None] * base[..., None]
        return srgb_to_linear(np.clip(tex, 0, 1).astype(np.float32))
    pool = texture_pool()
    img = pool[rng.integers(len(pool))]
    # Downscaling sharpens soft photos; upscaling is avoided (it would make blur the target).
    scale = rng.uniform(0.35, 1.0)
    need = int(np.ceil(size / scale))
    h, w = img.shape[:2]
    if need > min(h, w):
        need = min(h, w)
        scale = size / need
    y0 = int(rng.integers(0, h - need + 1))
    x0 = int(rng.integers(0, w - need + 1))
    crop = img[y0 : y0 + need, x0 : x0 + need]
    if need != size:
        from PIL import Image

        chans = [np.asarray(Image.fromarray(crop[..., c], mode="F").resize((size, size), Image.BOX)) for c in range(3)]
        crop = np.stack(chans, axis=2)
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    if rng.random() < 0.5:
        crop = np.transpose(crop, (1, 0, 2))
    tint = rng.uniform(0.6, 1.4, 3).astype(np.float32)
    return np.clip(crop * tint * rng.uniform(0.5, 1.5), 0, 1).astype(np.float32)
