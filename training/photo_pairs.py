"""DeblurNet training pairs that look like real photos (issue 15).

Each pair is built in four steps, all in linear light except the camera's own:

1. **Content**: a crop of a real photograph (`../shared/data/photos/exif-corpus`, 40
   cameras, plus scikit-image's colour photos), downscaled from its capture size so
   that its own noise, JPEG and softness mostly average away. Every fifth corpus
   photo (by sorted name) is held out for validation (:func:`build_pool`).
2. **Depth** (disparity in [0, 1], larger = nearer): one of
   - a tilted plane, possibly curved (ground, walls, tables);
   - the true Middlebury "Motorcycle" disparity (scikit-image), with its own left image
     as content half of the time (real occlusion geometry matched to its photo);
   - a far plane with a textureless sky above a wavy horizon;
   plus 0-3 occluders: shapes textured with another photo, with soft mattes
   (0.3-2 px), each nearer than what it covers and slightly tilted.
3. **Blur** by the project's own renderer (:func:`refocus.render.render_linear`, as the
   paper simulates with BokehMe): a signed CoC ``K * (d - focus)`` of up to 30 px,
   with discs, 5-9-blade polygons (straight or curved), soft-edged discs, bright rims
   and cat's-eye; clipped highlights boosted before the blur, as a real lens sees them.
4. **Camera**, after the blur as in a camera: optionally the lens's own softness at
   focus (Gaussian, 0.2-1 px, 70 % of pairs; ``optics_softness``), exposure, Bayer mosaic with
   Poisson-Gaussian noise and bilinear demosaicing, ISP denoising and sharpening, a
   tone curve, then JPEG. The *target* goes through the same camera without noise or
   JPEG: the network learns to undo defocus, noise and compression, not the camera's
   own character (a crisp in-focus edge stays as the camera drew it; the previous
   training set taught the network to sharpen every edge, see docs/deblurnet.md).

The defocus target is the *observable* CoC radius: |CoC| where the blur changed the
image (local mean absolute change above ~1/255), fading to 0 on flat regions where
no blur can be seen. The old map read 3-4 px on flat regions where the true CoC was
0.2 px (issue 15 item 3); a blur that cannot be seen needs no deblurring either.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

#: Largest |CoC| radius (px) drawn.
MAX_COC_PX = 30.0


# --------------------------------------------------------------------------- pool

def build_pool(corpus_dir: Path, out_dir: Path, long_side_px: int = 1024, holdout_every: int = 5) -> dict:
    """Write the photo pool: ``out_dir/{train,holdout}/*.jpg`` (q95, long side at most
    ``long_side_px``) and ``out_dir/motorcycle.npz`` (Middlebury image + disparity).

    Corpus photos are sorted by name; every ``holdout_every``-th goes to ``holdout``.
    scikit-image's photos are training content only.
    """
    from PIL import Image, ImageOps

    out_dir = Path(out_dir)
    for sub in ("train", "holdout"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    counts = {"train": 0, "holdout": 0}

    def save(img: Image.Image, sub: str, name: str) -> None:
        img = ImageOps.exif_transpose(img).convert("RGB")
        s = long_side_px / max(img.size)
        if s < 1:
            img = img.resize((round(img.width * s), round(img.height * s)), Image.Resampling.LANCZOS)
        img.save(out_dir / sub / f"{name}.jpg", quality=95)
        counts[sub] += 1

    files = sorted(Path(corpus_dir).glob("*.jpg"))
    for i, f in enumerate(files):
        try:
            save(Image.open(f), "holdout" if i % holdout_every == holdout_every - 1 else "train", f.stem)
        except OSError as exc:  # the corpus holds a truncated file: content, not a test of the reader
            print(f"skipped {f.name}: {exc}")
    import skimage.data as skd

    for name in ("astronaut", "chelsea", "coffee", "rocket"):
        save(Image.fromarray(getattr(skd, name)()), "train", f"skimage-{name}")
    left, _right, disp = skd.stereo_motorcycle()
    np.savez_compressed(out_dir / "motorcycle.npz", image=left, disparity=disp.astype(np.float16))
    return counts


@dataclass
class Pool:
    photos: list[np.ndarray]  # uint8 H x W x 3 sRGB
    moto_image: np.ndarray  # uint8
    moto_disparity: np.ndarray  # float32 px, Middlebury (inf/0 where unknown filled)


def load_pool(pool_dir: Path, split: str = "train") -> Pool:
    from PIL import Image

    pool_dir = Path(pool_dir)
    photos = [np.asarray(Image.open(f).convert("RGB")) for f in sorted((pool_dir / split).glob("*.jpg"))]
    if not photos:
        raise SystemExit(f"no photos in {pool_dir / split}: run training/photo_pairs.py --build-pool first")
    z = np.load(pool_dir / "motorcycle.npz")
    d = z["disparity"].astype(np.float32)
    bad = ~np.isfinite(d) | (d <= 0)
    if bad.any():
        from scipy.ndimage import distance_transform_edt

        idx = distance_transform_edt(bad, return_distances=False, return_indices=True)
        d = d[tuple(idx)]
    return Pool(photos, z["image"], d)


# --------------------------------------------------------------------------- scene

def _srgb_to_linear(x):
    from refocus.io.color import srgb_to_linear

    return srgb_to_linear(x)


def _linear_to_srgb(x):
    from refocus.io.color import linear_to_srgb

    return linear_to_srgb(x)


def _photo_crop(rng, photos: list[np.ndarray], size: int) -> np.ndarray:
    """A size x size linear crop of a random photo, downscaled by 1-2.5x further."""
    from PIL import Image

    for _ in range(20):
        p = photos[int(rng.integers(len(photos)))]
        scale = float(rng.uniform(1.0, 2.5))
        side = int(size * scale)
        if min(p.shape[:2]) < side:
            scale = min(p.shape[:2]) / size
            side = min(p.shape[:2])
            if scale < 1.0:
                continue
        y0 = int(rng.integers(0, p.shape[0] - side + 1))
        x0 = int(rng.integers(0, p.shape[1] - side + 1))
        crop = p[y0:y0 + side, x0:x0 + side]
        if side != size:
            crop = np.asarray(Image.fromarray(crop).resize((size, size), Image.Resampling.BICUBIC))
        crop = crop.astype(np.float32) / 255.0
        k = int(rng.integers(4))
        crop = np.rot90(crop, k) if rng.random() < 0.25 else crop  # mostly upright: sky above
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        return _srgb_to_linear(np.clip(np.ascontiguousarray(crop), 0, 1)).astype(np.float32)
    raise RuntimeError("no photo in the pool is large enough")


def _plane(rng, size: int) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size].astype(np.float32) / size
    th = rng.uniform(0, 2 * np.pi)
    d = np.cos(th) * xx + np.sin(th) * yy
    if rng.random() < 0.3:  # a curved surface
        d = d + rng.uniform(-1, 1) * (xx - 0.5) ** 2 + rng.uniform(-1, 1) * (yy - 0.5) ** 2
    if rng.random() < 0.25:  # a wall facing the camera
        d = d * 0.05
    return d.astype(np.float32)


def _motorcycle(rng, pool: Pool, size: int) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    h, w = pool.moto_disparity.shape
    side = int(min(h, w) * rng.uniform(0.25, 1.0))
    y0 = int(rng.integers(0, h - side + 1))
    x0 = int(rng.integers(0, w - side + 1))
    d = pool.moto_disparity[y0:y0 + side, x0:x0 + side]
    img = pool.moto_image[y0:y0 + side, x0:x0 + side]
    d = np.asarray(Image.fromarray(d).resize((size, size), Image.Resampling.NEAREST), np.float32)
    img = np.asarray(Image.fromarray(img).resize((size, size), Image.Resampling.LANCZOS), np.float32) / 255.0
    if rng.random() < 0.5:
        d, img = d[:, ::-1], img[:, ::-1]
    return np.ascontiguousarray(d), _srgb_to_linear(np.clip(np.ascontiguousarray(img), 0, 1)).astype(np.float32)


def _shape_alpha(rng, size: int) -> np.ndarray:
    """A soft matte (0..1) of an ellipse, polygon or blob somewhere in the frame."""
    from scipy.ndimage import gaussian_filter, zoom

    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    cy, cx = rng.uniform(-0.1, 1.1, 2) * size
    r = rng.uniform(0.12, 0.5) * size
    kind = int(rng.integers(3))
    if kind == 0:
        th = rng.uniform(0, np.pi)
        a, b = r, r * rng.uniform(0.3, 1.0)
        u = (xx - cx) * np.cos(th) + (yy - cy) * np.sin(th)
        v = -(xx - cx) * np.sin(th) + (yy - cy) * np.cos(th)
        m = (u / a) ** 2 + (v / b) ** 2 <= 1
    elif kind == 1:
        n = int(rng.integers(3, 8))
        ang = np.sort(rng.uniform(0, 2 * np.pi, n))
        rad = r * rng.uniform(0.5, 1.0, n)
        px, py = cx + rad * np.cos(ang), cy + rad * np.sin(ang)
        from skimage.draw import polygon

        m = np.zeros((size, size), bool)
        rr, cc = polygon(py, px, (size, size))
        m[rr, cc] = True
    else:
        n = rng.random((8, 8)).astype(np.float32)
        f = zoom(n, size / 8, order=3)[:size, :size]
        m = f > rng.uniform(0.55, 0.7)
    sigma = float(rng.uniform(0.3, 2.0))
    return np.clip(gaussian_filter(m.astype(np.float32), sigma), 0, 1)


def _sky(rng, img: np.ndarray, disp: np.ndarray) -> None:
    """Replace the part above a wavy horizon by a smooth sky at the farthest disparity (in place)."""
    from scipy.ndimage import gaussian_filter

    size = img.shape[0]
    x = np.arange(size, dtype=np.float32)
    horizon = size * rng.uniform(0.15, 0.6) + size * 0.05 * np.sin(x / size * rng.uniform(2, 12) + rng.uniform(0, 6))
    yy = np.arange(size, dtype=np.float32)[:, None]
    alpha = np.clip(horizon[None, :] - yy + 0.5, 0, 1)
    alpha = gaussian_filter(alpha, float(rng.uniform(0.3, 1.5)))
    top = np.array([rng.uniform(0.2, 0.6), rng.uniform(0.35, 0.75), rng.uniform(0.6, 1.0)], np.float32)
    if rng.random() < 0.3:  # overcast: grey
        top = np.full(3, rng.uniform(0.5, 1.0), np.float32)
    bottom = np.clip(top * rng.uniform(1.0, 1.4), 0, 1)
    t = (yy / size)[..., None]
    sky = _srgb_to_linear(top * (1 - t) + bottom * t) * np.ones((1, size, 1), np.float32)
    sky = sky + 0.003 * gaussian_filter(rng.standard_normal((size, size, 3)).astype(np.float32), (6, 6, 0))
    img[:] = alpha[..., None] * np.clip(sky, 0, 1) + (1 - alpha[..., None]) * img
    dmin = float(disp.min()) - 0.05 * (float(disp.max()) - float(disp.min()) + 1e-3)
    disp[:] = np.where(alpha > 0.5, dmin, disp)


def make_scene(rng: np.random.Generator, pool: Pool, size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """An all-in-focus linear image and its disparity (normalised to [0, 1])."""
    u = rng.random()
    if u < 0.25:
        disp, moto_img = _motorcycle(rng, pool, size)
        img = moto_img if rng.random() < 0.5 else _photo_crop(rng, pool.photos, size)
    else:
        img = _photo_crop(rng, pool.photos, size)
        disp = _plane(rng, size)
    if u >= 0.25 and rng.random() < 0.25:
        _sky(rng, img, disp)
    span = float(disp.max() - disp.min()) + 1e-3
    for _ in range(int(rng.choice([0, 1, 1, 2, 3]))):
        a = _shape_alpha(rng, size)
        inside = a > 0.5
        if not inside.any():
            continue
        fg = _photo_crop(rng, pool.photos, size)
        front = float(disp[inside].max()) + span * rng.uniform(0.05, 0.8)
        fd = front + span * 0.1 * _plane(rng, size)
        img = a[..., None] * fg + (1 - a[..., None]) * img
        disp = np.where(inside, fd, disp)
        span = float(disp.max() - disp.min()) + 1e-3
    lo, hi = float(disp.min()), float(disp.max())
    disp = (disp - lo) / max(hi - lo, 1e-6)
    return img.astype(np.float32), disp.astype(np.float32)


# --------------------------------------------------------------------------- blur

def _aperture(rng):
    from refocus.aperture import ApertureConfig

    u = rng.random()
    if u < 0.45:
        return ApertureConfig(shape="disc", cats_eye=float(rng.uniform(0.2, 0.7)) if rng.random() < 0.2 else 0.0)
    if u < 0.7:
        return ApertureConfig(shape="polygon", blades=int(rng.integers(5, 10)), rotation_deg=float(rng.uniform(0, 360)),
                              curvature=float(rng.choice([0.0, rng.uniform(0.2, 0.8)])))
    # soft-edged disc (apodised lens) or bright rim (spherical aberration)
    yy, xx = np.mgrid[-32:33, -32:33].astype(np.float32) / 32
    r = np.sqrt(xx ** 2 + yy ** 2)
    if u < 0.85:
        soft = float(rng.uniform(0.1, 0.5))
        img = np.clip((1 - r) / soft, 0, 1)
    else:
        rim = float(rng.uniform(0.3, 1.5))
        img = (r <= 1) * (1 + rim * r ** 4)
    return ApertureConfig(shape="custom", image=img.astype(np.float32))


def _draw_strength(rng) -> float:
    """K (px over the normalised disparity range): small blur as often as large."""
    u = rng.random()
    if u < 0.25:
        return float(rng.uniform(0.0, 3.0))
    if u < 0.7:
        return float(rng.uniform(3.0, 20.0))
    return float(rng.uniform(20.0, 50.0))


def blur_scene(rng, img_lin: np.ndarray, disp: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render the scene through a random lens: (blurred linear image, signed CoC px, scene).

    ``scene`` is the linear radiance that was blurred, highlights boosted above 1. Both
    stay unclipped: the camera scales them by its exposure and then clips, the same way
    for the input (blurred) and the target (scene).
    """
    from refocus.render import RenderConfig, render_linear

    k = _draw_strength(rng)
    if rng.random() < 0.6:  # focus on something in the scene
        focus = float(disp.flat[int(rng.integers(disp.size))])
    else:
        focus = float(rng.uniform(-0.1, 1.1))
    coc = np.clip(k * (disp - focus), -MAX_COC_PX, MAX_COC_PX).astype(np.float32)
    # Clipped highlights were brighter than 1: a lens spreads their true energy.
    lum = img_lin @ np.array([0.2126, 0.7152, 0.0722], np.float32)
    boost = 1.0 + rng.uniform(0, 4) * np.clip((lum - 0.8) / 0.2, 0, 1) ** 2 if rng.random() < 0.6 else 1.0
    src = img_lin * (boost[..., None] if isinstance(boost, np.ndarray) else boost)
    cfg = RenderConfig(aperture=_aperture(rng), highlight_gain=0.0, quality="high" if rng.random() < 0.5 else "balanced")
    out = render_linear(src, coc, cfg)
    # Not clipped here: the camera clips after its exposure, as it does for the target.
    return np.maximum(np.asarray(out, np.float32), 0), coc, src.astype(np.float32)


# --------------------------------------------------------------------------- camera

def _mosaic_demosaic(x: np.ndarray, noise=None) -> np.ndarray:
    """RGGB Bayer sampling (noise added to the photosites) and bilinear demosaicing."""
    from scipy.ndimage import convolve

    h, w = x.shape[:2]
    masks = np.zeros((h, w, 3), np.float32)
    masks[0::2, 0::2, 0] = 1
    masks[0::2, 1::2, 1] = 1
    masks[1::2, 0::2, 1] = 1
    masks[1::2, 1::2, 2] = 1
    raw = (x * masks).sum(2)
    if noise is not None:
        raw = noise(raw)
    k_g = np.array([[0, 1, 0], [1, 4, 1], [0, 1, 0]], np.float32) / 4
    k_rb = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], np.float32) / 4
    out = np.empty_like(x)
    for c, k in ((0, k_rb), (1, k_g), (2, k_rb)):
        out[..., c] = convolve(raw * masks[..., c], k, mode="mirror")
    return out


@dataclass(frozen=True)
class Camera:
    optics_sigma_px: float  # the lens's own softness at best focus (and the OLPF): in the target too
    exposure: float
    gamma: float
    bayer: bool
    shot: float  # Poisson-Gaussian: variance = shot * x + read**2
    read: float
    denoise_sigma_px: float
    sharpen_amount: float
    sharpen_sigma_px: float
    jpeg_quality: int  # 0: none

    @classmethod
    def draw(cls, rng, optics_softness: bool = False) -> "Camera":
        """A random camera. ``optics_softness`` (not used for the shipped weights, see
        docs/deblurnet.md) gives 70 % of cameras a soft lens at focus."""
        clean = rng.random() < 0.1
        fields = dict(
            exposure=float(np.exp(rng.uniform(-0.4, 0.3))),
            gamma=float(np.exp(rng.uniform(-0.12, 0.12))),
            bayer=bool(rng.random() < 0.7),
            shot=0.0 if clean else float(np.exp(rng.uniform(np.log(2e-5), np.log(5e-3)))),
            read=0.0 if clean else float(np.exp(rng.uniform(np.log(2e-4), np.log(3e-3)))),
            denoise_sigma_px=float(rng.uniform(0.3, 0.9)) if rng.random() < 0.35 else 0.0,
            sharpen_amount=float(rng.uniform(0.2, 1.0)) if rng.random() < 0.5 else 0.0,
            sharpen_sigma_px=float(rng.uniform(0.6, 1.5)),
            jpeg_quality=0 if (clean or rng.random() < 0.25) else int(rng.integers(55, 98)),
        )
        # Drawn last, and only when asked: with it off, the stream of random numbers is
        # the one the shipped weights were trained on.
        soft = float(rng.uniform(0.2, 1.0)) if optics_softness and rng.random() < 0.7 else 0.0
        return cls(optics_sigma_px=soft, **fields)

    def __call__(self, linear: np.ndarray, rng=None) -> np.ndarray:
        """The camera's sRGB photo of a linear scene; with ``rng``, noise and JPEG too."""
        from scipy.ndimage import gaussian_filter

        x = np.clip(linear * self.exposure, 0, 1).astype(np.float32)
        if self.optics_sigma_px > 0:
            # A camera is never perfectly sharp at focus. Without this the network took
            # every soft edge for defocus and sharpened real in-focus captures (Lytro:
            # -4.5 dB, 2026-12-04); with it, a blur a sharp lens would also show is kept.
            x = gaussian_filter(x, (self.optics_sigma_px, self.optics_sigma_px, 0))

        def noise(v):
            if rng is None or (self.shot == 0 and self.read == 0):
                return v
            sd = np.sqrt(self.shot * np.clip(v, 0, None) + self.read ** 2)
            return v + sd * rng.standard_normal(v.shape).astype(np.float32)

        x = _mosaic_demosaic(x, noise) if self.bayer else noise(x)
        if self.denoise_sigma_px > 0:
            x = 0.5 * x + 0.5 * gaussian_filter(x, (self.denoise_sigma_px, self.denoise_sigma_px, 0))
        y = np.clip(_linear_to_srgb(np.clip(x, 0, 1)), 0, 1) ** self.gamma
        if self.sharpen_amount > 0:
            s = self.sharpen_sigma_px
            y = y + self.sharpen_amount * (y - gaussian_filter(y, (s, s, 0)))
        y = np.clip(y, 0, 1).astype(np.float32)
        if rng is not None and self.jpeg_quality:
            from PIL import Image

            buf = io.BytesIO()
            Image.fromarray((y * 255 + 0.5).astype(np.uint8)).save(buf, format="JPEG", quality=self.jpeg_quality)
            y = np.asarray(Image.open(io.BytesIO(buf.getvalue())), np.float32) / 255.0
        return y


def observable_defocus(coc_px: np.ndarray, sharp_srgb: np.ndarray, blurred_srgb: np.ndarray) -> np.ndarray:
    """|CoC| where the blur visibly changed the image, fading to 0 where it did not.

    "Visibly": the local (Gaussian, sigma 2 px) mean absolute change of luminance is
    1/255 or more (full weight from 2/255). Flat regions carry no evidence of their
    blur, and deblurring them would change nothing.
    """
    from scipy.ndimage import gaussian_filter

    w = np.array([0.299, 0.587, 0.114], np.float32)
    change = gaussian_filter(np.abs((sharp_srgb - blurred_srgb) @ w), 2.0)
    t = np.clip((change - 1 / 255) / (1 / 255), 0, 1)
    return (np.abs(coc_px) * t * t * (3 - 2 * t)).astype(np.float32)


def make_pair(rng: np.random.Generator, pool: Pool, size: int = 256, optics_softness: bool = False,
              clean_target: bool = False, processed: float = 0.0) -> dict[str, np.ndarray]:
    """One training pair: ``input``/``target`` uint8 sRGB, ``defocus_px`` float16, ``coc_px`` float16.

    ``clean_target`` (not used for the shipped weights): the target skips the Bayer
    mosaic. Through the mosaic, a sharp edge in the target carries the demosaicing's
    colour fringes, and the network learned to draw them: on a real Lytro capture its
    raw output had green/magenta fringes along saturated edges (docs/deblurnet.md).
    Draws no random numbers, so the stream of pairs is otherwise the same.

    ``processed`` (not used for the shipped weights): the probability that the photo
    is an already-processed image, with no mosaic, noise, denoising, sharpening or
    JPEG, in input and target alike. A Lytro refocused image (an average of decoded
    views) has neither fringes nor grain, and the raw photo net invented changes there
    (docs/deblurnet.md). Draws one more number per pair only when it is above 0.
    """
    img, disp = make_scene(rng, pool, size)
    # The target is the sharp photo of the boosted scene. Until 2026-12-06 it was the
    # unboosted one, so an in-focus highlight was up to 63/255 brighter in the input than
    # in the target and the shipped net learned to darken bright regions (flat white
    # -0.007..-0.010 raw; docs/deblurnet.md).
    blurred, coc, img = blur_scene(rng, img, disp)
    cam = Camera.draw(rng, optics_softness)
    if processed > 0 and rng.random() < processed:
        cam = replace(cam, bayer=False, shot=0.0, read=0.0, denoise_sigma_px=0.0, sharpen_amount=0.0, jpeg_quality=0)
    tcam = replace(cam, bayer=False) if clean_target else cam
    target = tcam(img)
    clean_blurred = tcam(blurred)
    inp = cam(blurred, rng)
    defocus = observable_defocus(coc, target, clean_blurred)
    q = lambda a: (np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)  # noqa: E731
    return {"input": q(inp), "target": q(target), "defocus_px": defocus.astype(np.float16),
            "coc_px": coc.astype(np.float16)}


def _main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description="Build the photo pool / write sample pairs")
    ap.add_argument("--build-pool", type=Path, help="write the pool here")
    ap.add_argument("--corpus", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/photos/exif-corpus")
    ap.add_argument("--sheet", type=Path, help="write a contact sheet of sample pairs (PNG)")
    ap.add_argument("--pool", type=Path, default=Path(__file__).resolve().parents[1] / ".trainpool")
    ap.add_argument("--n", type=int, default=6)
    a = ap.parse_args()
    if a.build_pool:
        print(build_pool(a.corpus, a.build_pool))
    if a.sheet:
        from PIL import Image

        pool = load_pool(a.pool)
        rows = []
        for i in range(a.n):
            p = make_pair(np.random.default_rng([7, i]), pool)
            d = np.clip(p["defocus_px"].astype(np.float32) / MAX_COC_PX, 0, 1)
            c = np.clip(np.abs(p["coc_px"].astype(np.float32)) / MAX_COC_PX, 0, 1)
            rows.append(np.concatenate([p["input"], p["target"], np.repeat((c[..., None] * 255).astype(np.uint8), 3, 2),
                                        np.repeat((d[..., None] * 255).astype(np.uint8), 3, 2)], 1))
        Image.fromarray(np.concatenate(rows, 0)).save(a.sheet)


if __name__ == "__main__":
    _main()
