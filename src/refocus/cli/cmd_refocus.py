"""``refocus refocus``: one photo, a new focus."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from refocus.cli import _genfocus as G
from refocus.io.outputs import DEFAULT_JPEG_QUALITY, check_jpeg_quality
# Options shared with ``animate`` and ``batch`` (they import them from here).
FocusOpt = typer.Option(
    None, "--focus",
    help="Focus point X,Y (pixels), box X0,Y0,X1,Y1, a mask image (white or opaque = the subject; the photo's aspect ratio), "
    "or 'auto' (default).",
)
FocusValueOpt = typer.Option(
    None, "--focus-value",
    help="Focus on this normalised disparity, 0 (far) .. 1 (near), or at a distance with metric depth, e.g. 2.5m.",
)
FocusRangeOpt = typer.Option(
    None,
    "--focus-range",
    help="Keep a band of normalised disparity sharp, e.g. 0.4:0.7, or of distance with metric depth, e.g. 1.5m:2.5m; "
    "the blur grows from its ends outside it.",
)
StrengthOpt = typer.Option(None, "--strength", "-k", help="Blur strength K: CoC radius in px between nearest and farthest point, or 'auto': the lens a Lens Blur photo states (default: that lens when the photo states one, else 1.5% of the long side, at most 3% of the short side for frames wider than 2:1).")
FNumberOpt = typer.Option(None, "--f-number", help="Derive the strength from EXIF at this f-number (needs metric depth).")
FullFrameOpt = typer.Option(False, "--full-frame", help="Read --f-number as a full-frame (35 mm) equivalent, as phone portrait modes do "
                            "(a phone's own lens blurs ~4-7x less at the same f-number).")
SensorWidthOpt = typer.Option(
    None, "--sensor-width",
    help="Sensor width along the long side in mm, for --f-number when EXIF does not state it (Micro Four Thirds 17.3, APS-C 23.5, full frame 36).",
)
ApertureOpt = typer.Option("disc", "--aperture", help="disc, polygon, or a grayscale image of the aperture shape.")
BladesOpt = typer.Option(6, "--blades", help="Diaphragm blades (polygon), 3..16.")
RotationOpt = typer.Option(0.0, "--rotation", help="Aperture rotation, degrees counter-clockwise.")
CurvatureOpt = typer.Option(0.0, "--curvature", help="Blade curvature, 0 (straight) .. 1 (disc).")
CatsEyeOpt = typer.Option(0.0, "--cats-eye", help="Cat's-eye clipping towards the corners, 0..1.")
RimOpt = typer.Option(
    0.0, "--rim",
    help="-1..1: > 0 bright-rimmed discs behind the focal plane and soft ones in front (soap-bubble bokeh, a lens with "
    "under-corrected spherical aberration), < 0 the reverse (disc and polygon apertures).",
)
RingOpt = typer.Option(0.0, "--ring", help="0..0.9: a mirror lens's central obstruction, a fraction of the radius: ring-shaped discs.")
DepthOpt = typer.Option(None, "--depth", "-d", help="Depth or disparity map (.png, .npy, .pfm, .tif, .exr).")
DepthKindOpt = typer.Option(None, "--depth-kind", help="What --depth holds: disparity (larger = nearer) or depth (distance).")
AlignDepthOpt = typer.Option(
    False, "--align-depth",
    help="Align a depth map already at the photo's size with the photo's edges too (maps of another size always are): "
    "for a map whose outlines are soft or off the subject's, which makes a bright subject glow over the blur.",
)
DepthModelOpt = typer.Option(
    None, "--depth-model",
    help="Depth network for a photo without depth: a Hugging Face id or local folder (default "
    "depth-anything/Depth-Anything-V2-Small-hf; also e.g. apple/DepthPro-hf, "
    "depth-anything/Depth-Anything-V2-Metric-Indoor-Small-hf).",
)
NoDeblurOpt = typer.Option(False, "--no-deblur", help="Render from the input photo as it is (skip DeblurNet).")
GrainOpt = typer.Option(
    False, "--grain",
    help="Add back the photo's own noise where the new blur averaged it away, so blurred areas are as grainy as sharp ones "
    "(a lens blurs before the sensor adds its noise).",
)
DeviceOpt = typer.Option("cpu", "--device", help="cpu, cuda or auto.")
QualityOpt = typer.Option("balanced", "--quality", help="Renderer quality: fast (about half the time on a real photo: no summed render on smooth surfaces, coarser layers), balanced or high (larger blur at full resolution).")
HighlightOpt = typer.Option(None, "--highlight-gain", help="Boost of small clipped highlights, the light sources (default 2; 0 = none).")
HighlightThresholdOpt = typer.Option(
    None, "--highlight-threshold", help="sRGB luminance from which a pixel counts as a light source, 0..1 (default 0.92; lower it for lights the camera did not clip)."
)
JpegQualityOpt = typer.Option(
    DEFAULT_JPEG_QUALITY, "--jpeg-quality",
    help="Quality of a JPEG or WebP output, 1..100 (from 90 with full-resolution colour, 4:4:4).",
)
MaxMpOpt = typer.Option(
    None, "--max-megapixels",
    help="Pixel budget for every image read, checked before decoding (megapixels; default: $REFOCUS_MAX_MEGAPIXELS or 100).",
)


def _focal_plane_words(result) -> str:
    """The focal plane as the summary line says it: its distance too on metric depth."""
    dist = getattr(result, "focus_distance_m", None)
    if dist is None:
        return f"disparity {result.focus_disparity:.3f}"
    return f"{dist:.3g} m (disparity {result.focus_disparity:.3f})"


def _aif_words(result) -> str:
    if not result.deblurred:
        return "no deblurring"
    return "from the stored all-in-focus original" if result.all_in_focus_source == "stored original" else "deblurred"


def register(app: typer.Typer) -> None:
    @app.command("refocus")
    def refocus_cmd(
        image: Path = typer.Argument(..., help="The photo (JPEG, PNG, TIFF, WebP, HEIC...)."),
        output: Path = typer.Option(..., "--output", "-o", help="Output file (.png, .jpg, .tif, .webp)."),
        focus: Optional[str] = FocusOpt,
        focus_value: Optional[str] = FocusValueOpt,
        focus_range: Optional[str] = FocusRangeOpt,
        strength: Optional[str] = StrengthOpt,
        f_number: Optional[float] = FNumberOpt,
        full_frame: bool = FullFrameOpt,
        sensor_width: Optional[float] = SensorWidthOpt,
        aperture: str = ApertureOpt,
        blades: int = BladesOpt,
        rotation: float = RotationOpt,
        curvature: float = CurvatureOpt,
        cats_eye: float = CatsEyeOpt,
        rim: float = RimOpt,
        ring: float = RingOpt,
        depth: Optional[Path] = DepthOpt,
        depth_kind: Optional[str] = DepthKindOpt,
        depth_model: Optional[str] = DepthModelOpt,
        align_depth: bool = AlignDepthOpt,
        no_deblur: bool = NoDeblurOpt,
        grain: bool = GrainOpt,
        save_intermediate: Optional[Path] = typer.Option(
            None, "--save-intermediate", help="Folder for the all-in-focus image, depth and signed CoC map (PNG + .npy)."
        ),
        device: Optional[str] = G.GenfocusDeviceOpt,
        quality: str = QualityOpt,
        highlight_gain: Optional[float] = HighlightOpt,
        highlight_threshold: Optional[float] = HighlightThresholdOpt,
        bit_depth: Optional[int] = typer.Option(None, "--bit-depth", help="8 or 16 (16: PNG/TIFF only); default: the input's."),
        jpeg_quality: int = JpegQualityOpt,
        max_megapixels: Optional[float] = MaxMpOpt,
        overwrite: bool = typer.Option(False, "--overwrite", help="Let --save-intermediate replace files already in its folder."),
        engine: str = G.EngineOpt,
        genfocus_weights: Optional[Path] = G.GenfocusWeightsOpt,
        base_model: Optional[str] = G.BaseModelOpt,
        steps: int = G.StepsOpt,
        seed: Optional[int] = G.SeedOpt,
        no_tiling: bool = G.NoTilingOpt,
        offload: bool = G.OffloadOpt,
        dtype: str = G.DtypeOpt,
        long_side: int = G.LongSideOpt,
        pre_deblur: bool = G.PreDeblurOpt,
    ) -> None:
        """Refocus IMAGE: depth -> DeblurNet -> bokeh renderer, written to -o.

        Without --depth, a depth map next to the photo named PHOTO-disparity.png
        (.npy, .pfm, .tif, .exr) is used, as in `refocus batch`.

        Engines (--engine): physical, the default, runs refocus's DeblurNet and its
        layered renderer (seconds on a CPU). genfocus runs the seed paper's generative
        models, Genfocus (Tuan Mu, Huang, Liu 2025): its DeblurNet then its BokehNet,
        LoRAs on FLUX.1-dev, on refocus's depth and focus selection; BokehNet gets
        the all-in-focus image and the defocus map min(|K (d - d_focus)| / 100 px, 1).
        It needs pip install 'refocus[genfocus]', a CUDA GPU with about 45 GB
        (less with --offload) and the weights: downloaded on first use from the
        Hugging Face hub (FLUX.1-dev is gated: accept its licence on huggingface.co,
        then `hf auth login`), or --genfocus-weights DIR and --base-model PATH.
        Without them it stops with one line (exit 2). --no-deblur gives BokehNet the
        photo itself. Aperture, quality and highlight options do not apply to it.
        """
        from rich.markup import escape

        from refocus.cli._console import print_notes, stage_progress, stderr_console
        from refocus.io import write_image
        from refocus.io.outputs import check_bit_depth
        from refocus.pipeline import save_intermediates
        from refocus.pipeline.options import build_config, check_output, command_inputs
        from refocus.pipeline.visual import intermediate_paths

        check_bit_depth(output, bit_depth)  # before the work, not when writing the result
        check_jpeg_quality(jpeg_quality, "--jpeg-quality")
        gen = G.genfocus_options(engine, device, genfocus_weights, base_model, steps, seed, no_tiling, offload, dtype,
                                 long_side, pre_deblur)
        device = device or ("auto" if gen is not None else "cpu")
        unnamed = intermediate_paths(save_intermediate) if save_intermediate is not None else []
        check_output(output, command_inputs(image, depth, aperture, focus) + [genfocus_weights], unnamed=unnamed, overwrite=overwrite,
                     photo=image)
        cfg = build_config(
            focus=focus, focus_value=focus_value, focus_range=focus_range, strength=strength, f_number=f_number, full_frame=full_frame, sensor_width_mm=sensor_width, aperture=aperture,
            blades=blades, rotation=rotation, curvature=curvature, cats_eye=cats_eye, rim=rim, ring=ring, depth=depth,
            depth_kind=depth_kind, depth_model=depth_model, align_depth=align_depth, no_deblur=no_deblur, grain=grain, device=device,
            quality=quality, highlight_gain=highlight_gain, highlight_threshold=highlight_threshold, max_megapixels=max_megapixels,
        )
        console = stderr_console()
        if gen is not None:
            from refocus.pipeline.genfocus.run import refocus_generative

            with G.step_progress(console, "Genfocus") as progressed:
                result = refocus_generative(image, cfg, gen, progress=progressed)
        else:
            from refocus.pipeline.refocuser import default_refocuser, reporting

            with stage_progress(console) as said:
                result = reporting(default_refocuser(), said).refocus(image, cfg)
        write_image(output, result.image, result.info, bit_depth=bit_depth, quality=jpeg_quality)
        if save_intermediate is not None:
            save_intermediates(result, save_intermediate)
        print_notes(console, result.notes)
        h, w = result.image.shape[:2]
        console.print(escape(
            f"wrote {output} ({w}x{h}): focus {cfg.focus_description()} -> {_focal_plane_words(result)}, "
            f"strength {result.strength:.1f} px, {_aif_words(result)}, "
            f"depth from {result.depth_source}, {sum(result.timings_s.values()):.1f} s"
        ))
        if save_intermediate is not None:
            console.print(escape(f"intermediates in {save_intermediate}/"))
