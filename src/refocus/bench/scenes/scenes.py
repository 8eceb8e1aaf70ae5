"""Ray-traced synthetic scenes with exact thin-lens ground truth: the benchmark's
frozen set and DeblurNet's training pairs.

:func:`make_scene` draws one dead-leaves scene (:mod:`.layers`), picks a focus and
a strength K, and renders the all-in-focus image and the thin-lens photo by the
exact ray tracer (:mod:`.thin_lens`); :func:`frozen_test_set` is the benchmark's
fixed list of them. :func:`generate_pairs` makes batches of training pairs (the
fast path of :mod:`.fast` on the CPU, the ``grid`` path on a GPU). A scene's
camera (:class:`CameraParams`) is the thin lens that the one K formula of
:mod:`refocus.camera.lens` ties to K and the focus.

Photo textures come from scikit-image and from the folders the caller passes as
``photo_dirs`` (:func:`refocus.bench.scenes.textures.photo_bank`): the benchmark
passes the shared data's ``photos`` folder, so its frozen set is made with them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from refocus.aperture import ApertureConfig
from refocus.bench.scenes.layers import Layers, make_layers
from refocus.bench.scenes.textures import _linear_to_srgb_t, _Rand
from refocus.bench.scenes.thin_lens import composite_all_in_focus, render_thin_lens
from refocus.bench.scenes.threads import GENERATION_THREADS, cpu_threads
from refocus.errors import RefocusError
from refocus.render import coc_map, signed_coc_px

__all__ = ["CameraParams", "SyntheticScene", "frozen_test_set", "generate_pairs", "make_scene", "save_scene"]


# --------------------------------------------------------------------------- data classes


@dataclass(frozen=True)
class CameraParams:
    """A thin-lens camera consistent with a scene's K and focus.

    The disparity map is ``(1/z - 1/far_m) / (1/near_m - 1/far_m)``, and the CoC
    radius of a point at distance z is
    ``f^2 / (2 N (1 - f/z_f)) * |1/z_f - 1/z| * pixels_per_mm``.

    Attributes
    ----------
    focal_length_mm, f_number, sensor_width_mm:
        Lens and sensor (full-frame width by default).
    focus_distance_m:
        Distance of the focal plane, metres.
    near_m, far_m:
        Distances of the nearest plane (disparity 1) and the background (disparity 0).
    pixels_per_mm:
        Image width in pixels over the sensor width.
    """

    focal_length_mm: float
    f_number: float
    sensor_width_mm: float
    focus_distance_m: float
    near_m: float
    far_m: float
    pixels_per_mm: float

    @staticmethod
    def from_strength(K: float, focus_disparity: float, width_px: int, *, focal_length_mm: float = 85.0,
                      sensor_width_mm: float = 36.0, near_m: float = 0.5, far_m: float = 20.0) -> "CameraParams":
        """Solve for the f-number that gives strength ``K`` (px) with this geometry."""
        inv_near, inv_far = 1.0 / near_m, 1.0 / far_m
        inv_zf = inv_far + focus_disparity * (inv_near - inv_far)
        zf_mm = 1000.0 / inv_zf
        ppm = width_px / sensor_width_mm
        # K is inversely proportional to N: solve with the one K formula at N = 1.
        k_at_f1 = _strength(focal_length_mm, 1.0, sensor_width_mm, zf_mm / 1000.0, near_m, far_m, ppm)
        n = k_at_f1 / K if K > 0 else math.inf
        return CameraParams(focal_length_mm, float(n), sensor_width_mm, zf_mm / 1000.0, near_m, far_m, ppm)

    def strength_px(self) -> float:
        """K implied by these parameters (px per unit of normalised disparity)."""
        return _strength(self.focal_length_mm, self.f_number, self.sensor_width_mm, self.focus_distance_m,
                         self.near_m, self.far_m, self.pixels_per_mm)


def _strength(focal_length_mm: float, f_number: float, sensor_width_mm: float, focus_distance_m: float,
              near_m: float, far_m: float, pixels_per_mm: float) -> float:
    """K (px per unit of normalised disparity) by the one K formula of :mod:`refocus.camera.lens`."""
    from refocus.camera.lens import strength_for_normalised_disparity, strength_from_camera

    k_metric = strength_from_camera(f_number, focal_length_mm, sensor_width_mm, focus_distance_m,
                                    sensor_width_mm * pixels_per_mm)
    return strength_for_normalised_disparity(k_metric, 1.0 / far_m, 1.0 / near_m)


@dataclass
class SyntheticScene:
    """One ray-traced scene with its ground truth.

    Attributes
    ----------
    all_in_focus, all_in_focus_linear:
        (H, W, 3) float32, sRGB in [0, 1] / linear (may exceed 1 at point lights).
    lens, lens_linear:
        (H, W, 3) float32: the thin-lens photo, sRGB (clipped) / linear.
    disparity:
        (H, W) float32, larger = nearer, normalised to [0, 1] (background 0,
        nearest plane 1): the disparity of the front-most layer with alpha >= 0.5.
    coc_px:
        (H, W) float32 signed CoC radius, ``K * (disparity - focus_disparity)``.
    K:
        Strength, px of CoC radius per unit of disparity.
    focus_disparity:
        Disparity of the focal plane, in [0, 1].
    aperture:
        The aperture the photo was rendered with.
    camera:
        Thin-lens camera parameters consistent with ``K`` and ``focus_disparity``.
    layer_disparities:
        Disparities of the scene's planes, nearest first.
    lights_xy:
        (n, 2) float32 positions (x, y) of the point lights in frame pixels.
    seed, spacing_px, n_samples:
        How it was generated (seed of :func:`make_scene`, sample spacing in px at
        the largest CoC, number of aperture samples).
    """

    all_in_focus: np.ndarray
    all_in_focus_linear: np.ndarray
    lens: np.ndarray
    lens_linear: np.ndarray
    disparity: np.ndarray
    coc_px: np.ndarray
    K: float
    focus_disparity: float
    aperture: ApertureConfig
    camera: CameraParams
    layer_disparities: np.ndarray
    lights_xy: np.ndarray
    seed: int | None = None
    spacing_px: float = 1.0
    n_samples: int = 0
    meta: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- public generators


def _pick_focus(r: _Rand, disp: list[float]) -> float:
    # Mostly on a plane (something in the picture is sharp), sometimes between.
    if r.u() < 0.75:
        return float(disp[r.i(0, len(disp) - 1)])
    return r.u(0.0, 1.0)


def make_scene(
    seed: int,
    size: tuple[int, int] = (256, 256),
    *,
    max_coc_px: float = 12.0,
    focus_disparity: float | None = None,
    aperture: ApertureConfig | None = None,
    n_planes: int = 4,
    n_lights: tuple[int, int] = (0, 12),
    spacing_px: float = 1.0,
    device: str = "cpu",
    photo_dirs: Sequence[str | Path] = (),
    threads: int | None = GENERATION_THREADS,
) -> SyntheticScene:
    """One deterministic ray-traced scene.

    Parameters
    ----------
    seed:
        Everything random comes from ``torch.Generator().manual_seed(seed)``.
    size:
        (H, W) in pixels.
    max_coc_px:
        Largest |CoC| radius in the scene, px; K is set so that the plane
        farthest from focus (disparity 0 or 1) reaches it.
    focus_disparity:
        Focal plane; by default a random plane's disparity (75 %) or uniform.
    aperture:
        Aperture shape (default: disc).
    n_planes, n_lights:
        See :func:`make_layers`.
    spacing_px:
        Aperture sample spacing at the largest CoC (see :func:`render_thin_lens`).
    device:
        Torch device for the rendering.
    photo_dirs:
        Folders of extra photo textures (see
        :func:`refocus.bench.scenes.textures.photo_bank`); none by default.
    threads:
        torch CPU threads while generating (see :mod:`refocus.bench.scenes.threads`).
    """
    H, W = size
    if H < 8 or W < 8:
        raise RefocusError(f"scene size must be at least 8x8, got {W}x{H}")
    if not (max_coc_px >= 0):
        raise RefocusError(f"max_coc_px must be >= 0, got {max_coc_px}")
    gen = torch.Generator().manual_seed(int(seed))
    pad = int(math.ceil(max_coc_px * 1.1 + spacing_px)) + 4
    layers, lights = make_layers(gen, 1, size, pad, n_planes=n_planes, n_lights=n_lights, device=device,
                                 photo_dirs=photo_dirs, threads=threads)
    r = _Rand(gen)
    d_planes = layers.disparity[0].cpu().tolist()
    f = _pick_focus(r, d_planes) if focus_disparity is None else float(focus_disparity)
    if not (0.0 <= f <= 1.0):
        raise RefocusError(f"focus_disparity must be in [0, 1], got {f}")
    K = max_coc_px / max(f, 1.0 - f, 1e-6)
    lens_lin, n_samples = render_thin_lens(layers, K, f, aperture, spacing_px=spacing_px, max_cell=0.125,
                                           return_n_samples=True, threads=threads)
    aif_lin, disp = composite_all_in_focus(layers)
    aif_lin_np = aif_lin[0].permute(1, 2, 0).cpu().numpy().astype(np.float32)
    lens_lin_np = lens_lin[0].permute(1, 2, 0).cpu().numpy().astype(np.float32)
    disp_np = disp[0].cpu().numpy().astype(np.float32)
    from refocus.io.color import linear_to_srgb

    return SyntheticScene(
        all_in_focus=linear_to_srgb(aif_lin_np),
        all_in_focus_linear=aif_lin_np,
        lens=linear_to_srgb(lens_lin_np),
        lens_linear=lens_lin_np,
        disparity=disp_np,
        coc_px=coc_map(disp_np, f, K),
        K=float(K),
        focus_disparity=f,
        aperture=aperture or ApertureConfig(),
        camera=CameraParams.from_strength(K, f, W),
        layer_disparities=np.asarray(d_planes, dtype=np.float32),
        lights_xy=lights[0],
        seed=int(seed),
        spacing_px=spacing_px,
        n_samples=int(n_samples),
    )


def frozen_test_set(
    n: int = 12,
    size: tuple[int, int] = (256, 256),
    seed: int = 20240601,
    *,
    max_coc_px: tuple[float, ...] = (4.0, 8.0, 12.0, 16.0),
    spacing_px: float = 1.0,
    photo_dirs: Sequence[str | Path] = (),
    threads: int | None = GENERATION_THREADS,
) -> list[SyntheticScene]:
    """A fixed, deterministic benchmark set.

    Scene ``i`` is ``make_scene(seed + i, size, max_coc_px=max_coc_px[i % len], ...)``
    with the aperture cycling through a disc, a 6-blade polygon and a 5-blade
    curved polygon rotated by 18 degrees. The same arguments give the same images
    on every run (CPU, float32). The textures depend on ``photo_dirs``: the
    benchmark (:mod:`refocus.bench.quality`) passes the shared data's ``photos``
    folder when it exists; other photos, or none, give other scenes.
    """
    apertures = (
        ApertureConfig(shape="disc"),
        ApertureConfig(shape="polygon", blades=6),
        ApertureConfig(shape="polygon", blades=5, curvature=0.3, rotation_deg=18.0),
    )
    return [
        make_scene(seed + i, size, max_coc_px=max_coc_px[i % len(max_coc_px)], aperture=apertures[i % len(apertures)],
                   spacing_px=spacing_px, photo_dirs=photo_dirs, threads=threads)
        for i in range(n)
    ]


def generate_pairs(
    batch: int,
    size: tuple[int, int] = (256, 256),
    device: str | torch.device = "cpu",
    generator: torch.Generator | None = None,
    *,
    max_coc_px: tuple[float, float] = (1.0, 16.0),
    aperture: ApertureConfig | None = None,
    spacing_px: float | None = None,
    n_planes: int = 3,
    n_lights: tuple[int, int] = (0, 8),
    photo_dirs: Sequence[str | Path] = (),
    threads: int | None = GENERATION_THREADS,
) -> dict[str, torch.Tensor]:
    """Training pairs for DeblurNet: lens photo -> all-in-focus.

    The batch shares one focus-independent sample spacing; each item draws its
    own scene, focus (as in :func:`make_scene`) and largest |CoC| uniformly in
    ``max_coc_px``.

    Parameters
    ----------
    batch, size:
        Number of pairs and their (H, W), px.
    device:
        Where the heavy work runs ("cpu" or "cuda").
    generator:
        CPU ``torch.Generator`` for all random choices (default: a fresh unseeded
        one); the same seed gives the same pairs on CPU and GPU up to float error.
    max_coc_px:
        Range of the largest |CoC| radius per item, px.
    spacing_px:
        Aperture sample spacing at each item's largest CoC (see
        :func:`render_thin_lens`); default 4 on the CPU, where the ``"fast"``
        path renders (the spacing only sets how finely occlusion is sampled;
        bokeh shapes come from exact kernels), 1.0 elsewhere (``"grid"``).
    n_planes, n_lights:
        See :func:`make_layers`.
    photo_dirs:
        Folders of extra photo textures (see
        :func:`refocus.bench.scenes.textures.photo_bank`); none by default.
    threads:
        torch CPU threads while generating (see :mod:`refocus.bench.scenes.threads`).

    Returns
    -------
    dict of float32 tensors on ``device``: ``blurred`` and ``sharp`` (B, 3, H, W)
    sRGB in [0, 1]; ``blurred_linear``, ``sharp_linear`` (B, 3, H, W) linear;
    ``disparity`` and ``coc_px`` (B, 1, H, W); ``K`` and ``focus_disparity`` (B,).
    """
    gen = generator if generator is not None else torch.Generator()
    if gen.device.type != "cpu":
        raise RefocusError("generate_pairs needs a CPU torch.Generator (random draws are made on the CPU)")
    if batch < 1:
        raise RefocusError(f"batch must be >= 1, got {batch}")
    lo, hi = max_coc_px
    if not (0 <= lo <= hi):
        raise RefocusError(f"max_coc_px must be an increasing range of non-negative radii, got {max_coc_px}")
    dev = torch.device(device)
    if spacing_px is None:
        spacing_px = 4.0 if dev.type == "cpu" else 1.0
    method = "fast" if dev.type == "cpu" else "grid"
    # The fast path's samples reach |t| (1 + cell / 2) px plus half their box of
    # cell * |t| <= spacing px (see _trace_fast); the grid path needs margin for
    # its prefilter and bilinear reads.
    pad = int(math.ceil(hi + spacing_px)) + 1 if method == "fast" else int(math.ceil(hi * 1.1 + spacing_px)) + 4
    with cpu_threads(dev, threads):
        return _generate_pairs(gen, batch, size, dev, method, pad, aperture, spacing_px, n_planes, n_lights, lo, hi,
                               photo_dirs, threads)


def _generate_pairs(gen, batch, size, dev, method, pad, aperture, spacing_px, n_planes, n_lights, lo, hi,
                    photo_dirs, threads):
    r = _Rand(gen)
    f, m, results = [], [], []
    # Item by item (draws in the same order on every device): the canvases stay
    # small and warm in cache instead of one large batch allocation. (Threads do
    # not help here: two threads rendering ran no faster than one, the many small
    # tensor operations being bound by the GIL; two processes gave 1.7x.)
    for _ in range(batch):
        layers, _ = make_layers(gen, 1, size, pad, n_planes=n_planes, n_lights=n_lights, device=dev,
                                photo_dirs=photo_dirs, threads=threads)
        f.append(_pick_focus(r, layers.disparity[0].cpu().tolist()))
        m.append(r.u(lo, hi))
        if method != "fast":
            results.append(layers)
            continue
        K_b = m[-1] / max(f[-1], 1 - f[-1], 1e-6)
        blurred = render_thin_lens(layers, K_b, f[-1], aperture, spacing_px=spacing_px, method=method,
                                   threads=threads)
        results.append((blurred, *composite_all_in_focus(layers)))
    f_t = torch.tensor(f, dtype=torch.float32)
    K = torch.tensor(m, dtype=torch.float32) / torch.maximum(f_t, 1 - f_t).clamp(min=1e-6)
    if method == "fast":
        blurred_lin, sharp_lin, disp = (torch.cat(parts) for parts in zip(*results))
    else:
        layers = Layers(torch.cat([it.rgba for it in results]), torch.cat([it.disparity for it in results]), pad)
        blurred_lin = render_thin_lens(layers, K.to(dev), f_t.to(dev), aperture, spacing_px=spacing_px, method=method,
                                       threads=threads)
        sharp_lin, disp = composite_all_in_focus(layers)
    K_d, f_d = K.to(dev), f_t.to(dev)
    return {
        "blurred": _linear_to_srgb_t(blurred_lin),
        "sharp": _linear_to_srgb_t(sharp_lin),
        "blurred_linear": blurred_lin,
        "sharp_linear": sharp_lin,
        "disparity": disp[:, None],
        "coc_px": signed_coc_px(disp[:, None], f_d[:, None, None, None], K_d[:, None, None, None]),
        "K": K_d,
        "focus_disparity": f_d,
    }


def save_scene(scene: SyntheticScene, folder: str | Path) -> Path:
    """Write a scene for inspection: PNGs (16-bit) plus .npy arrays and meta.json.

    Files: ``all_in_focus.png``, ``lens.png``, ``disparity.png`` (16-bit, [0, 1]),
    ``*_linear.npy``, ``disparity.npy``, ``coc_px.npy``, ``meta.json``.
    """
    import json

    from refocus.io import atomic_write_bytes, write_image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_image(folder / "all_in_focus.png", scene.all_in_focus, bit_depth=16)
    write_image(folder / "lens.png", scene.lens, bit_depth=16)
    write_image(folder / "disparity.png", np.repeat(scene.disparity[..., None], 3, axis=2), bit_depth=16)

    for name in ("all_in_focus_linear", "lens_linear", "disparity", "coc_px"):
        arr = getattr(scene, name)
        # np.save appends ".npy" to bare paths, so hand it an open file.
        atomic_write_bytes(folder / f"{name}.npy", lambda tmp, arr=arr: _save_npy(tmp, arr))
    meta = {
        "K": scene.K,
        "focus_disparity": scene.focus_disparity,
        "aperture": scene.aperture.model_dump(),
        "camera": scene.camera.__dict__,
        "layer_disparities": scene.layer_disparities.tolist(),
        "lights_xy": scene.lights_xy.tolist(),
        "seed": scene.seed,
        "spacing_px": scene.spacing_px,
        "n_samples": scene.n_samples,
        "disparity_normalised": True,
    }
    atomic_write_bytes(folder / "meta.json", lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=2)))
    return folder


def _save_npy(path, arr: np.ndarray) -> None:
    with open(path, "wb") as fh:
        np.save(fh, arr)
