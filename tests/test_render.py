"""The bokeh renderer: physics it must get right, and how it treats bad input."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
from scipy import ndimage

from refocus.aperture import ApertureConfig, kernel
from refocus.errors import RefocusError
from refocus.pipeline.bokeh import render_bokeh
from refocus.render import RenderConfig, coc_map, render_linear

EXACT = RenderConfig(highlight_gain=0.0)


def point_light(size: int = 97, value: float = 1.0) -> np.ndarray:
    img = np.zeros((size, size, 3), np.float32)
    img[size // 2, size // 2] = value
    return img


def half_max_mask(a: np.ndarray) -> np.ndarray:
    return a > 0.5 * a.max()


@pytest.mark.parametrize("radius", [4.0, 9.5, 21.0])
@pytest.mark.parametrize("shape", ["disc", "polygon"])
def test_point_light_renders_to_the_kernel(radius, shape):
    cfg = RenderConfig(highlight_gain=0.0, aperture=ApertureConfig(shape=shape, blades=5))
    img = point_light()
    coc = np.full(img.shape[:2], -radius, np.float32)  # behind the focal plane
    out = render_linear(img, coc, cfg)[..., 0]
    assert abs(out.sum() - 1.0) < 0.02, "energy must be conserved within 2 %"
    ref = kernel(cfg.aperture, radius)
    ref_img = np.zeros_like(out)
    h = ref.shape[0] // 2
    c = out.shape[0] // 2
    ref_img[c - h : c + h + 1, c - h : c + h + 1] = ref
    m_out, m_ref = half_max_mask(out), half_max_mask(ref_img)
    iou = (m_out & m_ref).sum() / (m_out | m_ref).sum()
    assert iou > 0.9, f"shape differs from the aperture kernel (IoU {iou:.3f})"
    # Radius of the half-maximum region, against the kernel's own area at that radius.
    r_out = np.sqrt(m_out.sum() / np.pi)
    r_ref = np.sqrt(m_ref.sum() / np.pi)
    assert abs(r_out - r_ref) <= 0.5
    if shape == "disc":
        assert abs(r_out - radius) <= 0.5


@pytest.mark.parametrize("radius", [5.0, 14.0])
def test_point_in_front_is_rotated_180_degrees(radius):
    cfg = RenderConfig(highlight_gain=0.0, aperture=ApertureConfig(shape="polygon", blades=5))
    img = point_light()
    behind = render_linear(img, np.full(img.shape[:2], -radius, np.float32), cfg)[..., 0]
    front = render_linear(img, np.full(img.shape[:2], radius, np.float32), cfg)[..., 0]
    # Exact at full resolution; within resampling error where the layer is downsampled
    # (at radius 14 drawn at half size, as "high" always drew it and "balanced" does
    # for blades since 2026-12-07: 0.12 of the peak on a few rim pixels).
    tol = 1e-5 if radius < cfg.full_res_max_radius() else 0.15 * behind.max()
    np.testing.assert_allclose(front, behind[::-1, ::-1], atol=tol)
    assert np.abs(front - behind).max() > 0.1 * behind.max(), "a 5-blade kernel is not symmetric under 180 degrees"


def test_point_light_in_front_of_sharp_background_conserves_energy():
    img = point_light(81)
    coc = np.zeros(img.shape[:2], np.float32)
    coc[40, 40] = 10.0
    out = render_linear(img, coc, EXACT)[..., 0]
    assert abs(out.sum() - 1.0) < 0.02
    assert np.sqrt(half_max_mask(out).sum() / np.pi) == pytest.approx(10.0, abs=0.5)


def test_strength_zero_and_focal_plane_are_unchanged(rng):
    img = rng.random((64, 80, 3)).astype(np.float32)
    disp = np.zeros((64, 80), np.float32)
    disp[20:44, 20:60] = 1.0
    out = render_bokeh(img, disp, strength=0.0, focus_disparity=0.0)
    assert np.abs(out - img).max() <= 1 / 255
    # Focus on the background: its pixels farther than max CoC from the square stay put.
    out = render_bokeh(img, disp, strength=6.0, focus_disparity=0.0)
    # Beyond the square's CoC (6 px) plus the resampling reach of its half-size layer.
    far = ndimage.distance_transform_edt(disp == 0) > 11
    assert np.abs(out - img)[far].max() <= 1 / 255
    assert np.abs(out - img)[disp == 1].max() > 0.05  # and the square did blur


@pytest.mark.parametrize("radius", [-4.3, 3.0])
def test_constant_disparity_equals_reference_convolution(rng, radius):
    aper = ApertureConfig(shape="polygon", blades=6, curvature=0.3, rotation_deg=10)
    cfg = RenderConfig(highlight_gain=0.0, aperture=aper)
    img = rng.random((48, 56, 3)).astype(np.float32)
    coc = np.full(img.shape[:2], radius, np.float32)
    out = render_linear(img, coc, cfg)
    k = kernel(aper, abs(radius), front=radius > 0)
    ref = np.stack([ndimage.convolve(img[..., c], k, mode="nearest") for c in range(3)], axis=2)
    np.testing.assert_allclose(out, ref, atol=1e-4)


def two_planes(fg_coc: float, bg_coc: float, size: int = 96):
    img = np.zeros((size, size, 3), np.float32)
    img[...] = (0.8, 0.05, 0.05)  # red background
    sq = np.zeros((size, size), bool)
    sq[28:68, 28:68] = True
    img[sq] = (0.05, 0.8, 0.05)  # green square in front
    coc = np.where(sq, fg_coc, bg_coc).astype(np.float32)
    return img, coc, sq


def test_sharp_foreground_is_not_eaten_by_blurred_background():
    img, coc, sq = two_planes(0.0, -8.0)
    out = render_linear(img, coc, EXACT)
    assert np.abs(out[sq] - img[sq]).max() < 1 / 255, "background leaked into the sharp square"
    # Outside, the background next to the square blurs but must not pick up green.
    ring = ndimage.binary_dilation(sq, iterations=6) & ~sq
    assert out[ring][:, 1].max() < 0.06


def test_sharp_foreground_over_a_strongly_blurred_background():
    """A background blurred enough for the coarse levels (weights from the
    half-resolution image and CoC) still never leaks into, or takes colour from, a
    sharp foreground: depth edges on the half-resolution grid straddle both."""
    img, coc, sq = two_planes(0.0, -24.0, size=160)
    sq_odd = np.zeros_like(sq)
    sq_odd[41:100, 45:104] = True  # edges on odd rows/columns: blocks straddle them
    img[sq], img[sq_odd] = (0.8, 0.05, 0.05), (0.05, 0.8, 0.05)
    coc = np.where(sq_odd, 0.0, -24.0).astype(np.float32)
    out = render_linear(img, coc, EXACT)
    assert np.abs(out[sq_odd] - img[sq_odd]).max() < 1 / 255, "background leaked into the sharp square"
    ring = ndimage.binary_dilation(sq_odd, iterations=8) & ~sq_odd
    assert out[ring][:, 1].max() < 0.06, "the blurred background picked up the foreground's green"
    assert np.abs(out[10:30, 10:30] - img[10:30, 10:30]).max() < 0.02  # flat red stays red


@pytest.mark.parametrize("quality", ["fast", "balanced", "high"])
def test_a_bright_sharp_subject_does_not_glow_over_its_blurred_background(quality):
    """A half-resolution block straddling the outline took the background's CoC with
    the block's mean colour, half the subject's: a bright subject glowed over the
    blurred background next to it (a 0.9 disc on 0.05 at CoC 16 px: 0.074 at its
    outline against 0.060 farther out, a visible rim in sRGB; 2026-12-07). Then the
    blocks beside the outline, which the half-resolution splat reads across it:
    a glow of 0.0044 at CoC 18 px with "balanced", 0.005 at 12 px with "fast"
    (2026-12-07, later)."""
    h = w = 256
    yy, xx = np.mgrid[:h, :w]
    r = np.hypot(xx - 128.5, yy - 128.5)
    subject = r < 60
    img = np.full((h, w, 3), 0.05, np.float32)
    img[subject] = 0.9
    for coc_px in (12.0, 16.0, 18.0, 30.0):
        coc = np.where(subject, 0.0, -coc_px).astype(np.float32)
        out = render_linear(img, coc, RenderConfig(quality=quality, highlight_gain=0.0))
        near = out[(r >= 60) & (r < 68)].mean()
        far = out[(r >= 96) & (r < 104)].mean()
        assert near - far < 0.003, (coc_px, near, far)
        assert np.abs(out[r < 58] - 0.9).max() < 1 / 255  # the subject stays sharp


def test_blurred_foreground_edge_is_semi_transparent_with_the_right_width():
    r = 8.0
    img, coc, sq = two_planes(r, 0.0)
    out = render_linear(img, coc, EXACT)
    # Green fraction along a row through the square's middle, across its left edge (x = 28).
    row = out[48, :, 1]
    alpha = (row - 0.05) / (0.8 - 0.05)
    k = kernel(ApertureConfig(), r, front=True)
    esf = np.cumsum(k.sum(axis=0))  # edge-spread function of the disc, from the left
    expected = np.zeros(96)
    for x in range(96):
        # Coverage by the square of a disc centred at x: integrate the kernel columns x-28 >= -dx.
        dx = np.arange(-int(r), int(r) + 1)
        expected[x] = k.sum(axis=0)[(x + dx >= 28) & (x + dx < 68)].sum()
    np.testing.assert_allclose(alpha[10:48], expected[10:48], atol=0.04)
    # The band revealed just inside the edge shows background red, not dark, not green only.
    assert out[48, 29, 0] > 0.3
    assert out[48, 29, 1] < 0.6
    # Far from the square the sharp background is untouched.
    assert np.abs(out[:, :10] - img[:, :10]).max() < 1 / 255
    assert esf[-1] == pytest.approx(1.0, abs=1e-5)


def _dense_numpy():
    from refocus.render.backends import cpu_backend as NumpyBackend

    be = NumpyBackend()
    be.tile_sparse = False
    return be


def test_torch_path_agrees_with_numpy(rng):
    """The torch path (dense on every device) computes the same function as the numpy
    path run densely; torch tensors come back as tensors with the same values."""
    pytest.importorskip("torch")
    import torch

    from refocus.render.layered import render_layers

    img = rng.random((70, 90, 3)).astype(np.float32)
    yy, xx = np.mgrid[0:70, 0:90]
    coc = (18.0 * (np.sin(xx / 9.0) * np.cos(yy / 13.0) * 0.5)).astype(np.float32)
    coc[20:50, 30:60] = 9.0
    devices = ["torch-cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for aper in (ApertureConfig(), ApertureConfig(shape="polygon", blades=7, cats_eye=0.5)):
        ref = render_layers(img, coc, RenderConfig(aperture=aper), _dense_numpy())
        for dev in devices:
            cfg = RenderConfig(aperture=aper, device=dev)
            out = render_linear(img, coc, cfg)
            assert isinstance(out, np.ndarray) and out.shape == img.shape
            assert np.abs(out - ref).max() < 1e-3, dev
            if dev == "cuda":
                out_t = render_linear(torch.from_numpy(img).cuda(), torch.from_numpy(coc).cuda(), cfg)
                assert isinstance(out_t, torch.Tensor) and out_t.device.type == "cuda"
                assert np.abs(out_t.cpu().numpy() - ref).max() < 1e-3
    # CPU tensors take the (fast) numpy path and come back as a tensor.
    out_t = render_linear(torch.from_numpy(img), torch.from_numpy(coc))
    assert isinstance(out_t, torch.Tensor)
    np.testing.assert_array_equal(out_t.numpy(), render_linear(img, coc))


def test_torch_tile_sparse_mode_agrees_with_numpy(rng):
    """The torch backend can run the CPU's tile-sparse algorithm too (off by default:
    slower on a GPU); it must then match the numpy path."""
    pytest.importorskip("torch")
    from refocus.bench.speed import smooth_disparity
    from refocus.render.backends import TorchBackend
    from refocus.render.backends import cpu_backend as NumpyBackend
    from refocus.render.layered import render_layers

    img = rng.random((120, 160, 3)).astype(np.float32)
    coc = (30.0 * (smooth_disparity(120, 160, seed=2) - 0.5)).astype(np.float32)
    ref = render_layers(img, coc, RenderConfig(), NumpyBackend())
    be = TorchBackend("cpu", tile_sparse=True)
    out = be.to_numpy(render_layers(img, coc, RenderConfig(), be))
    assert np.abs(out - ref).max() < 1e-4


def test_tile_sparse_cpu_rendering_stays_close_to_the_dense_algorithm(rng):
    """The CPU's tile-sparse layers (and their half-resolution weights for coarse
    layers) approximate the dense algorithm the GPU runs: small on average, bounded
    at the 99th percentile. Measured on this noise texture (the worst case: every
    pixel differs from its neighbours): mean up to 6.4e-3 at K = 48, 3e-3 before
    the own nearer shares of split pixels (plan.own_step), which the dense path
    decides per 4 px block and the tile-sparse one per tile."""
    from refocus.bench.speed import smooth_disparity
    from refocus.render.backends import cpu_backend as NumpyBackend
    from refocus.render.layered import render_layers

    img = rng.random((240, 320, 3)).astype(np.float32)
    disp = smooth_disparity(240, 320, seed=3)
    for k in (8.0, 24.0, 48.0):
        coc = (k * (disp - 0.5)).astype(np.float32)
        a = render_layers(img, coc, RenderConfig(), NumpyBackend())
        b = render_layers(img, coc, RenderConfig(), _dense_numpy())
        e = np.abs(a - b).max(axis=2)
        assert e.mean() < 8e-3, k
        assert np.percentile(e, 99) < 5e-2, k


def test_render_linear_rejects_bad_tensors():
    torch = pytest.importorskip("torch")
    img = torch.rand(20, 30, 3)
    with pytest.raises(RefocusError, match="NaN"):
        render_linear(img, torch.full((20, 30), float("nan")))
    with pytest.raises(RefocusError, match="does not match"):
        render_linear(img, torch.zeros(10, 30))
    flat = render_linear(img, torch.zeros(20, 30))
    assert torch.equal(flat, img)


def test_highlights_bloom_but_in_focus_pixels_do_not_change():
    img = np.full((80, 80, 3), 0.2, np.float32)
    img[40, 40] = 1.0
    disp = np.zeros((80, 80), np.float32)
    plain = render_bokeh(img, disp, strength=0, focus_disparity=0.0, normalize=False)
    assert np.abs(plain - img).max() <= 1 / 255
    coc_disp = np.full((80, 80), 1.0, np.float32)
    dim = render_bokeh(img, coc_disp, strength=6, focus_disparity=0.0, normalize=False, highlight_gain=0.0)
    bright = render_bokeh(img, coc_disp, strength=6, focus_disparity=0.0, normalize=False, highlight_gain=8.0)
    assert bright[40, 40].mean() > dim[40, 40].mean() + 0.03
    assert np.abs(bright[5:15, 5:15] - dim[5:15, 5:15]).max() < 1e-4  # no highlight there


@pytest.mark.parametrize("device", ["cpu", "torch-cpu"])
def test_a_pale_surface_does_not_glow_but_a_small_light_still_blooms(device):
    """Real capture (the Motorola Lens Blur photo refocused to its background): pale
    petal tips near clipping were boosted like light sources and bloomed into white
    blobs larger than themselves. A near-white patch among bright pixels is a surface:
    blurred with the default boost it must stay what it is without the boost; an
    isolated clipped spot on a dark ground must still bloom into a brighter disc."""
    from refocus.io.color import srgb_to_linear

    # 400 px wide: the crowd window is a share of the frame (1/64 of its long side,
    # refocus.render.highlights), and a light must be small beside it.
    img = np.full((120, 400, 3), 0.35, np.float32)
    img[30:90, 30:90] = 0.97  # a pale surface, 60 px wide
    img[58:61, 148:151] = 1.0  # a 3 px light
    lin = srgb_to_linear(img)
    coc = np.full(img.shape[:2], 10.0, np.float32)
    plain = render_linear(lin, coc, RenderConfig(highlight_gain=0.0, device=device))
    boosted = render_linear(lin, coc, RenderConfig(device=device))  # the default gain
    plain, boosted = np.asarray(plain)[..., 1], np.asarray(boosted)[..., 1]
    ring = np.zeros(img.shape[:2], bool)
    ring[22:98, 22:98] = True
    ring[30:90, 30:90] = False  # the 8 px band around the patch that its blur spills into
    # Before: the patch, boosted 2.3x, spilled up to +0.44 (linear) into the band.
    assert np.abs(boosted[ring] - plain[ring]).max() < 0.01
    assert boosted[59, 149] > plain[59, 149] + 0.05


def test_a_preview_and_the_full_size_export_boost_the_same_light():
    """Which clipped pixels count as light sources is judged in a window that scales
    with the frame: a 6 px light in a 2048 px wide export is the 3 px light of its
    1024 px preview, and both must bloom alike (with a fixed 4 px window the export
    took it for a surface: its disc came out at the unboosted brightness)."""
    ratios = []
    for scale in (1, 2):
        h, w, side = 32 * scale, 1024 * scale, 3 * scale
        img = np.full((h, w, 3), 0.02, np.float32)
        img[h // 2 - side // 2 : h // 2 - side // 2 + side, w // 2 : w // 2 + side] = 1.0
        coc = np.full((h, w), 6.0 * scale, np.float32)
        plain = render_linear(img, coc, RenderConfig(highlight_gain=0.0))[..., 1]
        boosted = render_linear(img, coc, RenderConfig())[..., 1]
        ratios.append(float(boosted.sum() - 0.02 * h * w) / float(plain.sum() - 0.02 * h * w))
    assert ratios[0] > 2.5  # the light's energy, 1 + gain = 3 times the recorded
    assert ratios[1] == pytest.approx(ratios[0], rel=0.1), ratios


def test_the_boost_is_inverted_exactly_with_its_per_pixel_gain(rng):
    """compress(expand(x)) = x wherever the gains are the same pixel's: in-focus
    pixels come back unchanged, crowded or not, on numpy and torch alike."""
    import torch

    from refocus.render.backends import cpu_backend
    from refocus.render.backends.torch import TorchBackend
    from refocus.render.highlights import Booster

    x = (0.5 * rng.random((3, 64, 64))).astype(np.float32)
    x[:, 10:30, 10:30] = 0.9 + 0.1 * rng.random((3, 20, 20))  # a crowd of near-clipped pixels
    x[:, 40::6, 40::6] = 1.0  # lone lights
    for be, arr in ((cpu_backend(), x.copy()), (TorchBackend("cpu"), torch.from_numpy(x.copy()))):
        b = Booster(0.92, 3.0)
        expanded = b.expand(arr, be)
        gains = np.asarray(b.gain(b._crowd))
        assert gains.min() < 0.5 and gains.max() > 2.9  # both kinds of pixel present
        assert float(np.asarray(expanded).max()) > 3.5
        back = np.asarray(b.compress(expanded, be))
        np.testing.assert_allclose(back, x, atol=2e-6)


def test_cats_eye_clips_highlights_towards_the_corners():
    aper = ApertureConfig(cats_eye=0.8)
    cfg = RenderConfig(highlight_gain=0.0, aperture=aper)
    img = np.zeros((121, 121, 3), np.float32)
    img[60, 60] = 1.0
    img[12, 12] = 1.0
    out = render_linear(img, np.full((121, 121), -7.0, np.float32), cfg)[..., 0]
    centre = half_max_mask(out[45:76, 45:76]).sum()
    corner = half_max_mask(out[0:28, 0:28]).sum()
    assert corner < 0.85 * centre, "the corner highlight must be clipped into a cat's eye"


def test_custom_kernel_image_sets_the_bokeh_shape():
    shape = np.zeros((32, 32), np.float32)
    shape[4:28, 4:12] = 1.0  # an off-centre bar: asymmetric
    aper = ApertureConfig(shape="custom", image=shape)
    img = point_light(61)
    out = render_linear(img, np.full((61, 61), -12.0, np.float32), RenderConfig(highlight_gain=0.0, aperture=aper))[..., 0]
    ys, xs = np.nonzero(half_max_mask(out))
    assert xs.mean() < 30 - 4, "the bar is on the left of the kernel image, and upright behind the focal plane"
    assert (ys.max() - ys.min()) > 2 * (xs.max() - xs.min())


def test_bad_inputs_raise_clear_errors(rng):
    img = rng.random((20, 20, 3)).astype(np.float32)
    with pytest.raises(RefocusError):
        render_bokeh(img, np.zeros((20, 20)), strength=-1.0, focus_disparity=0.0)
    with pytest.raises(RefocusError):
        render_bokeh(np.zeros((0, 0, 3), np.float32), np.zeros((0, 0)), strength=1.0, focus_disparity=0.0)
    with pytest.raises(RefocusError):
        render_bokeh(img, np.full((20, 20), np.nan), strength=1.0, focus_disparity=0.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        d = rng.random((10, 10)).astype(np.float32)
        d[3, 3] = np.inf
        out = render_bokeh(img, d, strength=3.0, focus_disparity=0.5)
    assert out.shape == img.shape
    msgs = " ".join(str(w.message) for w in caught)
    assert "resampling" in msgs and "invalid" in msgs
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = render_bokeh(img, np.ones((20, 20)), strength=5.0, focus_disparity=0.3)
    assert np.abs(out - img).max() <= 1 / 255, "a constant map is one plane: nothing to blur after normalising"
    assert any("constant" in str(w.message) for w in caught)


def test_sixteen_bit_input_keeps_precision(tmp_path):
    from refocus.io import read_image, write_image

    ramp = np.linspace(0, 1, 64 * 48 * 3, dtype=np.float32).reshape(48, 64, 3)
    p = tmp_path / "in16.png"
    write_image(p, ramp, bit_depth=16)
    back, info = read_image(p)
    assert info.bit_depth == 16
    assert np.abs(back - ramp).max() < 1e-4
    out = render_bokeh(back, np.zeros((48, 64)), strength=0.0, focus_disparity=0.0)
    write_image(tmp_path / "out16.png", out, info=info)
    again, info2 = read_image(tmp_path / "out16.png")
    assert info2.bit_depth == 16 and np.abs(again - ramp).max() < 1e-4


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "refocus.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_cli_render_and_its_errors(tmp_path, rng):
    from PIL import Image

    img = (rng.random((40, 50, 3)) * 255).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "a.png")
    d = np.zeros((40, 50), np.float32)
    d[10:30, 10:40] = 1
    np.save(tmp_path / "d.npy", d)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    ok = run_cli("render", str(tmp_path / "a.png"), "--depth", str(tmp_path / "d.npy"), "-o", str(tmp_path / "o.png"),
                 "--focus", "5,5", "--strength", "6", "--aperture", "polygon", "--blades", "5")
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "o.png").exists()
    cases = [
        ["--strength", "-3", "--focus", "5,5"],
        ["--strength", "3"],  # no focus
        ["--strength", "3", "--focus", "5,5", "--aperture", str(tmp_path / "nope.png")],
        ["--strength", "3", "--focus-value", "0.5", "--blades", "40", "--aperture", "polygon"],
    ]
    for extra in cases:
        r = run_cli("render", str(tmp_path / "a.png"), "--depth", str(tmp_path / "d.npy"), "-o", str(tmp_path / "x.png"), *extra)
        assert r.returncode != 0 and "Traceback" not in r.stderr and "error" in r.stderr.lower(), (extra, r.stderr)
    r = run_cli("render", str(tmp_path / "broken.png"), "--depth", str(tmp_path / "d.npy"), "-o", str(tmp_path / "x.png"),
                "--strength", "3", "--focus-value", "0.5")
    assert r.returncode == 2 and "Traceback" not in r.stderr and r.stderr.count("\n") == 1, r.stderr
    r = run_cli("render", str(tmp_path / "a.png"), "--depth", str(tmp_path / "d.npy"), "-o", str(tmp_path / "a.png"),
                "--strength", "3", "--focus-value", "0.5")
    assert r.returncode == 2 and "input" in r.stderr


def test_tile_skipping_is_exact(monkeypatch, rng):
    """Tiles skipped by the tile-sparse layers (zero alpha, or under an opaque nearer
    layer) must not change the picture: compare with every tile processed."""
    from refocus.render.sparse import SparseLevels

    img = rng.random((160, 200, 3)).astype(np.float32)
    yy, xx = np.mgrid[0:160, 0:200]
    coc = (9.0 * np.sin(xx / 23.0) * np.cos(yy / 31.0)).astype(np.float32)
    coc[40:90, 60:130] = 7.0  # a flat foreground plate with sharp edges
    cfg = RenderConfig(highlight_gain=0.0)
    sparse = render_linear(img, coc, cfg)

    def every_tile(self, s, margin_px, high, tile):
        shape = (self.Hp // s // tile, self.Wp // s // tile)
        return np.full(shape, np.inf if high else -np.inf, np.float32)

    monkeypatch.setattr(SparseLevels, "_tile_range", every_tile)
    dense = render_linear(img, coc, cfg)
    assert np.abs(sparse - dense).max() < 1e-4


def test_out_of_gpu_memory_falls_back_to_the_cpu(rng, monkeypatch):
    """A render the GPU cannot hold is done on the CPU, with a warning (numpy in), or
    refused with a one-line error (tensors in); simulated with the torch-CPU path."""
    torch = pytest.importorskip("torch")
    import refocus.render as render_mod

    real = render_mod.render_layers

    def tight_gpu(image, coc, cfg, be):
        if be.name == "torch":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 3.70 GiB")
        return real(image, coc, cfg, be)

    monkeypatch.setattr(render_mod, "render_layers", tight_gpu)
    img = rng.random((40, 50, 3)).astype(np.float32)
    coc = np.linspace(-4, 4, 50, dtype=np.float32)[None].repeat(40, axis=0)
    with pytest.warns(UserWarning, match="out of GPU memory"):
        out = render_linear(img, coc, RenderConfig(device="torch-cpu"))
    ref = real(img, coc, RenderConfig(), _dense_numpy())
    assert out.shape == img.shape and np.abs(out - ref).mean() < 5e-3
    from refocus.render.backends import TorchBackend

    with pytest.raises(RefocusError, match="out of GPU memory"):
        render_mod._render_on_device(torch.from_numpy(img), torch.from_numpy(coc), RenderConfig(), TorchBackend("cpu"))


def test_split_sweeps_equal_the_sequential_render(rng, monkeypatch):
    """Focused at the near end, nearly all layers fall in the back sweep; the CPU then
    renders its coarse part and its full-resolution tail on two threads and joins
    them with the over operator. The result must equal the one-thread render."""
    from refocus.bench.speed import smooth_disparity
    from refocus.render import RenderThreads, layered

    img = rng.random((200, 260, 3)).astype(np.float32)
    coc = (-30.0 * (1.0 - smooth_disparity(200, 260, seed=5))).astype(np.float32)  # 0 .. -30 px: all behind
    joins = []
    real_over = layered._over
    monkeypatch.setattr(layered, "_over", lambda near, far: joins.append(near is not None and far is not None) or real_over(near, far))
    split = render_linear(img, coc, RenderConfig())
    assert any(joins), "the back sweep should have been split"
    sequential = render_linear(img, coc, RenderConfig(), threads=RenderThreads(parallel=False))
    assert np.abs(split - sequential).max() < 1e-5


def _compiled_or_skip():
    from refocus.render.backends import numba as _jit

    if _jit.kernels() is None:
        pytest.skip("numba is not installed: the compiled CPU kernels are not used")


@pytest.mark.parametrize(
    "case",
    ["disc-middle", "hexagon-rotated", "custom-image", "near-end", "far-end", "no-highlights", "high-quality", "constant"],
)
def test_compiled_kernels_equal_the_numpy_path(rng, case):
    """The CPU renderer's compiled kernels (numba) redo the numpy path's arithmetic
    window by window; both must give the same picture to float32 round-off, for
    every aperture, either side of the focal plane and every quality level."""
    _compiled_or_skip()
    from refocus.bench.speed import smooth_disparity
    from refocus.render.backends import cpu_backend as NumpyBackend
    from refocus.render.layered import render_layers

    h, w = 150, 230
    img = rng.random((h, w, 3)).astype(np.float32)
    img[40:44, 100:104] = 1.0  # a clipped highlight for the boost
    d = smooth_disparity(h, w, seed=7)
    coc = (36.0 * (d - 0.5)).astype(np.float32)
    cfg = RenderConfig()
    if case == "hexagon-rotated":
        cfg = RenderConfig(aperture=ApertureConfig(shape="polygon", blades=6, rotation_deg=17.0, curvature=0.3))
    elif case == "custom-image":
        yy, xx = np.mgrid[-20:21, -20:21]
        cross = ((np.abs(xx) < 4) | (np.abs(yy) < 4)) & (xx * xx + yy * yy < 400)
        cfg = RenderConfig(aperture=ApertureConfig(shape="custom", image=cross.astype(np.float32)))
    elif case == "near-end":
        coc = (-30.0 * (1.0 - d)).astype(np.float32)
    elif case == "far-end":
        coc = (30.0 * d).astype(np.float32)
    elif case == "no-highlights":
        cfg = RenderConfig(highlight_gain=0.0)
    elif case == "high-quality":
        cfg = RenderConfig(quality="high")
    elif case == "constant":
        coc = np.full((h, w), -5.5, np.float32)
    compiled = render_layers(img, coc, cfg, NumpyBackend())
    plain = render_layers(img, coc, cfg, NumpyBackend(jit=False))
    assert compiled.shape == plain.shape == img.shape
    assert np.abs(compiled - plain).max() < 1e-5


@pytest.mark.parametrize("shape", [(1, 1), (3, 200), (57, 41)])
def test_compiled_bright_share_equals_numpy(rng, shape):
    """The highlight boost's share of bright pixels (running sums in the kernel, a
    box filter on the numpy path), edges replicated, windows larger than the frame."""
    _compiled_or_skip()
    from refocus.render.backends import cpu_backend as NumpyBackend

    y = rng.random(shape).astype(np.float32) ** 0.3
    y.flat[y.size // 2] = np.nan  # one bad pixel must not spread through the running sums
    fast, plain = NumpyBackend(), NumpyBackend(jit=False)
    got = fast.bright_share(y, 0.7, 4)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, plain.bright_share(y, 0.7, 4), atol=1e-6)


@pytest.mark.parametrize("shape", [(4, 1, 1), (3, 5, 8), (1, 38, 51), (2, 2, 64)])
def test_compiled_resampling_equals_numpy(rng, shape):
    """The compiled bilinear x2 upsampling and splat downsampling are the numpy
    backend's, bit for bit (same operations in the same order)."""
    _compiled_or_skip()
    from refocus.render.backends import cpu_backend as NumpyBackend

    fast, plain = NumpyBackend(), NumpyBackend(jit=False)
    x = rng.random(shape).astype(np.float32)
    c, h, w = shape
    np.testing.assert_array_equal(fast.upsample(x, 2, 2 * h, 2 * w), plain.upsample(x, 2, 2 * h, 2 * w))
    even = rng.random((c, 2 * h, 2 * w)).astype(np.float32)
    np.testing.assert_array_equal(fast.downsample(even, 2), plain.downsample(even, 2))


