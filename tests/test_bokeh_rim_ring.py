"""Bright-rimmed, soft and ring-shaped discs (ApertureConfig.rim and .ring; --rim, --ring)."""

import numpy as np
import pytest

from refocus.aperture import ApertureConfig, kernel
from refocus.errors import RefocusError


def _radial(k: np.ndarray) -> np.ndarray:
    """Mean kernel weight by distance from its centre, in whole pixels."""
    c = k.shape[0] // 2
    yy, xx = np.mgrid[: k.shape[0], : k.shape[1]]
    r = np.rint(np.hypot(yy - c, xx - c)).astype(int)
    return np.bincount(r.ravel(), k.ravel()) / np.bincount(r.ravel())


@pytest.mark.parametrize("shape", ["disc", "polygon"])
def test_a_rim_is_bright_behind_the_focal_plane_and_soft_in_front(shape):
    cfg = ApertureConfig(shape=shape, blades=7, rim=1.0)
    behind, front = _radial(kernel(cfg, 16.0)), _radial(kernel(cfg, 16.0, front=True))
    assert kernel(cfg, 16.0).sum() == pytest.approx(1.0, abs=1e-5)
    assert behind[14] > 2.5 * behind[0]  # the soap bubble's rim
    assert front[14] < front[0]  # in front: the edge fades
    # A negative rim is the other lens: soft behind, rimmed in front.
    reverse = ApertureConfig(shape=shape, blades=7, rim=-1.0)
    np.testing.assert_allclose(kernel(reverse, 16.0)[::-1, ::-1], kernel(ApertureConfig(shape=shape, blades=7, rim=1.0), 16.0,
                                                                            front=True), atol=0.15 * kernel(cfg, 16.0).max())
    plain = _radial(kernel(ApertureConfig(shape=shape, blades=7), 16.0))
    assert plain[12] == pytest.approx(plain[0], rel=0.05)


def test_a_ring_blocks_the_centre():
    k = kernel(ApertureConfig(ring=0.5), 20.0)
    prof = _radial(k)
    assert prof[:9].max() == 0.0 and prof[14] > 0  # blocked inside half the radius
    assert k.sum() == pytest.approx(1.0, abs=1e-5)


def test_rims_and_rings_are_for_drawn_shapes_and_have_their_own_kernels():
    img = np.ones((5, 5), np.float32)
    with pytest.raises(ValueError, match="custom image carries its own"):
        ApertureConfig(shape="custom", image=img, rim=0.5)
    with pytest.raises(ValueError):
        ApertureConfig(ring=0.95)
    with pytest.raises(RefocusError, match="invalid --ring"):  # through the settings, one line
        from refocus.pipeline.options import build_aperture

        build_aperture("disc", ring=0.95)
    # The kernel cache tells them apart from the plain disc.
    assert not np.array_equal(kernel(ApertureConfig(rim=0.5), 10.0), kernel(ApertureConfig(), 10.0))
    assert not np.array_equal(kernel(ApertureConfig(ring=0.3), 10.0), kernel(ApertureConfig(), 10.0))


def test_a_point_light_renders_as_a_soap_bubble(tmp_path, capsys):
    """Through the renderer and the command line: a light behind the focal plane draws
    a disc brighter at its rim than at its centre with --rim, and a ring with --ring."""
    from refocus.cli import main
    from refocus.io import read_image, write_image

    h, w = 96, 96
    img = np.full((h, w, 3), 0.02, np.float32)
    img[48, 48] = 1.0
    write_image(tmp_path / "p.png", img)
    np.save(tmp_path / "d.npy", np.zeros((h, w), np.float32))
    rows = {}
    for name, flags in (("plain", []), ("rim", ["--rim", "1"]), ("ring", ["--ring", "0.6"])):
        out = tmp_path / f"{name}.png"
        with pytest.raises(SystemExit) as exc:
            main(["render", str(tmp_path / "p.png"), "--depth", str(tmp_path / "d.npy"), "--focus-value", "1",
                  "--no-normalize", "-k", "20", "-o", str(out), "--bit-depth", "16", *flags])
        assert (exc.value.code or 0) == 0, capsys.readouterr().err
        rows[name] = read_image(out)[0][48, 48:72, 1]  # from the centre out to beyond the rim
    assert rows["plain"][14] == pytest.approx(rows["plain"][2], abs=2 / 255)
    assert rows["rim"][16] > rows["rim"][2] + 2 / 255
    assert rows["ring"][2] < rows["ring"][16] - 2 / 255
