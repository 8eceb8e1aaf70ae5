"""``refocus animate``: a focus pull between two points, as a video or GIF."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from refocus.cli.cmd_refocus import (
    AlignDepthOpt, ApertureOpt, BladesOpt, CatsEyeOpt, CurvatureOpt, RimOpt, RingOpt, DepthKindOpt, DepthModelOpt, DepthOpt, DeviceOpt, FNumberOpt, FullFrameOpt, SensorWidthOpt,
    HighlightOpt, HighlightThresholdOpt, MaxMpOpt, GrainOpt, NoDeblurOpt, QualityOpt, RotationOpt, StrengthOpt,
)


def register(app: typer.Typer) -> None:
    @app.command("animate")
    def animate_cmd(
        image: Path = typer.Argument(..., help="The photo."),
        start: str = typer.Option(..., "--from", help="Start focus: X,Y (pixels), a box X0,Y0,X1,Y1, a mask image, a disparity 0..1, or a distance like 1.5m (metric depth)."),
        end: str = typer.Option(..., "--to", help="End focus: X,Y (pixels), a box X0,Y0,X1,Y1, a mask image, a disparity 0..1, or a distance like 4m (metric depth)."),
        output: Path = typer.Option(..., "--output", "-o", help="Output video: .mp4, .mov, .mkv (H.264), .webm (VP9) or .gif."),
        frames: int = typer.Option(24, "--frames", help="Number of frames."),
        fps: float = typer.Option(12.0, "--fps", help="Frames per second."),
        max_size: int = typer.Option(1280, "--max-size", help="Longest side of the frames in px (0 = full size)."),
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
        device: str = DeviceOpt,
        quality: str = QualityOpt,
        highlight_gain: Optional[float] = HighlightOpt,
        highlight_threshold: Optional[float] = HighlightThresholdOpt,
        max_megapixels: Optional[float] = MaxMpOpt,
    ) -> None:
        """Render a focus pull of IMAGE from --from to --to (one depth, one deblur: no flicker)."""
        from rich.markup import escape

        from refocus.cli._console import print_notes, progress_bar, stderr_console
        from refocus.errors import RefocusError
        from refocus.pipeline import prepare
        from refocus.pipeline.animate import (
            VIDEO_SUFFIXES, check_fps, iter_focus_pull, parse_endpoint, plan_focus_pull, write_animation, written_size,
        )
        from refocus.pipeline.options import build_config, check_output, command_inputs

        check_output(output, command_inputs(image, depth, aperture), suffixes=VIDEO_SUFFIXES)
        if not 2 <= frames <= 2000:
            raise RefocusError(f"--frames must be in 2..2000, got {frames}")
        if max_size < 0:
            raise RefocusError(f"--max-size must be >= 0, got {max_size}")
        check_fps(fps)
        a, b = parse_endpoint(start), parse_endpoint(end)
        cfg = build_config(
            strength=strength, f_number=f_number, full_frame=full_frame, sensor_width_mm=sensor_width, aperture=aperture, blades=blades, rotation=rotation,
            curvature=curvature, cats_eye=cats_eye, rim=rim, ring=ring, depth=depth, depth_kind=depth_kind, depth_model=depth_model, align_depth=align_depth, no_deblur=no_deblur, grain=grain,
            device=device, quality=quality, highlight_gain=highlight_gain, highlight_threshold=highlight_threshold, max_megapixels=max_megapixels,
        )
        console = stderr_console()
        with console.status("reading the photo and its depth..."):
            photo = prepare(image, cfg, focus_points=tuple(e["focus_xy"] for e in (a, b) if "focus_xy" in e))
            if max_size and max(photo.shape) > max_size:
                s = max_size / max(photo.shape)
                photo = photo.resized(int(photo.shape[0] * photo.shape[1] * s * s) + 1)
            plan = plan_focus_pull(photo, cfg, a, b, frames)
        if plan[0][0] == plan[0][-1]:
            # Said before the frames are rendered: the user may have meant two planes.
            console.print(escape(f"note: --from and --to both focus at disparity {plan[0][0]:.3f}: the focus does not move "
                                 "(a still video)"))
        with progress_bar(console, transient=False) as prog:
            task = prog.add_task("rendering frames", total=frames)
            # Encoded as rendered: a long pull at full size never holds all its frames.
            write_animation(
                output, iter_focus_pull(photo, cfg, plan, progress=lambda i, n: prog.update(task, completed=i), as_uint8=True), fps
            )
        fds = plan[0]
        print_notes(console, photo.notes)
        h, w = written_size(output, *photo.shape[:2])
        padded = "" if (h, w) == tuple(photo.shape[:2]) else f" (the photo's {photo.shape[1]}x{photo.shape[0]} padded by an edge pixel: video needs even sizes)"
        console.print(escape(f"wrote {output}: {frames} frames {w}x{h}{padded} at {fps:g} fps, "
                             f"focus disparity {fds[0]:.3f} -> {fds[-1]:.3f}"))
