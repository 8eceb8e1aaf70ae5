"""Pictures of the intermediate maps, and saving them (``--save-intermediate``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from refocus.errors import RefocusError

# A perceptually ordered dark-blue -> yellow ramp (anchor colours of "viridis").
_RAMP = np.array(
    [[0.267, 0.005, 0.329], [0.231, 0.322, 0.545], [0.129, 0.569, 0.549], [0.369, 0.788, 0.384], [0.993, 0.906, 0.144]],
    dtype=np.float32,
)

#: Colours of the signed CoC view: in front of the focal plane, behind it, in focus.
FRONT_RGB = np.array([1.0, 0.45, 0.08], dtype=np.float32)
BEHIND_RGB = np.array([0.15, 0.45, 1.0], dtype=np.float32)
IN_FOCUS_RGB = np.array([0.25, 1.0, 0.35], dtype=np.float32)


def disparity_to_rgb(disparity: np.ndarray) -> np.ndarray:
    """Normalised disparity (larger = nearer) -> colour (near = yellow, far = dark blue)."""
    d = np.clip(np.nan_to_num(np.asarray(disparity, dtype=np.float32)), 0, 1)
    x = d * (len(_RAMP) - 1)
    i = np.minimum(x.astype(np.int64), len(_RAMP) - 2)
    f = (x - i)[..., None]
    return (_RAMP[i] * (1 - f) + _RAMP[i + 1] * f).astype(np.float32)


def coc_to_rgb(coc_px: np.ndarray, image: np.ndarray | None = None, in_focus_px: float = 0.5) -> np.ndarray:
    """Signed CoC -> colour: orange in front, blue behind, green in focus.

    Brightness grows with |CoC| (relative to the largest in the map). With an
    ``image``, the colours are laid over its dimmed grey version for orientation.
    """
    c = np.nan_to_num(np.asarray(coc_px, dtype=np.float32))
    a = np.abs(c)
    t = np.clip(a / max(float(a.max()), 1e-6), 0, 1)[..., None]
    col = np.where((c > 0)[..., None], FRONT_RGB, BEHIND_RGB) * (0.25 + 0.75 * t)
    col = np.where((a <= in_focus_px)[..., None], IN_FOCUS_RGB, col)
    if image is not None:
        g = np.asarray(image, dtype=np.float32)[..., :3].mean(axis=2, keepdims=True)
        col = 0.6 * col + 0.4 * g
    return np.clip(col, 0, 1).astype(np.float32)


#: The files :func:`save_intermediates` writes into its folder.
INTERMEDIATE_NAMES = (
    "all_in_focus.png", "disparity.png", "coc.png", "input_blur.png",
    "disparity.npy", "coc_px.npy", "input_blur_px.npy", "settings.json",
)


def intermediate_paths(folder: str | Path) -> list[Path]:
    """Where :func:`save_intermediates` writes (for the output checks, before any work)."""
    return [Path(folder) / n for n in INTERMEDIATE_NAMES]


def save_intermediates(result, folder: str | Path) -> list[Path]:
    """Write the all-in-focus image, disparity and signed CoC (colour PNG + .npy).

    Returns the paths written. The folder is created if missing.
    """
    from refocus.io import atomic_write_bytes, write_image

    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RefocusError(f"cannot create folder {folder}: {exc.strerror or exc}") from None
    written = [
        write_image(folder / "all_in_focus.png", result.all_in_focus, bit_depth=16),
        write_image(folder / "disparity.png", disparity_to_rgb(result.disparity), bit_depth=8),
        write_image(folder / "coc.png", coc_to_rgb(result.coc_px, result.all_in_focus), bit_depth=8),
        write_image(folder / "input_blur.png", disparity_to_rgb(np.clip(np.nan_to_num(result.input_blur_px, posinf=10) / 10, 0, 1)), bit_depth=8),
    ]
    for name, arr in (("disparity.npy", result.disparity), ("coc_px.npy", result.coc_px), ("input_blur_px.npy", result.input_blur_px)):
        written.append(atomic_write_bytes(folder / name, lambda p, a=arr: np.save(p, np.asarray(a, dtype=np.float32))))
    meta = {
        "focus_disparity": result.focus_disparity,
        "strength_px": result.strength,
        "deblurred": result.deblurred,
        "all_in_focus_source": getattr(result, "all_in_focus_source", ""),
        "depth_source": result.depth_source,
        "notes": result.notes,
        "timings_s": result.timings_s,
        "config": json.loads(result.config.model_dump_json()),
    }
    written.append(atomic_write_bytes(folder / "settings.json", lambda p: Path(p).write_text(json.dumps(meta, indent=2))))
    return written
