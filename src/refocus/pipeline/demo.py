"""The bundled example: a small photo with its disparity, refocused a few ways."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Callable

from refocus.errors import RefocusError

#: The subject (the hiker) in the bundled photo, pixels.
SUBJECT_XY = (490.0, 413.0)


def demo_files() -> tuple[Path, Path]:
    """Paths of the bundled photo and its disparity map (16-bit PNG, larger = nearer)."""
    root = resources.files("refocus") / "data"
    photo, disp = Path(str(root / "demo.jpg")), Path(str(root / "demo-disparity.png"))
    if not photo.exists() or not disp.exists():
        raise RefocusError(f"the bundled demo example is missing from {root}; reinstall refocus")
    return photo, disp


#: What the demo writes into its folder.
DEMO_FILES = ("near-focus.jpg", "near-focus-coc.png", "near-focus-hexagon.jpg", "far-focus.jpg", "depth.png", "focus-pull.gif")

#: Left in a folder the demo wrote, so that a rerun may replace its own files there,
#: and only there (a user's own ``depth.png`` elsewhere is never replaced unasked).
DEMO_MARK = ".refocus-demo"


def _written_by_demo(folder: Path) -> bool:
    """Whether ``folder`` is one the demo wrote: it has the mark, or (written before the
    mark existed, 2026-12-06) it holds the demo's files and nothing else."""
    if (folder / DEMO_MARK).exists():
        return True
    try:
        names = {p.name for p in folder.iterdir() if not p.name.startswith(".")}
    except OSError:
        return False
    return names == set(DEMO_FILES)


@dataclass
class DemoOutput:
    path: Path
    what: str


def run_demo(
    out_dir: str | Path = "refocus-demo", frames: int = 12, progress: Callable[[str], None] | None = None,
    overwrite: bool = False,
) -> list[DemoOutput]:
    """Write refocused variants of the bundled photo into ``out_dir``.

    Near focus and far focus with a disc aperture, near focus with a 6-blade
    aperture, the intermediate maps, and a focus pull GIF. Returns what was written.
    The user names the folder, not the files in it: an existing file of one of those
    names is replaced only in a folder an earlier demo wrote, or with ``overwrite``.
    """
    from refocus.io.outputs import check_outputs

    from refocus.aperture import ApertureConfig
    from refocus.io import write_image
    from refocus.pipeline.animate import focus_pull, write_animation
    from refocus.pipeline.config import RefocusConfig
    from refocus.pipeline.core import prepare
    from refocus.pipeline.visual import coc_to_rgb, disparity_to_rgb

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise RefocusError(f"{out} is a file; --output-dir names a folder for the demo's files")
    check_outputs((), (), [out / n for n in DEMO_FILES], overwrite=overwrite or _written_by_demo(out))
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / DEMO_MARK).touch()
    except OSError as exc:
        raise RefocusError(f"cannot create {out}: {exc.strerror or exc}") from None
    photo_path, disp_path = demo_files()
    say = progress or (lambda s: None)
    cfg = RefocusConfig(depth_path=str(disp_path), strength=14.0, focus_xy=SUBJECT_XY)
    say("reading the photo and its depth")
    photo = prepare(photo_path, cfg)
    written: list[DemoOutput] = []

    def still(name: str, what: str, c: RefocusConfig) -> None:
        say(f"rendering {name}")
        fd = photo.focus_disparity(c)
        img, coc = photo.render(c, fd)
        written.append(DemoOutput(write_image(out / name, img, photo.info), what))
        return coc

    coc = still("near-focus.jpg", "focus on the hiker (point 490,413), disc aperture, K = 14 px", cfg)
    write_image(out / "near-focus-coc.png", coc_to_rgb(coc, photo.image))
    written.append(DemoOutput(out / "near-focus-coc.png", "signed CoC of near-focus.jpg: orange in front, blue behind, green in focus"))
    still(
        "near-focus-hexagon.jpg",
        "same focus, 6-blade aperture rotated 15 degrees, with highlights boosted",
        cfg.model_copy(update={"aperture": ApertureConfig(shape="polygon", blades=6, rotation_deg=15.0), "highlight_gain": 4.0}),
    )
    still("far-focus.jpg", "focus on the far mountains (disparity 0.05), disc aperture, K = 14 px", cfg.model_copy(update={"focus_xy": None, "focus_value": 0.05}))
    write_image(out / "depth.png", disparity_to_rgb(photo.disparity))
    written.append(DemoOutput(out / "depth.png", "the disparity map (yellow = near, blue = far)"))
    say("rendering the focus pull")
    small = photo.resized(320 * 344)
    frames_out, _ = focus_pull(small, cfg.model_copy(update={"quality": "fast"}), {"focus_value": 0.05}, {"focus_xy": SUBJECT_XY}, frames)
    # Play it forwards then back so that the loop has no jump.
    written.append(DemoOutput(write_animation(out / "focus-pull.gif", frames_out + frames_out[-2:0:-1], fps=10), f"focus pull far -> hiker -> far, {2 * frames - 2} frames"))
    return written
