"""Thin-lens optics: how large a point's blur circle is on the sensor and in pixels.

A lens of focal length ``f`` at f-number ``N`` focused at distance ``z_f`` images a
point at distance ``z`` as a disc of diameter (on the sensor, same units as ``f``)::

    c = (f**2 / N) * |1/z_f - 1/z| / (1 - f/z_f)

The blur is linear in disparity ``1/z``, so a metric disparity map (1/m) and one gain
``K`` (px per 1/m) give the renderer's signed CoC *radius*::

    coc_px = K * (1/z - 1/z_f),   K = f**2 / (2 N (1 - f/z_f)) * width_px / sensor_width

(``f`` in metres on the right-hand side so that ``K`` comes out in px·m). Positive
values are nearer than the focal plane, as everywhere in the project.
"""

from __future__ import annotations

import math

import numpy as np

from refocus.errors import RefocusError

#: Width of a full-frame ("35 mm") sensor in millimetres.
FULL_FRAME_WIDTH_MM = 36.0
#: Diagonal of a full-frame sensor in millimetres (used for 35 mm equivalents).
FULL_FRAME_DIAGONAL_MM = math.hypot(36.0, 24.0)


def _positive(name: str, value: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise RefocusError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise RefocusError(f"{name} must be a finite number > 0, got {value}")
    return v


def sensor_width_from_35mm(focal_length_mm: float, focal_length_35mm: float, aspect: float) -> float:
    """Sensor width in mm (along the image's long side) from the focal length and its
    35 mm equivalent.

    The equivalent is defined on the diagonal (CIPA DC-008, DCG-001: the same diagonal
    angle of view on a 36 x 24 mm frame), so the sensor's diagonal is
    ``43.27 mm * f / f35`` and its width that diagonal's share along the long side of an
    image of ``aspect`` (long side / short side, or its inverse; 3:2 gives ``36 mm * f / f35``). Taking 36 mm for every aspect made a 4:3 sensor 4 % too wide:
    7.89 mm for the iPhone 13 Pro's main camera (5.7 mm, 26 mm equivalent), whose sensor
    is about 7.6 mm wide.
    """
    f = _positive("focal length (mm)", focal_length_mm)
    f35 = _positive("35 mm equivalent focal length (mm)", focal_length_35mm)
    a = _positive("aspect ratio", aspect)
    a = max(a, 1.0 / a)
    return FULL_FRAME_DIAGONAL_MM * f / f35 * a / math.hypot(a, 1.0)


def crop_factor(sensor_width_mm: float, aspect: float) -> float:
    """Full frame's diagonal over the sensor's, for a sensor ``sensor_width_mm`` wide along
    the long side of an image of ``aspect`` (long / short): ``f35 / f`` for a width from
    :func:`sensor_width_from_35mm`. A full-frame equivalent camera is this camera with
    its focal length and sensor scaled by it (same angle of view, same f-number)."""
    w = _positive("sensor width (mm)", sensor_width_mm)
    a = _positive("aspect ratio", aspect)
    a = max(a, 1.0 / a)
    return FULL_FRAME_DIAGONAL_MM / (w * math.hypot(a, 1.0) / a)


def _check_focus(focal_length_mm: float, focus_distance_m: float) -> tuple[float, float]:
    f_m = _positive("focal length (mm)", focal_length_mm) / 1000.0
    z_f = _positive("focus distance (m)", focus_distance_m)
    if z_f <= f_m:
        raise RefocusError(
            f"focus distance {z_f:g} m must be larger than the focal length {f_m * 1000:g} mm"
        )
    return f_m, z_f


def coc_diameter_mm(
    f_number: float, focal_length_mm: float, focus_distance_m: float, distance_m: float | np.ndarray
) -> float | np.ndarray:
    """Blur-circle diameter on the sensor, in mm, of a point at ``distance_m``.

    Parameters
    ----------
    f_number : float
        The aperture's f-number N (focal length / pupil diameter).
    focal_length_mm : float
        Focal length f, in mm (the real one, not the 35 mm equivalent).
    focus_distance_m : float
        Distance of the focal plane from the lens, in m (> f).
    distance_m : float or array
        Distance of the point(s), in m (> 0; ``inf`` is allowed).

    Returns
    -------
    float or array
        Diameter c in mm, ``(f**2/N) * |1/z_f - 1/z| / (1 - f/z_f)``.
    """
    n = _positive("f-number", f_number)
    f_m, z_f = _check_focus(focal_length_mm, focus_distance_m)
    z = np.asarray(distance_m, dtype=np.float64)
    if np.any(~(z > 0)):
        raise RefocusError("distances must be > 0 m")
    c_m = (f_m**2 / n) * np.abs(1.0 / z_f - 1.0 / z) / (1.0 - f_m / z_f)
    c_mm = c_m * 1000.0
    return float(c_mm) if c_mm.ndim == 0 else c_mm


def strength_from_camera(
    f_number: float,
    focal_length_mm: float,
    sensor_width_mm: float,
    focus_distance_m: float,
    width_px: int,
) -> float:
    """Renderer gain ``K`` (px·m) for metric disparity, from the camera's settings.

    With disparity ``d = 1/z`` in 1/m, ``coc_px = K * (d - 1/focus_distance_m)`` is
    the signed CoC radius in pixels of the photo that is ``width_px`` wide.

    Parameters
    ----------
    f_number : float
        f-number N.
    focal_length_mm : float
        Real focal length, in mm.
    sensor_width_mm : float
        Sensor width, in mm (36 for full frame; see :func:`sensor_width_from_35mm`).
    focus_distance_m : float
        Focus distance, in m.
    width_px : int
        Width of the image in pixels (the one the CoC map is for).

    Returns
    -------
    float
        K in px·m: ``f**2 / (2 N (1 - f/z_f)) * width_px / sensor_width``.
    """
    n = _positive("f-number", f_number)
    f_m, z_f = _check_focus(focal_length_mm, focus_distance_m)
    sw_m = _positive("sensor width (mm)", sensor_width_mm) / 1000.0
    w = _positive("image width (px)", width_px)
    return float(f_m**2 / (2.0 * n * (1.0 - f_m / z_f)) * w / sw_m)


def coc_px_from_depth(
    depth_m: np.ndarray,
    *,
    f_number: float,
    focal_length_mm: float,
    sensor_width_mm: float,
    focus_distance_m: float,
    width_px: int,
) -> np.ndarray:
    """Signed CoC radius in px for a metric depth map (distances in m).

    Positive in front of the focal plane, negative behind it; non-positive or
    non-finite distances are treated as infinitely far.
    """
    k = strength_from_camera(f_number, focal_length_mm, sensor_width_mm, focus_distance_m, width_px)
    z = np.asarray(depth_m, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        disp = np.where(np.isfinite(z) & (z > 0), 1.0 / z, 0.0)
    return (k * (disp - 1.0 / float(focus_distance_m))).astype(np.float32)


def strength_from_lens_blur(blur_at_infinity: float, focal_distance: float, long_side_px: int) -> float:
    """Gain ``K`` (px · depth unit) of the lens a Google Camera "Lens Blur" photo states.

    Lens Blur writes ``GFocus:BlurAtInfinity`` ``b`` and ``GFocus:FocalDistance``
    ``z_f`` (in its depth map's units) beside the photo it rendered. Its renderer (the
    Android refocus code) blurs a point at distance ``z`` by a disc of radius
    ``b * |z - z_f| / z``, i.e. ``b * z_f * |1/z - 1/z_f|``: a thin lens whose gain in
    inverse depth is ``b * z_f``. ``b`` is stored as a fraction of the image's long
    side: re-rendering the stored original of ``phone-depth/motorola-lensblur-gdepth.jpg``
    (1536x2048) with our renderer matches its rendered photo best at 0.94-1.05 times
    ``b`` x 2048 px (39.1-39.4 dB, against 36.9 dB at ``b`` x 1536; docs/depth.md).

    Returns
    -------
    float
        K for disparity ``1/z`` in the depth map's inverse units: ``b * z_f * long_side_px``.
    """
    b = float(blur_at_infinity)
    if not math.isfinite(b) or b < 0:
        raise RefocusError(f"Lens Blur's blur at infinity must be finite and >= 0, got {blur_at_infinity}")
    return float(b * _positive("Lens Blur focal distance", focal_distance) * _positive("image long side (px)", long_side_px))


def strength_for_normalised_disparity(k_metric: float, disparity_min: float, disparity_max: float) -> float:
    """Convert a metric gain K (px·m) to the gain for disparity min-max normalised to [0, 1].

    A map normalised with ``(d - d_min)/(d_max - d_min)`` needs ``K * (d_max - d_min)``
    to give the same CoC (disparities in 1/m).
    """
    span = float(disparity_max) - float(disparity_min)
    if not math.isfinite(span) or span < 0:
        raise RefocusError("disparity range must be finite with max >= min")
    return float(k_metric) * span
