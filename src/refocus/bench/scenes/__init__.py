"""Synthetic scenes with exact ground truth: the project's two scene generators.

Both draw "dead leaves" scenes (planes of random textured shapes at known
disparities) and render them sharp and through a thin lens with true partial
occlusion; they differ in what they are for.

**Ray-traced scenes** (:mod:`.scenes`, torch): :func:`make_scene`,
:func:`frozen_test_set`, :func:`generate_pairs`, :func:`save_scene`. Fronto-parallel
layers (:mod:`.layers`) with point lights brighter than white, rendered by averaging
pinhole views over the aperture (:mod:`.thin_lens`, exact; :mod:`.fast`, the
control variate for training pairs on the CPU). The benchmark's ground truth:
``refocus bench quality --data synthetic`` scores every method on
:func:`frozen_test_set` (:mod:`refocus.bench.quality`); :func:`generate_pairs`
makes DeblurNet training batches with highlights, on the CPU or a GPU.

**Layered training pairs** (:mod:`.pairs`, numpy): :func:`make_pair`,
:func:`degrade`, :func:`frozen_pair_set`. Each layer blurred by its aperture kernel
and composited (a slanted background, no lights), then camera-like degradations.
The data the shipped DeblurNet was trained on (``training/make_dataset.py``,
``training/train_deblurnet.py``) and validated on (:func:`frozen_pair_set`).

Textures (:mod:`.textures`) are photos bundled with scikit-image, and for the
ray-traced scenes also the ``*.jpg`` photos of the folders a caller passes as
``photo_dirs`` (:func:`photo_bank`): never a folder found from the package's own
location. The benchmark passes ``shared_data_dir() / "photos"`` when it exists.
The generators' torch CPU thread count is their ``threads`` argument
(:mod:`.threads`), set only while they run.

Outputs are deterministic: the same seed (and photos) gives the same images, bit for
bit, on the CPU.
"""

from __future__ import annotations

from refocus.bench.scenes.layers import Layers, make_layers
from refocus.bench.scenes.pairs import Pair, degrade, frozen_pair_set, make_pair
from refocus.bench.scenes.scenes import (
    CameraParams,
    SyntheticScene,
    frozen_test_set,
    generate_pairs,
    make_scene,
    save_scene,
)
from refocus.bench.scenes.textures import photo_bank, texture_pool
from refocus.bench.scenes.thin_lens import aperture_samples, composite_all_in_focus, render_thin_lens
from refocus.bench.scenes.threads import GENERATION_THREADS, cpu_threads

__all__ = [
    "GENERATION_THREADS",
    "CameraParams",
    "Layers",
    "Pair",
    "SyntheticScene",
    "aperture_samples",
    "composite_all_in_focus",
    "cpu_threads",
    "degrade",
    "frozen_pair_set",
    "frozen_test_set",
    "generate_pairs",
    "make_layers",
    "make_pair",
    "make_scene",
    "photo_bank",
    "render_thin_lens",
    "save_scene",
    "texture_pool",
]
