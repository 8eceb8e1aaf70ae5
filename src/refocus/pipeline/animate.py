"""Focus pulls: the focal plane moving between two points, as a video or GIF.

Every frame is rendered from the *same* prepared photo (one depth map, one
all-in-focus image), so only the focal plane changes from frame to frame and
nothing else can flicker.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from refocus.errors import RefocusError
from refocus.pipeline.config import FOCUS_SETTINGS, RefocusConfig
from refocus.pipeline.core import PreparedPhoto

VIDEO_SUFFIXES = (".mp4", ".gif", ".webm", ".mkv", ".mov")


def parse_endpoint(text: str) -> dict:
    """``"X,Y"`` (a pixel), ``"X0,Y0,X1,Y1"`` (a box), a mask image's path, ``"V"`` (a
    normalised disparity) or ``"Zm"`` (a distance in metres, with metric depth) ->
    config focus fields: every way ``--focus``/``--focus-value`` name a focal plane."""
    from refocus.pipeline.options import MASK_SUFFIXES, parse_focus_value, parse_numbers

    t = str(text).strip()
    n = len(t.split(","))
    # A mask's name first, as --focus reads it ("subject, v2.png" is not a point).
    if Path(t).suffix.lower() in MASK_SUFFIXES:
        if not Path(t).is_file():
            raise RefocusError(f"focus end mask not found: {t}")
        return {"focus_mask": t}
    if n == 2:
        return {"focus_xy": parse_numbers(t, 2, "focus point")}
    if n == 4:
        return {"focus_box": parse_numbers(t, 4, "focus box")}
    if n == 1:
        try:
            return parse_focus_value(t)
        except RefocusError:
            pass
    raise RefocusError(
        f"focus end must be X,Y (pixels), a box X0,Y0,X1,Y1, a mask image, a disparity 0..1 or a distance like 2.5m, got {text!r}"
    )


def _smoothstep(t: np.ndarray) -> np.ndarray:
    # A focus puller eases in and out; a linear ramp looks mechanical.
    return t * t * (3.0 - 2.0 * t)


def check_fps(fps: float) -> float:
    """Refuse a frame rate players cannot show; called before any work is done."""
    if not (0 < fps <= 120):
        raise RefocusError(f"--fps must be in (0, 120], got {fps:g}")
    return fps


def plan_focus_pull(
    photo: PreparedPhoto, cfg: RefocusConfig, start: dict, end: dict, frames: int = 24, ease: bool = True
) -> tuple[np.ndarray, bool]:
    """The focal plane of each frame and whether the pull renders from the all-in-focus image.

    Cheap next to rendering, and it is where a bad focus end (a point outside the
    photo, a distance without metric depth) is found, so callers run it before they
    show progress for the frames.
    """
    if frames < 2:
        raise RefocusError(f"--frames must be at least 2, got {frames}")
    clear = dict.fromkeys(FOCUS_SETTINGS)
    fa = photo.focus_disparity(cfg.model_copy(update={**clear, **start}))
    fb = photo.focus_disparity(cfg.model_copy(update={**clear, **end}))
    t = np.linspace(0.0, 1.0, frames)
    fds = fa + (fb - fa) * (_smoothstep(t) if ease else t)
    # One decision for the whole pull (a flicker-free one renders every frame from the
    # same image), judged at its ends and its middle, with the CoC the frames get.
    probes = [photo.coc(cfg, float(f), photo.strength(cfg, float(f))) for f in (fa, fb, fds[frames // 2])]
    return fds.astype(np.float32), photo.pipeline.use_all_in_focus(photo, cfg, probes)


def focus_pull(
    photo: PreparedPhoto,
    cfg: RefocusConfig,
    start: dict,
    end: dict,
    frames: int = 24,
    ease: bool = True,
    progress: Callable[[int, int], None] | None = None,
    plan: tuple[np.ndarray, bool] | None = None,
    as_uint8: bool = False,
) -> tuple[list[np.ndarray], np.ndarray]:
    """Render a focus pull.

    Parameters
    ----------
    photo : the prepared photo (depth and, when needed, all-in-focus computed once).
    cfg : settings (strength, aperture...); its own focus is ignored.
    start, end : focus fields (``{"focus_xy": (x, y)}``, ``{"focus_value": v}``, ``{"focus_distance_m": z}``).
    frames : number of frames, >= 2.
    progress : called with (done, total) after each frame.
    plan : :func:`plan_focus_pull`'s result for these arguments, when the caller already has it.
    as_uint8 : keep each frame as 8-bit sRGB (what :func:`write_animation` writes) as soon
        as it is rendered: a quarter of the memory (24 full-size 12 MP frames: 0.9 GB, not 3.5 GB).

    Returns
    -------
    frames : list of (H, W, 3) float32 sRGB images, ready for formats without a colour
        profile or alpha (video, GIF): a photo in another colour space (an iPhone's
        Display P3) is converted to sRGB, and one with alpha is shown over white.
    focus_disparities : (frames,) the focal plane of each frame.
    """
    plan = plan if plan is not None else plan_focus_pull(photo, cfg, start, end, frames, ease)
    return list(iter_focus_pull(photo, cfg, plan, progress, as_uint8)), plan[0]


def iter_focus_pull(
    photo: PreparedPhoto,
    cfg: RefocusConfig,
    plan: tuple[np.ndarray, bool],
    progress: Callable[[int, int], None] | None = None,
    as_uint8: bool = False,
) -> Iterator[np.ndarray]:
    """The frames of :func:`focus_pull`, each rendered when it is asked for.

    Given to :func:`write_animation`, a video holds one frame in memory at a time: a
    pull of 240 frames at 12 MP kept as a list needed 8.8 GB more than one frame.
    """
    from refocus.io.color import display_srgb
    from refocus.io.image import flatten

    fds, use_aif = plan
    pipeline = photo.pipeline
    info = photo.info
    for i, fd in enumerate(fds):
        img, _ = pipeline.render(photo, cfg, float(fd), photo.strength(cfg, float(fd)), use_all_in_focus=use_aif)
        if info is not None:
            img = display_srgb(flatten(img, info.alpha), info.icc_profile)
        yield frame_to_uint8(img) if as_uint8 else img
        if progress is not None:
            progress(i + 1, len(fds))


#: The shortest GIF frame delay players honour (10 ms units; browsers show a delay of
#: 0 or 10 ms as 100 ms).
GIF_MIN_DELAY_MS = 20


def gif_timing(n: int, fps: float) -> tuple[list[int], list[int]]:
    """Which of ``n`` frames a GIF at ``fps`` shows and each one's delay in ms.

    GIF delays are whole centiseconds: each frame ends at its own time rounded to 10 ms
    (83 ms each at 12 fps played at 12.5 fps, 80 ms, and a pull ran 4 % short). Above
    50 fps, frames are dropped so that none is shorter than :data:`GIF_MIN_DELAY_MS`,
    keeping the pull's duration (``--fps 60`` gave 10 ms delays, which browsers show as
    100 ms: a pull six times too slow).
    """
    step = 1000.0 / fps
    total = n * step
    if step >= GIF_MIN_DELAY_MS:
        keep = list(range(n))
    else:  # slots of at least 20 ms over the same duration, first and last frame kept
        m = max(min(n, 2), int(total // GIF_MIN_DELAY_MS))
        keep = [0] if m == 1 else [int(round(k * (n - 1) / (m - 1))) for k in range(m)]
        step = total / m
    ends = [int(round((i + 1) * step / 10.0)) * 10 for i in range(len(keep))]
    delays = [e - s for s, e in zip([0] + ends[:-1], ends)]
    return keep, [max(GIF_MIN_DELAY_MS if len(keep) < n else 10, d) for d in delays]


def frame_to_uint8(frame: np.ndarray) -> np.ndarray:
    """A frame as 8-bit sRGB: float in [0, 1] scaled and rounded, uint8 as it is."""
    if frame.dtype == np.uint8:
        return frame
    return np.round(np.clip(np.nan_to_num(np.asarray(frame, dtype=np.float32), nan=0.0), 0, 1) * 255).astype(np.uint8)


def written_size(path, h: int, w: int) -> tuple[int, int]:
    """(height, width) of the frames a focus pull of H x W writes to ``path``: a
    video's yuv420p needs even sizes, so an odd side gains one edge pixel; a GIF
    keeps the photo's."""
    if Path(path).suffix.lower() == ".gif":
        return h, w
    return h + h % 2, w + w % 2


