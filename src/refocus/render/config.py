"""Configuration of the bokeh renderer."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from refocus.aperture import ApertureConfig


class RenderConfig(BaseModel):
    """How to turn an all-in-focus image and a signed CoC map into a lens photo.

    Attributes
    ----------
    aperture:
        Aperture shape (see :class:`refocus.aperture.ApertureConfig`).
    highlight_threshold:
        sRGB luminance above which pixels are treated as clipped highlights whose
        true brightness was higher, 0..1. Below it nothing is boosted.
    highlight_gain:
        How much brighter a fully clipped light source (luminance 1) is taken to be:
        its linear luminance becomes ``1 + highlight_gain``. Only clipped pixels with
        few bright pixels around them count as light sources; a pale surface is left
        as recorded (see :mod:`refocus.render.highlights`). 0 turns it off. The boost
        is inverted after blurring, so in-focus pixels are unchanged.
    quality:
        ``"fast"``, ``"balanced"`` or ``"high"``: how large a blur is rendered at
        full resolution before switching to reduced-resolution layers, and how finely
        the CoC range is cut into layers. ``"fast"`` renders a disc's scales (a
        reduced-resolution kernel is never under 3 px), with coarser layer spacing and
        one render (:meth:`single_render`); ``"balanced"`` renders blades and image
        apertures at ``"high"``'s scales, where they keep their shape
        (:meth:`full_res_max_radius`).
    device:
        ``"cpu"`` uses the numpy path; ``"cuda"`` (or ``"torch-cpu"``) the torch path.
    smooth_sum:
        Sum the layers away from depth jumps, where one smooth surface is seen and
        nothing hides anything (:mod:`refocus.render.zone`); False composites with the
        *over* operator everywhere, as before 2026-12-07: about 1.5x faster on real
        photos, but a point light on a sloping surface loses part of its disc. The
        UI's preview and draft turn it off (:func:`refocus.pipeline.speed.preview_refocuser`);
        ``quality="fast"`` keeps it only for frames without depth jumps (:meth:`single_render`).
    """

    model_config = ConfigDict(frozen=True, allow_inf_nan=False)  # NaN passes ge/le bounds

    aperture: ApertureConfig = Field(default_factory=ApertureConfig)
    highlight_threshold: float = Field(0.92, ge=0.0, le=1.0)
    highlight_gain: float = Field(2.0, ge=0.0, le=1000.0)
    quality: Literal["fast", "balanced", "high"] = "balanced"
    device: Literal["cpu", "cuda", "torch-cpu", "auto"] = "cpu"
    smooth_sum: bool = True

    # Derived settings per quality level.
    def full_res_max_radius(self) -> float:
        """Largest |CoC| (px) rendered at full resolution; larger ones are downsampled,
        each to the scale at which its kernel's radius is half this to this.

        Not below 6 px: at "fast"'s former 3 px the kernels at reduced resolution were
        1.5-3 px, where a hexagon rasterises as a round blob (a 6-blade light at
        K 40 rendered as a soft disc), and on a 17 MP photo "fast" was not faster
        than "balanced" (11.9 s against 11.9 s, AMD EPYC 2 cores): rendering twice is
        what costs (:meth:`single_render`).

        "balanced" takes "high"'s 12 px for an aperture with a shape (blades, an
        image; a disc's cat's-eye is left at 6 px, which kept the UI's 1 MP preview at
        0.23 s instead of 0.46 s): with kernels of 3-6 px at reduced resolution a
        5-blade light of radius 25 px came out a soft round blob and a triangle lost
        its notch (found 2026-12-07 on a real night photo); at 6-12 px they keep their
        shape. Cost
        measured on the iPhone pug HEIC (12 MP, K 40, max |CoC| 23 px, 6 blades, AMD
        EPYC 2 cores, three runs each): 3.3 / 3.3 / 3.8 s -> 3.7 / 3.9 / 4.4 s."""
        # A rim or a ring is a shape inside the disc: at 3-6 px it would blur away too.
        shaped = self.aperture.shape != "disc" or self.aperture.profiled
        return {"fast": 6.0, "balanced": 12.0 if shaped else 6.0, "high": 12.0}[self.quality]

    def single_render(self) -> bool:
        """``"fast"`` renders the frame once: summed where it has no depth jump at all,
        else with *over* everywhere, never both blended (which costs 1.6-2.1x on a
        real photo; :mod:`refocus.render.zone`). Left out entirely, the summed render
        made "fast" slower than "balanced" on a frame without jumps (3.8 s against
        3.4 s at 12 MP, K 64, AMD EPYC): the over render alone costs more than the sum."""
        return self.quality == "fast"

    def layer_step(self) -> tuple[float, float]:
        """(minimum spacing in px, relative spacing) between adjacent CoC layers."""
        return {"fast": (2.0, 0.3), "balanced": (1.5, 0.2), "high": (1.5, 0.2)}[self.quality]
