"""Aperture shapes and the blur kernels they produce.

An aperture is a transmission function over normalised pupil coordinates
``(u, v)`` in [-1, 1]^2 (``u`` to the right, ``v`` downwards, as image axes). The
out-of-focus image of a point light is that function scaled to the point's circle
of confusion: a kernel of *radius* ``|coc_px|`` means the aperture's circumscribed
circle has that radius in pixels.

Orientation. The kernel is drawn upright (as the aperture looks in
``aperture_mask``) for points **behind** the focal plane (negative CoC, the usual
background highlights) and rotated by 180 degrees for points **in front** of it
(positive CoC), as a real lens does: rays from a point behind the focal plane cross
before reaching the sensor, those from a nearer point have not crossed yet.
This matches light-field refocusing, where view ``(u, v)`` displaces a point of
disparity ``d`` focused at ``s`` by ``(s - d) * (u, v)``.

Rim and ring. Light is not spread evenly over a real lens's discs: with
under-corrected spherical aberration (most fast lenses, strongly so in the soap-bubble
lenses) a highlight behind the focal plane draws a disc with a bright rim and one in
front of it a disc with a soft edge, and over-corrected lenses the reverse; a mirror
lens's central obstruction draws rings (Lightroom's Lens Blur offers "Bubble" and
"Ring" bokeh beside the circle and blades). ``rim`` weights the transmission by
``1 + 4 rim rho^4`` (a rim up to 5 times the centre, ``rim`` > 0) or ``1 - |rim| rho^2``
(an edge fading to 0 at ``rim`` = -1), ``rho`` the distance from the centre as a
fraction of the shape's edge in that direction, with the sign of ``rim`` turned for
points in front of the focal plane; ``ring`` blocks ``rho`` < ``ring``.

Cat's-eye. Off-axis, the lens barrel clips the pupil; we model it as the
intersection with a unit disc shifted towards the frame centre by
``cats_eye * rho`` (``rho`` = distance from the frame centre, 1 at the corners),
giving the lemon-shaped highlights of fast lenses near the frame edges, drawn centred
on the point. Kernels are normalised to unit sum, so clipping changes shape but not
exposure; the renderer blends them by the position of the light, not of the pixel
lit (:func:`refocus.render.dense.conv_layer`).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from refocus.errors import RefocusError

#: Supersampling per pixel axis when rasterising analytic shapes.
_SUPERSAMPLE = 8


class ApertureConfig(BaseModel):
    """Shape of the lens aperture.

    Attributes
    ----------
    shape:
        ``"disc"``, ``"polygon"`` (``blades`` straight or curved blades), or
        ``"custom"`` (a grayscale image, ``image_path`` or ``image``).
    blades:
        Number of diaphragm blades, 3..16 (polygon only).
    rotation_deg:
        Rotation of the polygon or custom shape, degrees, counter-clockwise.
    curvature:
        Blade curvature: 0 = straight edges (a regular polygon), 1 = a disc.
    cats_eye:
        Strength of the cat's-eye clipping towards the frame corners, 0..1.
    rim:
        -1..1: > 0 bright rims behind the focal plane and soft edges in front (a lens
        with under-corrected spherical aberration: soap-bubble bokeh), < 0 the
        reverse, 0 an even disc (disc and polygon only; see the module docstring).
    ring:
        0..0.9: the central obstruction of a mirror lens, as a fraction of the
        aperture's radius: ring-shaped discs (disc and polygon only).
    """

    # Non-finite numbers refused: a NaN rotation passed unchecked and drew a broken
    # kernel (almost no blur).
    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True, allow_inf_nan=False)

    shape: Literal["disc", "polygon", "custom"] = "disc"
    blades: int = Field(6, ge=3, le=16)
    rotation_deg: float = 0.0
    curvature: float = Field(0.0, ge=0.0, le=1.0)
    cats_eye: float = Field(0.0, ge=0.0, le=1.0)
    rim: float = Field(0.0, ge=-1.0, le=1.0)
    ring: float = Field(0.0, ge=0.0, le=0.9)
    image_path: str | None = None
    image: np.ndarray | None = Field(default=None, exclude=True, repr=False)

    @field_validator("image")
    @classmethod
    def _check_image(cls, v):
        if v is None:
            return v
        # A private, read-only copy: the kernel cache identifies it once (a 4000 x 4000
        # image was hashed again on every kernel request, 0.1 s each), so it must not
        # change behind the cache's back. The channel mean is already a new array.
        v = np.asarray(v, dtype=np.float32)
        v = v.mean(axis=2) if v.ndim == 3 else np.array(v, dtype=np.float32, order="C", copy=True)
        if v.ndim != 2 or v.size == 0 or not np.isfinite(v).all() or v.max() <= 0:
            raise ValueError("custom aperture image must be a non-empty, non-black 2-D array")
        v.setflags(write=False)
        return v

    @model_validator(mode="after")
    def _profile_of_a_drawn_shape(self):
        if self.shape == "custom" and (self.rim != 0.0 or self.ring != 0.0):
            # An image's grey levels already are its transmission, rims and rings included.
            raise ValueError("rim and ring shape a disc or polygon aperture; a custom image carries its own (paint it)")
        return self

    @property
    def profiled(self) -> bool:
        """Whether light is spread unevenly over the shape (a rim or a ring)."""
        return self.rim != 0.0 or self.ring != 0.0

    def key(self) -> tuple:
        """Hashable identity, used to cache kernels."""
        img_key = None
        if self.image is not None:
            img_key = _image_key(self.image)
        return (self.shape, self.blades, round(self.rotation_deg, 6), round(self.curvature, 6), self.image_path, img_key,
                round(self.rim, 6), round(self.ring, 6))


#: id(image) -> (weak reference to it, its identity): hashing a large custom image on
#: every kernel request cost 0.1 s each (40 s instead of 2 s for a cat's-eye render).
_IMAGE_KEYS: dict = {}


def _image_key(img: np.ndarray) -> tuple:
    import weakref

    with _KERNEL_LOCK:
        hit = _IMAGE_KEYS.get(id(img))
    if hit is not None and hit[0]() is img and not img.flags.writeable:
        return hit[1]
    key = (img.shape, hash(img.tobytes()))
    if not img.flags.writeable:  # a validated (private, read-only) image cannot change
        with _KERNEL_LOCK:
            if len(_IMAGE_KEYS) > 64:
                _IMAGE_KEYS.clear()
            _IMAGE_KEYS[id(img)] = (weakref.ref(img), key)
    return key


def load_aperture_image(path: str | Path) -> np.ndarray:
    """Load a kernel image as float32 transmission in [0, 1]: white (and opaque) = open.

    Read as a photo is (:func:`refocus.io.read_image`): 16-bit PNG/TIFF and float TIFF
    keep their grey levels (a 16-bit 50 % grey was read as fully open, a float TIFF in
    [0, 1] as black), EXIF orientation is applied (a phone shot of a shape stood on its
    side). Colour is averaged to grey; an alpha channel multiplies it, and a shape
    drawn in black on a transparent canvas (nothing white, something opaque) is its
    opacity. The result is cut to the box of its opening (:func:`_crop_to_opening`).
    """
    from refocus.io import read_image
    from refocus.io.limits import check_file

    path = Path(path)
    if not path.exists():
        raise RefocusError(f"aperture image not found: {path}")
    if path.is_dir():
        raise RefocusError(f"aperture image {path} is a folder, not an image file")
    check_file(path, f"aperture image {path.name}")
    try:
        rgb, info = read_image(path, fill_hidden=False)  # colour counts only where alpha > 0
    except RefocusError as exc:
        msg = str(exc)
        if path.name not in msg:
            msg = f"aperture image {path.name}: {msg}"
        raise RefocusError(msg.replace("cannot read image ", "cannot read aperture image ", 1)) from None
    g = rgb.mean(axis=2, dtype=np.float32)
    alpha = getattr(info, "alpha", None)
    if alpha is not None:
        a = np.clip(np.asarray(alpha, dtype=np.float32), 0.0, 1.0)
        g = g * a
        if not g.max() > 0 and a.min() < 1.0 and a.max() > 0:
            g = a
    g = np.nan_to_num(np.clip(g, 0.0, 1.0), nan=0.0).astype(np.float32)
    if g.size == 0 or not g.max() > 0:
        raise RefocusError(f"aperture image {path.name} is empty or black: white (or opaque) pixels mark the opening")
    return _crop_to_opening(g)


def _crop_to_opening(g: np.ndarray) -> np.ndarray:
    """The image cut to the box of its opening (pixels over 1 % of its brightest): the
    frame maps onto the kernel, so a shape drawn off-centre on a larger canvas shifted
    every blurred region and blurred by less than the radius asked for (found
    2026-12-07: a 31 px disc at the left of a 91 x 31 canvas moved the blur by 10 px)."""
    opening = g > 0.01 * g.max()
    rows = np.flatnonzero(opening.any(axis=1))
    cols = np.flatnonzero(opening.any(axis=0))
    return np.ascontiguousarray(g[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1])


def aperture_from_spec(spec: str, **kwargs) -> ApertureConfig:
    """Build a config from a CLI-style spec: ``disc``, ``polygon`` or a path to an image."""
    if spec in ("disc", "circle"):
        return ApertureConfig(shape="disc", **kwargs)
    if spec in ("polygon", "blades"):
        return ApertureConfig(shape="polygon", **kwargs)
    img = load_aperture_image(spec)
    # The blade settings do not shape an image, but they are checked as for the other
    # shapes: "--blades 100" was refused with disc and polygon, silently taken here.
    return ApertureConfig(shape="custom", image=img, image_path=str(spec), **kwargs)


def aperture_mask(cfg: ApertureConfig, u: np.ndarray, v: np.ndarray, image: np.ndarray | None = None,
                  front: bool = False) -> np.ndarray:
    """Transmission (>= 0; at most 1 without a rim) of the aperture at pupil coordinates (u, v).

    ``u`` points right and ``v`` down; the circumscribed circle is the unit circle.
    A custom image's longer side spans [-1, 1], each of its pixels covering its own
    square of that frame (a 1 x 1 white image is a square aperture filling it);
    ``image`` replaces the config's (a reduced copy, see :func:`_rasterise`).
    ``front``: for a point in front of the focal plane (the rim's sign turned).
    """
    u = np.asarray(u, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    theta = np.deg2rad(cfg.rotation_deg)
    # Rotate the sampling coordinates by -theta so that the shape turns by +theta
    # counter-clockwise as seen on screen (v points down, hence the sign on v).
    c, s = np.cos(theta), np.sin(theta)
    ur = c * u - s * v
    vr = s * u + c * v
    r = np.hypot(ur, vr)
    if cfg.shape == "disc":
        return _profiled(cfg, r, 1.0, front)
    if cfg.shape == "polygon":
        n = cfg.blades
        # Angle measured with v up so that a vertex points up at rotation 0.
        ang = np.arctan2(ur, -vr)
        sector = 2 * np.pi / n
        local = np.mod(ang, sector) - sector / 2
        r_poly = np.cos(np.pi / n) / np.cos(local)
        r_edge = (1 - cfg.curvature) * r_poly + cfg.curvature * 1.0
        return _profiled(cfg, r, r_edge, front)
    if cfg.shape == "custom":
        img = image if image is not None else custom_image(cfg)
        return _sample_image(img, ur, vr)
    raise RefocusError(f"unknown aperture shape {cfg.shape!r}")


def _profiled(cfg: ApertureConfig, r: np.ndarray, r_edge, front: bool) -> np.ndarray:
    """Inside the edge ``r_edge``: 1, or the rim's and ring's profile over
    ``rho = r / r_edge`` (module docstring)."""
    inside = (r <= r_edge).astype(np.float64)
    if not cfg.profiled:
        return inside
    rho = r / r_edge
    rim = -cfg.rim if front else cfg.rim
    weight = 1.0 + 4.0 * rim * rho**4 if rim > 0 else 1.0 + rim * rho**2
    if cfg.ring > 0:
        weight = weight * (rho >= cfg.ring)
    return inside * weight


def custom_image(cfg: ApertureConfig) -> np.ndarray:
    """The transmission image of a custom aperture: ``cfg.image``, else the file
    ``cfg.image_path`` (read once per file version, not once per kernel: a config sent
    to a batch worker carries the path only)."""
    if cfg.image is not None:
        return cfg.image
    if cfg.image_path is None:
        raise RefocusError("custom aperture needs an image")
    path = Path(cfg.image_path)
    try:
        st = path.stat()
        key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    except OSError:
        key = None
    return _cached(_PATH_IMAGES, key, 8, lambda: load_aperture_image(path))


_PATH_IMAGES: dict = {}


def _cached(store: dict, key, limit: int, make) -> np.ndarray:
    """``store[key]``, or ``make()`` made read-only and kept there (``key`` None: not
    kept; two threads making the same one both get the first kept); a store holding
    more than ``limit`` is emptied first."""
    with _KERNEL_LOCK:
        value = store.get(key) if key is not None else None
    if value is None:
        value = make()
        value.setflags(write=False)
        if key is not None:
            with _KERNEL_LOCK:
                if len(store) > limit:
                    store.clear()
                value = store.setdefault(key, value)
    return value


def _sample_image(img: np.ndarray, ur: np.ndarray, vr: np.ndarray) -> np.ndarray:
    """The image's value at frame coordinates (ur, vr): the pixel whose square holds the
    point, 0 outside the image. (Bilinear sampling with zeros beyond the outer pixel
    centres lost half a pixel on every side: a 1 x 1 or 3 x 3 white image blurred by a
    single pixel or 2/3 of the radius asked for.)"""
    h, w = img.shape
    side = max(h, w)
    col = np.floor((ur + 1) / 2 * side - (side - w) / 2)
    row = np.floor((vr + 1) / 2 * side - (side - h) / 2)
    inside = (row >= 0) & (row < h) & (col >= 0) & (col < w)
    r = np.clip(np.nan_to_num(row), 0, h - 1).astype(np.intp)
    c = np.clip(np.nan_to_num(col), 0, w - 1).astype(np.intp)
    vals = np.where(inside, img[r, c], 0.0).astype(np.float64)
    return np.clip(vals, 0.0, None)


def _reduced_image(img: np.ndarray, samples: float) -> np.ndarray:
    """``img`` averaged by area down to about ``samples`` pixels across its longer side,
    when it has more: a point sample of a larger image would pick a pixel at random
    (a thin line missed, noise aliased). Cached per image and size."""
    h, w = img.shape
    side = max(h, w)
    if side <= samples:
        return img
    f = samples / side
    size = (max(1, int(round(w * f))), max(1, int(round(h * f))))
    def reduce() -> np.ndarray:
        from PIL import Image

        return np.asarray(Image.fromarray(np.ascontiguousarray(img, dtype=np.float32), "F").resize(size, Image.BOX),
                          dtype=np.float32)

    return _cached(_REDUCED, (_image_key(img), size), 64, reduce)


_REDUCED: dict = {}


def _cats_eye_clip(u: np.ndarray, v: np.ndarray, offset: tuple[float, float]) -> np.ndarray:
    ou, ov = offset
    return ((u - ou) ** 2 + (v - ov) ** 2 <= 1.0).astype(np.float64)


def kernel(
    cfg: ApertureConfig,
    radius_px: float,
    front: bool = False,
    cats_eye_offset: tuple[float, float] = (0.0, 0.0),
) -> np.ndarray:
    """The blur kernel of a point with circle of confusion ``radius_px``.

    Returns a float32 square array of odd size ``2 * ceil(radius_px) + 1`` summing
    to 1, antialiased by supersampling. ``front=True`` (points nearer than the focal
    plane) rotates it by 180 degrees. ``cats_eye_offset`` is the pupil-space shift of
    the clipping disc (see the module docstring); use :func:`cats_eye_offset`.
    """
    radius_px = float(abs(radius_px))
    key = (cfg.key(), round(radius_px, 4), bool(front), (round(cats_eye_offset[0], 3), round(cats_eye_offset[1], 3)))
    k = _kernel_cached(key, cfg)
    return k


_KERNEL_CACHE: dict = {}
#: The renderer's two sweep threads ask for kernels at once.
_KERNEL_LOCK = threading.Lock()


def _kernel_cached(key, cfg: ApertureConfig) -> np.ndarray:
    def make() -> np.ndarray:
        _, radius_px, front, offset = key
        k = _rasterise(cfg, radius_px, offset, front)
        return k[::-1, ::-1].copy() if front else k

    return _cached(_KERNEL_CACHE, key, 4096, make)


def _rasterise(cfg: ApertureConfig, radius_px: float, offset: tuple[float, float], front: bool = False) -> np.ndarray:
    if radius_px < 0.5:
        # The whole spot falls inside the centre pixel.
        return np.ones((1, 1), dtype=np.float32)
    half = int(np.ceil(radius_px))
    n = 2 * half + 1
    ss = _SUPERSAMPLE if radius_px < 24 else 4
    # Sub-pixel sample positions, pixel centres at integers.
    offs = (np.arange(ss) + 0.5) / ss - 0.5
    coords = (np.arange(n) - half)[:, None] + offs[None, :]
    coords = coords.ravel() / radius_px
    vv, uu = np.meshgrid(coords, coords, indexing="ij")
    image = None
    if cfg.shape == "custom":  # no finer than the samples across the frame (2 radius_px ss)
        image = _reduced_image(custom_image(cfg), 2.0 * radius_px * ss)
    m = aperture_mask(cfg, uu, vv, image=image, front=front)
    if offset != (0.0, 0.0):
        # The lens-shaped intersection is drawn centred on the point (aperture shifted
        # by -offset/2, clipping disc by +offset/2): left where the clip puts it, every
        # disc moved towards the frame centre by up to half its radius, which gathered
        # the blur's light there (a light at the centre of a wall dimmed by 20 %).
        ou, ov = offset
        shifted = aperture_mask(cfg, uu + ou / 2, vv + ov / 2, image=image, front=front)
        clipped = shifted * _cats_eye_clip(uu, vv, (ou / 2, ov / 2))
        # An off-centre custom shape can be clipped away entirely near a corner: it
        # is drawn unclipped there, not as the sharp point the fallback below makes
        # (which showed as a doubled, half-sharp highlight between kernel grid nodes).
        if clipped.sum() > 0:
            m = clipped
    m = m.reshape(n, ss, n, ss).mean(axis=(1, 3))
    total = m.sum()
    if total <= 0:
        # A clipped-away aperture or a custom image too thin for this radius.
        m = np.zeros((n, n))
        m[half, half] = 1.0
        total = 1.0
    return (m / total).astype(np.float32)


def cats_eye_offset(strength: float, x: float, y: float, width: int, height: int) -> tuple[float, float]:
    """Pupil-space shift of the clipping disc for an image position (x, y) in pixels.

    Zero at the frame centre, ``strength`` (in units of the pupil radius) towards
    the centre at the corners.
    """
    cx, cy = (width - 1) / 2, (height - 1) / 2
    half_diag = max(np.hypot(cx, cy), 1e-9)
    dx, dy = (x - cx) / half_diag, (y - cy) / half_diag
    # The clipping pupil shifts towards the frame centre, so the highlight is
    # flattened along the radial direction and stays long tangentially.
    return (-strength * dx * 1.0, -strength * dy * 1.0)
