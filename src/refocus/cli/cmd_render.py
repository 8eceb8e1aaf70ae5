"""``refocus render``: new depth of field from an all-in-focus photo and its depth."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from refocus.cli import _genfocus as G
from refocus.cli.cmd_refocus import GrainOpt, QualityOpt, RimOpt, RingOpt
from refocus.errors import RefocusError
from refocus.notes import collect_warnings


def parse_xy(text: str) -> tuple[float, float]:
    """Parse ``"X,Y"`` (pixels) into a tuple."""
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise RefocusError(f"--focus expects X,Y in pixels, got {text!r}") from None
    return x, y


def render_cmd(
    image: Path = typer.Argument(..., help="All-in-focus photo (PNG, JPEG, TIFF, HEIC, WebP; 8 or 16 bit)."),
    depth: Path = typer.Option(..., "--depth", "-d", help="Depth or disparity map: .npy, .pfm, 8/16-bit PNG, float TIFF."),
    output: Path = typer.Option(..., "--output", "-o", help="Output image path (.png, .jpg, .tif, .webp)."),
    depth_kind: Optional[str] = typer.Option(
        None, "--depth-kind",
        help="disparity (larger = nearer) or depth (distance); default: what the file records (a map refocus depth wrote), else disparity.",
    ),
    align_depth: bool = typer.Option(
        False, "--align-depth",
        help="Align a map already at the photo's size with the photo's edges too (maps of another size always are).",
    ),
    focus: Optional[str] = typer.Option(None, "--focus", help="Focus on the surface under pixel X,Y."),
    focus_value: Optional[float] = typer.Option(None, "--focus-value", help="Focus at this disparity (normalised 0..1 by default)."),
    strength: float = typer.Option(..., "--strength", "-k", help="K: CoC radius in px per unit of normalised disparity."),
    aperture: str = typer.Option("disc", "--aperture", help="disc, polygon, or a grayscale kernel image (PNG)."),
    blades: int = typer.Option(6, "--blades", help="Polygon blades, 3..16."),
    rotation: float = typer.Option(0.0, "--rotation", help="Aperture rotation, degrees."),
    curvature: float = typer.Option(0.0, "--curvature", help="Blade curvature, 0 straight .. 1 round."),
    highlight_threshold: float = typer.Option(0.92, "--highlight-threshold", help="sRGB luminance treated as clipped, 0..1."),
    highlight_gain: float = typer.Option(2.0, "--highlight-gain", help="Extra brightness of small clipped highlights, the light sources (0 = off)."),
    cats_eye: float = typer.Option(0.0, "--cats-eye", help="Cat's-eye clipping towards the corners, 0..1."),
    rim: float = RimOpt,
    ring: float = RingOpt,
    quality: str = QualityOpt,
    grain: bool = GrainOpt,
    no_normalize: bool = typer.Option(False, "--no-normalize", help="Use disparity values as they are (no min-max scaling)."),
    bit_depth: Optional[int] = typer.Option(None, "--bit-depth", help="8 or 16 (16: PNG/TIFF only; default: as the input)."),
    device: Optional[str] = G.GenfocusDeviceOpt,
    engine: str = G.EngineOpt,
    genfocus_weights: Optional[Path] = G.GenfocusWeightsOpt,
    base_model: Optional[str] = G.BaseModelOpt,
    steps: int = G.StepsOpt,
    seed: Optional[int] = G.SeedOpt,
    no_tiling: bool = G.NoTilingOpt,
    offload: bool = G.OffloadOpt,
    dtype: str = G.DtypeOpt,
    long_side: int = G.LongSideOpt,
) -> None:
    """Render a new depth of field: blur by signed CoC = K * (disparity - focus).

    --engine genfocus gives the all-in-focus photo and the defocus map |CoC| / 100 px
    to Genfocus's BokehNet instead of the layered renderer.
    """
    from rich.markup import escape

    from refocus.cli._console import print_notes, stderr_console
    from refocus.depth import get_depth, to_disparity
    from refocus.io import read_image, write_image
    from refocus.io.depthfile import read_depth_meta
    from refocus.io.outputs import aperture_input, check_bit_depth
    from refocus.pipeline.options import check_output
    from refocus.pipeline.bokeh import render_bokeh

    console = stderr_console()
    if focus is not None and focus_value is not None:
        raise RefocusError("give either --focus X,Y or --focus-value V, not both")
    if focus is None and focus_value is None:
        raise RefocusError("say where to focus: --focus X,Y (pixel) or --focus-value V (disparity)")
    if focus_value is not None and not abs(focus_value) < float("inf"):  # was "focus disparity must be finite", no option named
        raise RefocusError(f"invalid --focus-value: must be a finite number, got {focus_value}")
    if not 0 <= strength < float("inf"):
        raise RefocusError(f"invalid --strength (-k): must be a finite number >= 0, got {strength}")
    if quality not in ("fast", "balanced", "high"):
        raise RefocusError(f"--quality must be fast, balanced or high, got {quality!r}")
    if depth_kind not in (None, "disparity", "depth"):
        raise RefocusError(f"--depth-kind must be disparity or depth, got {depth_kind!r}")
    check_bit_depth(output, bit_depth)  # before the work, not when writing the result
    _check_render_settings(highlight_threshold, highlight_gain, quality)  # before the depth's notes are printed
    gen = G.genfocus_options(engine, device, genfocus_weights, base_model, steps, seed, no_tiling, offload, dtype, long_side)
    device = device or "cpu"
    # Fail before rendering, not after: a 12 MP render takes seconds to minutes.
    check_output(output, [image, depth, aperture_input(aperture), genfocus_weights], photo=image)  # writable, room on its disk
    if gen is not None:
        from refocus.pipeline.genfocus import get_engine

        get_engine(gen).check_weights(["bokeh"])  # one line now rather than after the depth work
    from refocus.pipeline.options import build_aperture

    aper = build_aperture(aperture, blades, rotation, curvature, cats_eye, rim, ring)
    rgb, info = read_image(image)
    # The depth rule of every command (refocus.depth.get_depth): same aspect ratio or
    # an error, invalid values filled with a warning, a map of another size aligned,
    # and normalised by the range of the map as given.
    if depth_kind is None and not read_depth_meta(depth):
        depth_kind = "disparity"  # render's stated default for a map that records nothing: no hint to print
    res = get_depth(image, depth_path=depth, depth_kind=depth_kind, allow_estimate=False, image=rgb, neighbour=False,
                    refine=True if align_depth else None)
    print_notes(console, res.notes)
    disp = res.disparity() if not no_normalize else to_disparity(res.values, res.kind)
    t0 = time.perf_counter()
    if gen is not None:
        _render_generative(console, rgb, info, disp, strength, focus, focus_value, output, bit_depth, gen, aperture, t0)
        return
    # A 48 MP render takes most of a minute on 2 cores: say that it runs.
    with collect_warnings() as caught, console.status("rendering the new focus..."):
        out, coc = render_bokeh(
            rgb,
            disp,
            strength=strength,
            focus_disparity=focus_value,
            focus_xy=parse_xy(focus) if focus else None,
            aperture=aper,
            depth_kind="disparity",
            normalize=False,
            highlight_threshold=highlight_threshold,
            highlight_gain=highlight_gain,
            quality=quality,
            device=device,
            return_coc=True,
            grain=grain,
        )
    for w in caught:
        console.print(f"[yellow]warning:[/] {escape(str(w.message))}")
    elapsed = time.perf_counter() - t0
    write_image(output, out, info=info, bit_depth=bit_depth)
    console.print(
        f"wrote {escape(str(output))} ({rgb.shape[1]}x{rgb.shape[0]}, CoC {float(coc.min()):+.1f}..{float(coc.max()):+.1f} px, {elapsed:.2f} s)"
    )


def _check_render_settings(highlight_threshold: float, highlight_gain: float, quality: str) -> None:
    """The renderer's own settings, refused (one line naming the option) before any work."""
    from pydantic import ValidationError

    from refocus.pipeline.config import settings_error
    from refocus.render import RenderConfig

    try:
        RenderConfig(highlight_threshold=highlight_threshold, highlight_gain=highlight_gain, quality=quality)
    except ValidationError as exc:
        raise settings_error(exc) from None


def _render_generative(console, rgb, info, disp, strength, focus, focus_value, output, bit_depth, options, aperture, t0):
    from rich.markup import escape

    from refocus.depth.focus import select_focus
    from refocus.io import write_image
    from refocus.pipeline.genfocus import get_engine
    from refocus.render import coc_map

    if aperture not in ("disc", "circle"):
        console.print("[yellow]note:[/] Genfocus's BokehNet takes no aperture shape; --aperture is not used")
    f = focus_value if focus_value is not None else select_focus(disp, point=parse_xy(focus)).focus_disparity
    coc = coc_map(disp, f, strength)
    with G.step_progress(console, "Genfocus BokehNet") as progressed:
        out = get_engine(options).bokeh(rgb, coc, progress=progressed)
    write_image(output, out, info=info, bit_depth=bit_depth)
    console.print(escape(
        f"wrote {output} ({rgb.shape[1]}x{rgb.shape[0]}, Genfocus BokehNet, CoC {float(coc.min()):+.1f}..{float(coc.max()):+.1f} px, "
        f"{time.perf_counter() - t0:.1f} s)"
    ))


def register(app: typer.Typer) -> None:
    app.command("render")(render_cmd)