def write_animation(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float = 12.0) -> Path:
    """Write frames (float sRGB in [0, 1], or uint8) as MP4/WebM/MKV/MOV (ffmpeg) or GIF, atomically.

    ``frames`` may be an iterator (:func:`iter_focus_pull`): a video is then encoded as
    they come, one in memory at a time; a GIF needs them all (one palette for all).
    An error or Ctrl-C while they are made leaves no file.
    """
    import itertools

    from refocus.io import atomic_write_bytes

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise RefocusError(f"unsupported animation format {suffix or '(none)'}: use {', '.join(VIDEO_SUFFIXES)}")
    check_fps(fps)
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise RefocusError("no frames to write")
    frames = itertools.chain([first], frames)

    def _write(tmp: Path) -> None:
        if suffix == ".gif":
            from refocus.io import save_gif

            frames_all = [frame_to_uint8(f) for f in frames]

            # One palette for the whole pull (Pillow's default per-frame one greys out
            # small saturated areas and flickers), built from every frame.
            keep, durations = gif_timing(len(frames_all), fps)
            if len(keep) < len(frames_all):
                import warnings

                warnings.warn(f"{path.name}: a GIF shows at most {1000 // GIF_MIN_DELAY_MS} frames a second: {len(keep)} of the "
                              f"{len(frames_all)} frames written, over the same time (use .mp4 for --fps {fps:g})", stacklevel=2)
            save_gif(tmp, [frames_all[i] for i in keep], duration_ms=durations)
            return
        import imageio.v2 as imageio

        h, w = np.shape(first)[:2]
        # yuv420p (what players accept) needs even sizes: pad by one edge pixel.
        ph, pw = (n - m for n, m in zip(written_size(path, h, w), (h, w)))
        codec = {".webm": "libvpx-vp9"}.get(suffix, "libx264")
        # RGB -> YUV with the BT.709 matrix, and the stream says so (and that its
        # colours are sRGB): an untagged stream was converted with BT.601, which
        # players assume only for small (SD) videos; an HD one was shown with
        # shifted hues (red as 255,23,0, green darkened).
        params = ["-vf", "scale=out_color_matrix=bt709:out_range=tv,"
                  "setparams=range=tv:color_primaries=bt709:color_trc=iec61966-2-1:colorspace=bt709"]
        if codec == "libvpx-vp9":
            # Constant quality: without it libvpx falls back to CRF 32 (soft) and says so on stderr.
            params += ["-crf", "24", "-b:v", "0"]
        if suffix in (".mp4", ".mov"):
            params += ["-movflags", "+faststart"]  # playable while it downloads
        try:
            writer = imageio.get_writer(
                tmp, format="FFMPEG", mode="I", fps=fps, codec=codec, quality=8 if codec == "libx264" else None,
                macro_block_size=1, pixelformat="yuv420p", output_params=params,
            )
        except Exception as exc:
            raise RefocusError(f"cannot write {suffix} video (ffmpeg unavailable?): {exc}".splitlines()[0]) from None
        with writer:
            try:
                for f in frames:  # one frame at a time in 8 bits: no second copy of a long pull
                    a = frame_to_uint8(f)
                    writer.append_data(np.pad(a, ((0, ph), (0, pw), (0, 0)), mode="edge") if ph or pw else a)
            except BaseException as exc:
                if not isinstance(exc, Exception):
                    _stop_ffmpeg(writer, exc)
                raise

    return atomic_write_bytes(path, _write)


def _stop_ffmpeg(writer, exc: BaseException) -> None:
    """Kill the writer's ffmpeg now (Ctrl-C while frames are encoded as they are rendered).

    Closed normally, ffmpeg went on to finish the file (moving its index to the front)
    while the temporary file was being removed, and printed "Unable to re-open ...",
    "Error writing trailer" after "interrupted". imageio-ffmpeg kills it instead when
    the interrupt is raised inside its writing generator.
    """
    gen = getattr(writer, "_write_gen", None)
    if gen is None:
        return
    try:
        gen.throw(exc)
    except BaseException:  # the same interrupt, back from the generator
        pass
