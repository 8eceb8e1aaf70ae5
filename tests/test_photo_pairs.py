"""Photo-like DeblurNet training pairs (training/photo_pairs.py) and their trainer."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage


@pytest.fixture(scope="module")
def pool_dir(tmp_path_factory, training_module):
    """A pool from 10 small 'corpus' photos (crops of scikit-image pictures) + scikit-image's own."""
    import skimage.data as skd
    from PIL import Image

    pp = training_module("photo_pairs")
    root = tmp_path_factory.mktemp("pool")
    corpus = root / "corpus"
    corpus.mkdir()
    src = skd.astronaut()
    for i in range(10):
        Image.fromarray(np.ascontiguousarray(src[i * 20:i * 20 + 300, i * 15:i * 15 + 300])).save(corpus / f"cam{i:02d}.jpg")
    (corpus / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    counts = pp.build_pool(corpus, root / "pool", long_side_px=256)
    return root / "pool", counts


def test_pool_holds_out_every_fifth_photo(pool_dir):
    path, counts = pool_dir
    # 10 good corpus files + 1 broken (sorted first, skipped, but it still counts in the order).
    held = sorted(p.stem for p in (path / "holdout").glob("*.jpg"))
    train = {p.stem for p in (path / "train").glob("*.jpg")}
    assert held and not (set(held) & train)
    assert counts["holdout"] == len(held) == 2
    assert {"skimage-astronaut", "skimage-coffee"} <= train  # scikit-image photos train only
    assert (path / "motorcycle.npz").is_file()


def test_pair_is_consistent(pool_dir, training_module):
    pp = training_module("photo_pairs")
    pool = pp.load_pool(pool_dir[0])
    for i in range(3):
        p = pp.make_pair(np.random.default_rng([3, i]), pool, size=96)
        assert p["input"].shape == p["target"].shape == (96, 96, 3) and p["input"].dtype == np.uint8
        assert p["defocus_px"].shape == (96, 96)
        d, coc = p["defocus_px"].astype(np.float32), np.abs(p["coc_px"].astype(np.float32))
        # The observable defocus never exceeds the true |CoC|, and both stay within the drawn range.
        assert (d <= coc + 1e-2).all() and coc.max() <= pp.MAX_COC_PX + 1e-3


def test_clean_target_skips_the_mosaic_and_keeps_the_stream(pool_dir, training_module):
    """--clean-target: the target carries no demosaicing fringes (the raw photo net drew
    them on a real Lytro capture), and the pairs are otherwise the same draws."""
    pp = training_module("photo_pairs")
    pool = pp.load_pool(pool_dir[0])
    for i in range(6):
        a = pp.make_pair(np.random.default_rng([5, i]), pool, size=96)
        b = pp.make_pair(np.random.default_rng([5, i]), pool, size=96, clean_target=True)
        np.testing.assert_array_equal(a["input"], b["input"])
        np.testing.assert_array_equal(a["coc_px"], b["coc_px"])
        if not np.array_equal(a["target"], b["target"]):
            return
    pytest.fail("no camera with a Bayer mosaic drawn in 6 pairs, or the clean target changed nothing")


def test_observable_defocus_is_zero_where_nothing_changed(training_module):
    pp = training_module("photo_pairs")
    rng = np.random.default_rng(0)
    sharp = np.full((64, 64, 3), 0.5, np.float32)
    sharp[:, 32:] = rng.random((64, 32, 3))  # textured right half
    blurred = sharp.copy()
    blurred[:, 32:] = 0.5  # blur removed the texture: a visible change on the right only
    coc = np.full((64, 64), 5.0, np.float32)
    d = pp.observable_defocus(coc, sharp, blurred)
    assert d[:, :20].max() == 0.0  # flat: the blur there cannot be seen
    assert d[:, 40:].min() == pytest.approx(5.0)


def test_camera_target_is_clean_and_input_noisy(training_module):
    pp = training_module("photo_pairs")
    cam = pp.Camera(optics_sigma_px=0.5, exposure=1.0, gamma=1.0, bayer=True, shot=1e-3, read=1e-3,
                    denoise_sigma_px=0.0, sharpen_amount=0.0, sharpen_sigma_px=1.0, jpeg_quality=80)
    flat = np.full((64, 64, 3), 0.2, np.float32)
    clean = cam(flat)
    noisy = cam(flat, np.random.default_rng(0))
    assert np.ptp(clean[8:-8, 8:-8]) < 1e-5  # same camera, no noise, no JPEG
    assert noisy[8:-8, 8:-8].std() > 0.004  # ~2/255 after demosaicing and JPEG


def test_tiny_training_run_saves_loadable_weights(pool_dir, tmp_path, training_module):
    tr = training_module("train_photo_deblurnet")
    from refocus.deblur.infer import load_model

    out = tmp_path / "w.pt"
    res = tr.main(["--pool", str(pool_dir[0]), "--device", "cpu", "--workers", "1", "--threads", "1",
                   "--batch", "2", "--crop", "32", "--size", "64", "--width", "8", "--enc-blocks", "1,1",
                   "--middle-blocks", "1", "--dec-blocks", "1,1", "--time-budget", "3", "--val-n", "2",
                   "--min-buffer", "4", "--val-every", "1000", "--out", str(out), "--log", str(tmp_path / "log")])
    assert res["step"] > 0 and np.isfinite(res["val"]["psnr_out"])
    model = load_model(out)
    assert model.config.width == 8


def test_processed_photos_carry_no_camera_noise(pool_dir, training_module):
    """--processed P: that share of pairs comes from an already-processed photo (no mosaic,
    noise, sharpening or JPEG), so where the scene was in focus the input equals the target;
    at P = 0 the stream of pairs is the shipped weights' one."""
    pp = training_module("photo_pairs")
    pool = pp.load_pool(pool_dir[0])
    noisy, clean = [], []
    for i in range(4):
        a = pp.make_pair(np.random.default_rng([7, i]), pool, size=96)
        z = pp.make_pair(np.random.default_rng([7, i]), pool, size=96, processed=0.0)
        np.testing.assert_array_equal(a["input"], z["input"])
        b = pp.make_pair(np.random.default_rng([7, i]), pool, size=96, processed=1.0)
        for pair, out in ((a, noisy), (b, clean)):
            sharp = np.abs(pair["coc_px"].astype(np.float32)) < 0.05
            sharp = ndimage.binary_erosion(sharp, iterations=3)  # away from blurred neighbours
            if sharp.sum() > 50:
                diff = np.abs(pair["input"].astype(np.int16) - pair["target"].astype(np.int16))[sharp]
                out.append(float(diff.mean()))
    assert clean and noisy, "no in-focus region drawn in 4 pairs"
    assert max(clean) < 0.5 < max(noisy), (clean, noisy)


def test_in_focus_highlights_are_the_same_in_input_and_target(pool_dir, training_module, monkeypatch):
    """Half the scenes boost their highlights above 1 before the blur; the target must be
    the sharp photo of that same scene, so with no blur at all and an already-processed
    camera the input equals the target, highlights included. (The target was the
    unboosted scene: highlights up to 63/255 brighter in the input, and the net learned
    to darken bright regions.)"""
    pp = training_module("photo_pairs")
    monkeypatch.setattr(pp, "_draw_strength", lambda rng: 0.0)  # every lens in focus everywhere
    pool = pp.load_pool(pool_dir[0])
    bright_px, worst = 0, 0
    for i in range(8):
        p = pp.make_pair(np.random.default_rng([11, i]), pool, size=96, processed=1.0)
        assert not np.any(p["coc_px"])
        bright_px += int((p["target"].max(axis=2) > 200).sum())
        worst = max(worst, int(np.abs(p["input"].astype(np.int16) - p["target"].astype(np.int16)).max()))
    assert bright_px > 500, "too few highlights drawn to test"
    assert worst <= 1, worst
