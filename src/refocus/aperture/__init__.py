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

Cat's-eye. Off-axis, the lens barrel clips the pupil; we model it as the
intersection with a unit disc shifted towards the frame centre by
``cats_eye * rho`` (``rho`` = distance from the frame centre, 1 at the corners),
giving the lemon-shaped highlights of fast lenses near the frame edges. Kernels are
normalised to unit sum, so clipping changes shape but not exposure.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

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
    """

    # Non-finite numbers refused: a NaN rotation passed unchecked and drew a broken
    # kernel (almost no blur).
    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True, allow_inf_nan=False)

    shape: Literal["disc", "polygon", "custom"] = "disc"
    blades: int = Field(6, ge=3, le=16)
    rotation_deg: float = 0.0
    curvature: float = Field(0.0, ge=0.0, le=1.0)
    cats_eye: float = Field(0.0, ge=0.0, le=1.0)
    image_path: str | None = None
    image: np.ndarray | None = Field(default=None, exclude=True, repr=False)

    @field_validator("image")
    @classmethod
    def _check_image(cls, v):
        if v is None:
            return v
        v = np.asarray(v, dtype=np.float32)
        if v.ndim == 3:
            v = v.mean(axis=2)
        if v.ndim != 2 or v.size == 0 or not np.isfinite(v).all() or v.max() <= 0:
            raise ValueError("custom aperture image must be a non-empty, non-black 2-D array")
        return v

    def key(self) -> tuple:
        """Hashable identity, used to cache kernels."""
        img_key = None
        if self.image is not None:
            img_key = (self.image.shape, hash(self.image.tobytes()))
        return (self.shape, self.blades, round(self.rotation_deg, 6), round(self.curvature, 6), self.image_path, img_key)


def load_aperture_image(path: str | Path) -> np.ndarray:
    """Load a grayscale kernel image (white = open) as float32 in [0, 1]."""
    from PIL import Image

    path = Path(path)
    if not path.exists():
        raise RefocusError(f"aperture image not found: {path}")
    from refocus.io.limits import check_file, pillow_open

    check_file(path, f"aperture image {path.name}")
    try:
        with pillow_open(path, f"aperture image {path.name}") as img:
            if img.mode in ("RGBA", "LA"):
                arr = np.asarray(img.convert("RGBA"), dtype=np.float32) / 255.0
                g = arr[..., :3].mean(axis=2) * arr[..., 3]
            else:
                g = np.asarray(img.convert("L"), dtype=np.float32) / 255.0
    except RefocusError:
        raise
    except Exception as exc:
        raise RefocusError(f"cannot read aperture image {path.name}: {exc.__class__.__name__}") from None
    if g.size == 0 or g.max() <= 0:
        raise RefocusError(f"aperture image {path.name} is empty or black")
    return g


def aperture_from_spec(spec: str, **kwargs) -> ApertureConfig:
    """Build a config from a CLI-style spec: ``disc``, ``polygon`` or a path to an image."""
    if spec in ("disc", "circle"):
        return ApertureConfig(shape="disc", **kwargs)
    if spec in ("polygon", "blades"):
        return ApertureConfig(shape="polygon", **kwargs)
    img = load_aperture_image(spec)
    kwargs = {k: v for k, v in kwargs.items() if k in ("rotation_deg", "cats_eye")}
    return ApertureConfig(shape="custom", image=img, image_path=str(spec), **kwargs)


def aperture_mask(cfg: ApertureConfig, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Transmission in [0, 1] of the aperture at pupil coordinates (u, v).

    ``u`` points right and ``v`` down; the circumscribed circle is the unit circle.
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
        return (r <= 1.0).astype(np.float64)
    if cfg.shape == "polygon":
        n = cfg.blades
        # Angle measured with v up so that a vertex points up at rotation 0.
        ang = np.arctan2(ur, -vr)
        sector = 2 * np.pi / n
        local = np.mod(ang, sector) - sector / 2
        r_poly = np.cos(np.pi / n) / np.cos(local)
        r_edge = (1 - cfg.curvature) * r_poly + cfg.curvature * 1.0
        return (r <= r_edge).astype(np.float64)
    if cfg.shape == "custom":
        img = cfg.image
        if img is None:
            if cfg.image_path is None:
                raise RefocusError("custom aperture needs an image")
            img = load_aperture_image(cfg.image_path)
        from scipy.ndimage import map_coordinates

        h, w = img.shape
        side = max(h, w)
        # The longer side spans [-1, 1]; pixel centres at (i + 0.5).
        col = (ur + 1) / 2 * side - 0.5 - (side - w) / 2
        row = (vr + 1) / 2 * side - 0.5 - (side - h) / 2
        vals = map_coordinates(img.astype(np.float64), [row.ravel(), col.ravel()], order=1, mode="constant", cval=0.0)
        return np.clip(vals.reshape(u.shape), 0, None)
    raise RefocusError(f"unknown aperture shape {cfg.shape!r}")


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
    with _KERNEL_LOCK:
        k = _KERNEL_CACHE.get(key)
    if k is None:
        _, radius_px, front, offset = key
        k = _rasterise(cfg, radius_px, offset)
        if front:
            k = k[::-1, ::-1].copy()
        k.setflags(write=False)
        with _KERNEL_LOCK:
            if len(_KERNEL_CACHE) > 4096:
                _KERNEL_CACHE.clear()
            k = _KERNEL_CACHE.setdefault(key, k)
    return k


def _rasterise(cfg: ApertureConfig, radius_px: float, offset: tuple[float, float]) -> np.ndarray:
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
    m = aperture_mask(cfg, uu, vv)
    if offset != (0.0, 0.0):
        m = m * _cats_eye_clip(uu, vv, offset)
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
