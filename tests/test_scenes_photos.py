"""The scene generators' explicit inputs (issue 17): photo folders and torch's thread count."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from refocus.bench.scenes import cpu_threads, make_layers, make_scene, photo_bank
from refocus.errors import RefocusError


def _photos(folder, n=2):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(folder / f"p{i}.jpg")
    (folder / "notes.txt").write_text("not a photo")
    return folder


def test_photo_dirs_add_their_jpgs_after_the_bundled_photos(tmp_path):
    folder = _photos(tmp_path / "photos")
    base, more = photo_bank(), photo_bank([folder])
    assert len(more) == len(base) + 2
    assert all(torch.equal(a, b) for a, b in zip(base, more))
    assert more[-1].shape == (3, 40, 60)
    assert photo_bank(str(folder)) is more  # one path alone, cached per tuple of folders


def test_photo_dirs_change_the_scenes_and_a_missing_folder_is_an_error(tmp_path):
    folder = _photos(tmp_path / "photos", n=5)
    gen = lambda: torch.Generator().manual_seed(4)  # noqa: E731
    a, _ = make_layers(gen(), 1, (24, 24), 4, photo_prob=1.0)
    b, _ = make_layers(gen(), 1, (24, 24), 4, photo_prob=1.0, photo_dirs=[folder])
    assert not torch.equal(a.rgba, b.rgba)
    with pytest.raises(RefocusError, match="does not exist"):
        make_scene(0, (16, 16), photo_dirs=[tmp_path / "missing"])


def test_threads_are_set_only_while_generating():
    before = torch.get_num_threads()
    with pytest.raises(ValueError):
        with cpu_threads("cpu", 1):
            assert torch.get_num_threads() == 1
            raise ValueError
    assert torch.get_num_threads() == before
    with cpu_threads("cpu", None):
        assert torch.get_num_threads() == before
    make_scene(3, (24, 24))
    make_scene(3, (24, 24), threads=None)
    assert torch.get_num_threads() == before
    with pytest.raises(RefocusError, match="threads"):
        make_scene(0, (16, 16), threads=0)