def test_compiled_kernels_can_be_switched_off(monkeypatch):
    from refocus.render.backends import cpu_backend as NumpyBackend
    from refocus.render.backends import numba as _jit

    monkeypatch.setenv("REFOCUS_NO_JIT", "1")
    assert _jit.kernels() is None and NumpyBackend().jit is None


def test_windows_split_over_both_cores_equal_the_whole_batch(rng, monkeypatch):
    """When one sweep runs alone, the compiled kernels' windows are cut in two halves
    run on two threads (they write disjoint tiles); the picture must not change."""
    _compiled_or_skip()
    from refocus.bench.speed import smooth_disparity
    from refocus.render import RenderThreads

    img = rng.random((180, 240, 3)).astype(np.float32)
    coc = (-30.0 * (1.0 - smooth_disparity(180, 240, seed=5))).astype(np.float32)
    whole = render_linear(img, coc, RenderConfig())
    cuts = []

    def halves(n):
        cuts.append(n)
        return [(0, n // 2), (n // 2, n)] if n >= 2 else [(0, n)]

    monkeypatch.setattr(RenderThreads, "window_ranges", lambda self, n: halves(n))
    split = render_linear(img, coc, RenderConfig())
    assert cuts, "the compiled kernels should have been asked how to cut their windows"
    np.testing.assert_array_equal(split, whole)


def _row_scatter(image_linear: np.ndarray, coc_px: np.ndarray) -> np.ndarray:
    """Exact reference for a CoC constant along rows: each row spread by the disc of
    its own CoC (no occlusion: a tilted plane does not hide itself)."""
    from scipy import ndimage

    from refocus import aperture as ap

    h, w, _ = image_linear.shape
    pad = int(np.ceil(np.abs(coc_px).max())) + 2
    out = np.zeros((h + 2 * pad, w, 3), np.float64)
    for y in range(h):
        k = ap.kernel(ap.ApertureConfig(), abs(float(coc_px[y, 0])), front=coc_px[y, 0] > 0).astype(np.float64)
        r = k.shape[0] // 2
        row = image_linear[y].astype(np.float64)
        for dy in range(k.shape[0]):
            out[y + dy - r + pad] += ndimage.convolve1d(row, k[dy], axis=0, mode="nearest")
    return out[pad : pad + h].astype(np.float32)


@pytest.mark.parametrize("gain", [0.0, 2.0])
def test_smooth_depth_ramp_has_no_bands(gain):
    """Issue 12, defect 1: a pixel split between two CoC layers hid its own farther
    share, which was then filled with extrapolated background; on a smooth ramp this
    showed as horizontal bands one layer spacing apart (row means off by up to 13-17
    of 255 levels, 27.7-30.5 dB against the exact scatter). The reference applies the
    same highlight boost (expand, spread, compress) as the renderer."""
    import skimage.data

    from refocus.io.color import linear_to_srgb, srgb_to_linear
    from refocus.render.backends import cpu_backend as NumpyBackend
    from refocus.render.highlights import Booster as _Booster

    img = skimage.data.astronaut().astype(np.float32) / 255.0
    h, w, _ = img.shape
    disp = np.repeat(np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None], w, axis=1)
    coc = coc_map(disp, 0.5, 16.0)
    lin = srgb_to_linear(img)
    boost, be = _Booster(0.92, gain), NumpyBackend()
    expanded = boost.expand(np.ascontiguousarray(lin.transpose(2, 0, 1)).copy(), be).transpose(1, 2, 0)
    spread = _row_scatter(np.ascontiguousarray(expanded), coc)
    ref = linear_to_srgb(np.clip(boost.compress(np.ascontiguousarray(spread.transpose(2, 0, 1)), be).transpose(1, 2, 0), 0, 1))
    b = 16  # the reference clamps at the frame's edge, the renderer extends it
    for device in ("cpu", "torch-cpu"):
        out = linear_to_srgb(render_linear(lin, coc, RenderConfig(highlight_gain=gain, device=device)))
        a, r = out[b:-b, b:-b], ref[b:-b, b:-b]
        psnr = 10 * np.log10(1.0 / np.mean((a - r) ** 2))
        row_err = np.abs(a.mean(axis=(1, 2)) - r.mean(axis=(1, 2))) * 255
        # Measured: 43.3 dB / 1.8 levels without the boost, 41.3 dB / 2.1 with it (the
        # worst rows cross the helmet's clipped highlight).
        assert psnr >= (40.0 if gain else 42.0), (device, psnr)
        assert row_err.max() <= (2.5 if gain else 2.0), (device, row_err.max())


def test_small_cocs_blur_by_their_own_second_moment():
    """Issue 12 (real captures): a CoC between the focal plane and the first blurred
    layer was rendered as the linear tent mix of a point and that layer's disc: a
    0.5 px CoC next to a 1.5 px layer got 3 times the mean squared spread of its own
    disc. Small CoCs are what real captures with small apertures have (Lytro: most
    |CoC| < 0.5 px); the mix now keeps the second moment of the pixel's disc."""
    h, w = 41, 81
    coc = np.zeros((h, w), np.float32)
    coc[:, 60:] = 1.5  # puts the first blurred layer at 1.5 px
    coc[10:31, 10:31] = 0.5  # a patch at 0.5 px holding the point
    img = np.zeros((h, w, 3), np.float32)
    img[20, 20] = 1.0
    out = render_linear(img, coc, RenderConfig(highlight_gain=0.0))[..., 0]
    yy, xx = np.mgrid[0:h, 0:w]
    psf = out[10:31, 10:31]
    r2 = ((yy - 20) ** 2 + (xx - 20) ** 2)[10:31, 10:31]
    got = float((psf * r2).sum() / psf.sum())
    want = 0.5**2 / 2  # a disc of radius r: mean squared radius r^2 / 2
    assert got == pytest.approx(want, rel=0.15), (got, want)


@pytest.mark.parametrize("radius", [0.6, 0.8, 1.2])
def test_pixel_scale_blur_adds_the_discs_own_second_moment(radius):
    """Real captures (issue 12): the area-rasterised disc is the disc convolved with
    a pixel's box, which the photo already has: at 0.8 px it spread a point over
    0.52 px^2 instead of the disc's 0.32, over-blurring the sub-pixel CoCs of real
    small-aperture photos (Lytro refocus: behind the Gaussian re-blur). A point
    rendered at a constant CoC r spreads by the disc's mean squared radius r^2 / 2."""
    h = w = 21
    img = np.zeros((h, w, 3), np.float32)
    img[10, 10] = 1.0
    out = render_linear(img, np.full((h, w), radius, np.float32), RenderConfig(highlight_gain=0.0))[..., 0]
    yy, xx = np.mgrid[0:h, 0:w]
    m2 = float((out * ((yy - 10) ** 2 + (xx - 10) ** 2)).sum() / out.sum())
    assert m2 == pytest.approx(radius**2 / 2, rel=0.05), m2


@pytest.mark.parametrize("device", ["cpu", "torch-cpu"])
def test_cats_eye_keeps_each_lights_place_and_light(device):
    """Cat's-eye clips a light's disc by where the light is. The kernels were blended
    by the position of the pixel lit (a light at the frame's centre lost 9 % of its
    light and 5 px of its 59 px width at cat's-eye 1, its neighbours' clipped kernels
    not reaching it), and each clipped disc was drawn off the light, towards the
    centre: a light at (40, 50) landed at (47.8, 60.4)."""
    if device == "torch-cpu":
        pytest.importorskip("torch")
    h, w = 480, 640
    yy, xx = np.mgrid[:h, :w]
    cfg = RenderConfig(highlight_gain=0.0, device=device, aperture=ApertureConfig(cats_eye=1.0))
    for y, x in ((240, 320), (40, 50)):
        img = np.zeros((h, w, 3), np.float32)
        img[y - 1 : y + 2, x - 1 : x + 2] = 1.0
        out = np.asarray(render_linear(img, np.full((h, w), -30.0, np.float32), cfg))[..., 1]
        assert abs(out.sum() - 9.0) < 0.3
        assert abs((out * yy).sum() / out.sum() - y) < 0.5 and abs((out * xx).sum() / out.sum() - x) < 0.5
        ys, xs = np.nonzero(out > 0.5 * out.max())
        extent = (np.ptp(ys) + 1, np.ptp(xs) + 1)
        if (y, x) == (240, 320):
            assert min(extent) >= 57  # the whole 59 px disc: nothing clips at the centre
        else:
            assert max(extent) <= 45  # a lemon near the corner


@pytest.mark.parametrize("device", ["cpu", "torch-cpu"])
def test_cats_eye_blur_of_a_sparse_layer_is_its_definition(device):
    """The cat's-eye blur of a layer, by definition: on the CPU the sum over cells of
    the layer's pixels in the cell blurred with the kernel of the cell's centre; on
    the GPU (torch) the sum over a 5 x 5 grid of nodes of the layer weighted by the
    node's hat and blurred with the node's kernel; each over the whole frame. The CPU
    blurs only boxes around what the layer holds (with its cells a 1 MP preview
    took 0.79 s instead of 3.0, 12 MP 33 s instead of 84); checked against the
    definition on a layer with scattered blobs, gaps between them and content on the
    frame's edges."""
    import math

    from refocus import aperture as ap
    from refocus.render.backends import get_backend
    from refocus.render.dense import _hat, conv_layer
    from refocus.render.plan import cell_counts
    from refocus.render.plan import render_kernel

    if device == "torch-cpu":
        pytest.importorskip("torch")
    be = get_backend(device)
    h, w, radius, scale = 240, 320, 6.5, 2
    full = (h * scale, w * scale)
    rng = np.random.default_rng(3)
    stack = np.zeros((4, h, w), np.float32)
    for y0, y1, x0, x1 in ((0, 9, 0, 30), (60, 64, 100, 104), (61, 70, 290, 320), (150, 152, 10, 200), (231, 240, 300, 320)):
        stack[:, y0:y1, x0:x1] = rng.random((4, y1 - y0, x1 - x0))
    cfg = RenderConfig(aperture=ApertureConfig(cats_eye=0.8))
    got = np.asarray(be.to_numpy(conv_layer(be.asarray(stack), radius, True, cfg, be, scale, full)))
    parts = []  # (weight over the frame, kernel)
    if be.tile_sparse:
        n_y, n_x = cell_counts(0.8, radius, h, w, full)
        assert n_y > 4 and n_x > 4 and n_y % 2 and n_x % 2
        ye, xe = np.linspace(0, h, n_y + 1).round().astype(int), np.linspace(0, w, n_x + 1).round().astype(int)
        for cy in range(n_y):
            for cx in range(n_x):
                wt = np.zeros((h, w), np.float32)
                wt[ye[cy] : ye[cy + 1], xe[cx] : xe[cx + 1]] = 1.0
                pos = ((xe[cx] + xe[cx + 1]) / 2 * scale - 0.5, (ye[cy] + ye[cy + 1]) / 2 * scale - 0.5)
                parts.append((wt, ap.cats_eye_offset(0.8, *pos, full[1], full[0])))
    else:
        ys, xs = np.linspace(0, h - 1, 5), np.linspace(0, w - 1, 5)
        for gy in range(5):
            for gx in range(5):
                wt = (_hat(np.arange(h), ys, gy)[:, None] * _hat(np.arange(w), xs, gx)[None, :]).astype(np.float32)
                parts.append((wt, ap.cats_eye_offset(0.8, xs[gx] * scale, ys[gy] * scale, full[1], full[0])))
    want = np.zeros_like(stack)
    for wt, off in parts:
        k = render_kernel(cfg.aperture, radius, front=True, cats_eye_offset=off)
        assert k.shape[0] // 2 <= int(math.ceil(radius)) + 1
        want += np.asarray(be.to_numpy(be.conv(be.asarray(stack * wt[None]), k)))
    assert np.abs(got - want).max() < 1e-5


@pytest.mark.parametrize("device", ["cpu", "torch-cpu"])
@pytest.mark.parametrize("hw", [(1, 1), (2, 3), (1, 50), (50, 1)])
def test_cats_eye_on_a_frame_a_few_pixels_wide_is_finite(hw, device):
    """Found 2026-12-07 (twelfth session): a cat's-eye on a frame (or a coarse level of
    one) under 2 px along a side put its 5 kernel nodes on one position, and their
    blending weights divided 0 by 0: the whole render was NaN (1 x 1, 2 x 3, 1 x 50;
    the torch path, a GPU's, blends nodes too)."""
    from refocus.render import render_layers
    from refocus.render.backends import get_backend

    if device == "torch-cpu":
        pytest.importorskip("torch")
    be = get_backend(device)
    h, w = hw
    rng = np.random.default_rng(0)
    img = rng.random((h, w, 3), dtype=np.float32)
    coc = np.linspace(-10.0, 10.0, h * w, dtype=np.float32).reshape(h, w)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # radii larger than such a frame are drawn smaller
        out = np.asarray(be.to_numpy(render_layers(img, coc, RenderConfig(aperture=ApertureConfig(cats_eye=1.0)), be)))
    assert out.shape == (h, w, 3) and np.isfinite(out).all()
    assert float(out.mean()) == pytest.approx(float(img.mean()), abs=0.1)


@pytest.mark.parametrize("jit", [True, False])
def test_cats_eye_tiles_render_lights_as_the_dense_path_does(monkeypatch, jit):
    """Since 2026-12-07 (twelfth session) the finest cat's-eye layers are rendered
    tile-sparse, each window with the kernel of its tile's cell (12 MP with a subject,
    cat's-eye 0.5: 39 s -> 8 s on 2 AMD EPYC cores; the dense path before). A grid of
    lights at cat's-eye 1 keeps its light and the dense path's place and shape in
    every part of the frame, on the compiled and the numpy windows; a frame whose cells are
    smaller than a tile keeps the dense path (in a 121 px frame a light at the centre
    and one in a corner shared a 32 px tile and so its kernel)."""
    import refocus.render.layered as layered
    import refocus.render.sparse as sparse
    from refocus.render import render_layers
    from refocus.render.backends import cpu_backend

    h, w, coc_px = 768, 1024, -5.0
    img = np.full((h, w, 3), 0.02, np.float32)
    ys, xs = np.arange(48, h, 96), np.arange(48, w, 96)
    for y in ys:
        for x in xs:
            img[y, x] = 30.0
    coc = np.full((h, w), coc_px, np.float32)
    cfg = RenderConfig(highlight_gain=0.0, aperture=ApertureConfig(cats_eye=1.0))
    kernels = []
    real = sparse.SparseLevels._cell_kernels

    def spy(self, *a):
        out = real(self, *a)
        kernels.append(out[0].shape[0])
        return out

    monkeypatch.setattr(sparse.SparseLevels, "_cell_kernels", spy)
    tiles = np.asarray(render_layers(img, coc, cfg, cpu_backend(jit=jit)))[..., 0]
    assert kernels and max(kernels) > 9, "the layer should have been rendered tile-sparse, with many kernels"
    monkeypatch.setattr(layered, "cats_eye_tiles_fit", lambda *a: False)
    dense = np.asarray(render_layers(img, coc, cfg, cpu_backend(jit=jit)))[..., 0]
    for y in ys:
        for x in xs:
            a, b = (r[y - 12 : y + 13, x - 12 : x + 13] - 0.02 for r in (tiles, dense))
            # Each light keeps its light (the dense path's cells add up to 1.2 % to a
            # light on a cell's edge: the blurred alpha of a varying kernel is not 1).
            assert a.sum() == pytest.approx(30.0 - 0.02, rel=0.003)
            for axis in (0, 1):
                pos = np.arange(25.0)[:, None] if axis == 0 else np.arange(25.0)[None, :]
                assert abs((a * pos).sum() / a.sum() - (b * pos).sum() / b.sum()) < 0.2
            ma, mb = half_max_mask(a), half_max_mask(b)
            assert (ma & mb).sum() / (ma | mb).sum() > 0.9
    # The shapes vary over the frame (a cat's-eye at all): a corner light against the centre's.
    centre = half_max_mask(tiles[336:361, 464:489]).sum()
    corner = half_max_mask(tiles[36:61, 36:61]).sum()
    assert corner < 0.85 * centre
