"""Defects found trying refocus on large and odd-shaped photos (24-48 MP, panoramas,
strips, tiny images), each reproduced on small images."""

from __future__ import annotations

import numpy as np
import pytest

from refocus.render import RenderConfig, coc_map, render_linear


@pytest.mark.parametrize(
    "h, w, s_max",
    [(150, 6000, 2), (300, 12000, 2), (1500, 12000, 2), (9000, 900, 2), (6000, 150, 1), (3000, 4000, 2)],
)
def test_tile_sparse_grid_does_not_pad_a_strip_to_the_long_sides_tile(h, w, s_max):
    """The tile-sparse layers pad the frame to a multiple of their largest tile, which
    was chosen from the long side only: a 150 x 6000 strip was rendered as 1024 x 6144
    (7 x its pixels: 7.2 s and 0.92 GB against 2.7 s and 0.46 GB once fixed), a
    12000 x 1500 panorama as 1.4 x its pixels."""
    from refocus.render.plan import sparse_tile_max

    t = sparse_tile_max(h, w, s_max)
    grid = t * s_max
    padded = (-(-h // grid) * grid) * (-(-w // grid) * grid)
    # 64 px tiles are the smallest (the band tiles' size): a strip narrower than
    # a 64 * s_max grid keeps some padding.
    floor = (-(-h // (64 * s_max)) * 64 * s_max) * (-(-w // (64 * s_max)) * 64 * s_max)
    assert padded <= max(1.125 * h * w, floor), (t, padded / (h * w))
    assert t >= 64


def test_strip_renders_the_same_with_its_smaller_grid():
    """The smaller grid of a strip changes where the frame ends, not the picture:
    the tile-sparse render of a strip stays as close to the dense algorithm as
    that of a square frame."""
    from refocus.render.backends import cpu_backend
    from refocus.render.layered import render_layers

    rng = np.random.default_rng(5)
    h, w = 48, 1500
    img = rng.random((h, w, 3)).astype(np.float32)
    xx = np.linspace(0.0, 1.0, w, dtype=np.float32)[None, :].repeat(h, 0)
    coc = coc_map(xx, 0.5, 20.0)
    a = render_linear(img, coc, RenderConfig())
    be = cpu_backend()
    be.tile_sparse = False
    b = render_layers(img, coc, RenderConfig(), be)
    e = np.abs(a - b).max(axis=2)
    assert e.mean() < 8e-3 and np.percentile(e, 99) < 5e-2


def _guard_reference(image, aif, defocus_px, cfg):
    """The guard as first written (expression form), for equality."""
    from scipy import ndimage as ndi

    from refocus.deblur.guard import _trust

    size = (2 * cfg.range_radius_px + 1,) * 2 + (1,)
    out = np.clip(aif, ndi.minimum_filter(image, size=size), ndi.maximum_filter(image, size=size))
    out = image + _trust(defocus_px, cfg)[..., None].astype(np.float32) * (out - image)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def test_deblur_guard_needs_few_frames_of_memory():
    """DeblurNet's guard on a 48 MP photo (576 MB per frame) made six temporary frames:
    3.4-4 frames on top of its inputs at its peak (the whole 48 MP deblur peaked at
    4.46 GB). Worked in place it needs 2.3, and 1.3 when it may write into the
    prediction, as deblur() lets it; the result is the same to the bit."""
    import tracemalloc

    from refocus.deblur.guard import GuardConfig, guard_output

    rng = np.random.default_rng(1)
    img = rng.random((300, 400, 3), dtype=np.float32)
    aif = np.clip(img + 0.1 * rng.standard_normal(img.shape).astype(np.float32), 0, 1)
    defocus = (6 * rng.random(img.shape[:2])).astype(np.float32)
    cfg = GuardConfig()
    ref = _guard_reference(img, aif, defocus, cfg)
    # Measured here: 3.36 frames before; 2.33, and 1.33 writing into the prediction.
    for overwrite, frames in ((False, 2.6), (True, 1.6)):
        pred = aif.copy()
        kw = {"overwrite": True} if overwrite else {}
        tracemalloc.start()
        try:
            out = guard_output(img, pred, defocus, cfg, **kw)
            peak = tracemalloc.get_traced_memory()[1] / img.nbytes
        finally:
            tracemalloc.stop()
        np.testing.assert_array_equal(out, ref)
        assert overwrite or np.array_equal(pred, aif)  # the caller's array is left alone unless given away
        assert peak <= frames, (overwrite, peak)
