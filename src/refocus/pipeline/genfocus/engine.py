"""The genfocus engine: Genfocus's DeblurNet and BokehNet (FLUX.1-dev + LoRA) on refocus's
images, depth and focus.

Inputs and outputs follow refocus's conventions (float32 H x W x 3 sRGB in [0, 1], the
signed CoC map ``coc_px = K * (disparity - focus_disparity)`` at the input's resolution);
what is Genfocus's own:

* **Size.** The model sees the photo resized (Lanczos) to sides that are multiples of 16
  px, rounded up (Genfocus's rule), or, with ``long_side``, to that long side with both
  sides rounded to multiples of 16 (Genfocus crops instead; refocus keeps the whole
  frame). The result is resized back to the input's size.
* **Prompts, steps, guidance.** DeblurNet: "a sharp photo with everything in focus",
  guidance 3.5; BokehNet: "an excellent photo with a large aperture", guidance 1.0;
  28 steps.
* **Seeds.** DeblurNet: one generator seeded 42 draws the initial noise and then the
  conditions' VAE samples. BokehNet: the noise from a generator seeded 1234, the
  conditions' samples from one seeded 42. ``seed`` replaces 42 (DeblurNet) or 1234
  (BokehNet) for the noise.
* **Conditions.** DeblurNet: the photo (position offset 0). The pre-deblur variant: the
  pre-deblurred image at column offset +32 tokens, then the photo. BokehNet: the
  all-in-focus image and the defocus map ``clip(|coc_px| / 100, 0, 1)`` on three
  channels, given to the VAE in [0, 1] (not normalised to [-1, 1] as images are).
* **Strength.** Genfocus's K multiplies inverse metric depth (1/m); refocus's K
  multiplies disparity normalised to [0, 1]. For metric depth whose inverse spans
  ``[d_min, d_max]`` (1/m), ``K_refocus = K_genfocus * (d_max - d_min)``
  (:func:`refocus_strength`); both give the same |CoC| and so the same condition.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from refocus.errors import RefocusError
from refocus.pipeline.genfocus import weights as W

DEBLUR_PROMPT = "a sharp photo with everything in focus"
BOKEH_PROMPT = "an excellent photo with a large aperture"
DEBLUR_GUIDANCE = 3.5
BOKEH_GUIDANCE = 1.0
DEBLUR_SEED = 42
BOKEH_SEED = 1234
CONDITION_SEED = 42
#: |CoC| (px) that maps to 1 in BokehNet's defocus condition.
MAX_COC_PX = 100.0
SIZE_MULTIPLE = 16
#: Column offset (tokens) of the pre-deblurred image's stream.
PRE_DEBLUR_OFFSET = (0, 32)


@dataclass(frozen=True)
class GenfocusOptions:
    """How the engine runs.

    weights: folder with Genfocus's LoRA files (default: downloaded from the hub).
    base_model: FLUX.1-dev folder or hub id (default ``black-forest-labs/FLUX.1-dev``).
    steps: denoising steps (28). seed: see the module notes (None: Genfocus's).
    tiling: Genfocus's tiled denoising for frames of at least 512 px on the short side.
    device: "auto" (the GPU when there is one), "cuda" or "cpu".
    dtype: "auto" (bfloat16 on a GPU, float32 on the CPU, as Genfocus), "bfloat16", "float32".
    offload: ``enable_model_cpu_offload`` (each model on the GPU only while it runs).
    long_side: resize so that the long side is this many px first (0: the photo's size).
    pre_deblur: DeblurNet's pre-deblur variant, fed refocus's own DeblurNet output.
    """

    weights: str | None = None
    base_model: str | None = None
    steps: int = 28
    seed: int | None = None
    tiling: bool = True
    device: str = "auto"
    dtype: str = "auto"
    offload: bool = False
    long_side: int = 0
    pre_deblur: bool = False
    max_sequence_length: int = 512

    @classmethod
    def from_env(cls) -> "GenfocusOptions":
        """Options for callers without a command line (the UI, the benchmark):
        ``REFOCUS_GENFOCUS_WEIGHTS``, ``_BASE_MODEL``, ``_STEPS``, ``_OFFLOAD=1``, ``_PRE_DEBLUR=1``."""
        import os

        env = os.environ.get
        try:
            steps = int(env("REFOCUS_GENFOCUS_STEPS", "28"))
        except ValueError:
            raise RefocusError(f"REFOCUS_GENFOCUS_STEPS must be a whole number, got {env('REFOCUS_GENFOCUS_STEPS')!r}") from None
        return cls(weights=env("REFOCUS_GENFOCUS_WEIGHTS") or None, base_model=env("REFOCUS_GENFOCUS_BASE_MODEL") or None,
                   steps=steps, offload=env("REFOCUS_GENFOCUS_OFFLOAD") == "1",
                   pre_deblur=env("REFOCUS_GENFOCUS_PRE_DEBLUR") == "1").validated()

    def validated(self) -> "GenfocusOptions":
        if not 1 <= int(self.steps) <= 1000:
            raise RefocusError(f"--genfocus-steps must be between 1 and 1000, got {self.steps}")
        if self.device not in ("auto", "cuda", "cpu"):
            raise RefocusError(f"--device must be cpu, cuda or auto for the genfocus engine, got {self.device!r}")
        if self.dtype not in ("auto", "bfloat16", "float32"):
            raise RefocusError(f"--genfocus-dtype must be auto, bfloat16 or float32, got {self.dtype!r}")
        if self.long_side and not 64 <= int(self.long_side) <= 16384:
            raise RefocusError(f"--genfocus-long-side must be 0 or 64..16384 px, got {self.long_side}")
        return self


def refocus_strength(k_genfocus: float, inverse_depth_min: float, inverse_depth_max: float) -> float:
    """refocus's K (px over normalised disparity) equal to Genfocus's K (px per 1/m)."""
    from refocus.camera.lens import strength_for_normalised_disparity

    return strength_for_normalised_disparity(k_genfocus, inverse_depth_min, inverse_depth_max)


def defocus_condition(coc_px: np.ndarray) -> np.ndarray:
    """BokehNet's defocus condition (H x W, [0, 1]) from a signed CoC map in px."""
    return np.clip(np.abs(np.asarray(coc_px, dtype=np.float32)) / np.float32(MAX_COC_PX), 0, 1)


def model_size(height: int, width: int, long_side: int = 0) -> tuple[int, int]:
    """(height, width) the model runs at: multiples of 16 px."""
    m = SIZE_MULTIPLE
    if long_side:
        s = long_side / max(height, width)
        return max(m, round(height * s / m) * m), max(m, round(width * s / m) * m)
    return -(-height // m) * m, -(-width // m) * m


def _resize(a: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Lanczos resize of an H x W (x C) float map, channel by channel in float."""
    from PIL import Image

    if a.shape[:2] == tuple(hw):
        return np.asarray(a, dtype=np.float32)
    planes = a[..., None] if a.ndim == 2 else a
    out = np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(planes[..., c], dtype=np.float32), "F")
                               .resize((hw[1], hw[0]), Image.LANCZOS)) for c in range(planes.shape[2])], axis=-1)
    return out[..., 0] if a.ndim == 2 else out


def _fit(image: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """An image at the model's size, in [0, 1]: Lanczos overshoots, and the pipeline's
    image processor takes an image with negative values for one already in [-1, 1]."""
    return np.clip(_resize(image, hw), 0, 1)


def _check_image(image, what: str = "image") -> np.ndarray:
    a = np.asarray(image, dtype=np.float32)
    if a.ndim != 3 or a.shape[2] != 3:
        raise RefocusError(f"the genfocus engine takes an H x W x 3 {what}, got shape {a.shape}")
    if min(a.shape[:2]) < 16:
        raise RefocusError(f"the {what} is {a.shape[1]}x{a.shape[0]}; the genfocus engine needs at least 16x16 px")
    return np.clip(a, 0, 1)


class GenfocusEngine:
    """FLUX.1-dev loaded once, with the LoRAs a task needs added on first use."""

    def __init__(self, options: GenfocusOptions | None = None, pipe=None):
        self.options = (options or GenfocusOptions()).validated()
        self._pipe = pipe
        self._adapters: set[str] = set()

    # -- loading -----------------------------------------------------------------
    def _torch_setup(self):
        import torch

        dev = self.options.device
        if dev == "auto":
            dev = "cuda" if torch.cuda.is_available() else "cpu"
        if dev == "cuda" and not torch.cuda.is_available():
            raise RefocusError("--device cuda: no CUDA GPU is available to torch")
        dtype = self.options.dtype
        if dtype == "auto":
            dtype = "bfloat16" if dev == "cuda" else "float32"
        return dev, getattr(torch, dtype)

    def check_weights(self, tasks: list[str]) -> None:
        """Resolve (download if needed) everything ``tasks`` need; one line if not possible.
        Cheap when all is local: call it before long work."""
        W.require_packages()
        for task in tasks:
            W.resolve_lora(task, self.options.weights)
        if self._pipe is None:
            self._base = W.resolve_base(self.options.base_model)

    def pipeline(self, task: str):
        W.require_packages()
        lora = W.resolve_lora(task, self.options.weights)
        if self._pipe is None:
            from diffusers import FluxPipeline

            base = getattr(self, "_base", None) or W.resolve_base(self.options.base_model)
            dev, dtype = self._torch_setup()
            import torch

            try:
                pipe = FluxPipeline.from_pretrained(base, dtype=dtype)
            except Exception as exc:
                msg = str(exc).splitlines()[0][:160] if str(exc) else exc.__class__.__name__
                raise RefocusError(f"cannot load the base model from {base}: {msg}") from None
            pipe.set_progress_bar_config(disable=True)
            try:
                if self.options.offload and dev == "cuda":
                    pipe.enable_model_cpu_offload()
                else:
                    pipe.to(dev)
            except torch.OutOfMemoryError:
                raise RefocusError("out of GPU memory loading FLUX.1-dev (~34 GB in bf16): try --offload") from None
            self._pipe = pipe
        name = task.replace("-", "_")
        if name not in self._adapters:
            from pathlib import Path

            p = Path(lora)
            try:
                self._pipe.load_lora_weights(str(p.parent), weight_name=p.name, adapter_name=name)
            except Exception as exc:
                msg = str(exc).splitlines()[0][:160] if str(exc) else exc.__class__.__name__
                raise RefocusError(f"cannot load the Genfocus LoRA {p}: {msg}") from None
            self._adapters.add(name)
        # Only this task's adapter is active: modules outside the per-stream switch then
        # see no other LoRA.
        self._pipe.set_adapters([name])
        return self._pipe, name

    # -- tasks -------------------------------------------------------------------
    def _generators(self, noise_seed: int, cond_seed: int | None):
        import torch

        device = self._pipe._execution_device
        noise = torch.Generator(device=device).manual_seed(int(noise_seed))
        cond = noise if cond_seed is None else torch.Generator(device=device).manual_seed(int(cond_seed))
        return noise, cond

    def _run(self, task, prompt, guidance, conds, hw, noise_seed, cond_seed, progress):
        from refocus.pipeline.genfocus.sampler import sample

        pipe, _ = self.pipeline(task)
        noise, cond = self._generators(noise_seed, cond_seed)
        o = self.options
        return sample(pipe, prompt, conds, hw[0], hw[1], steps=int(o.steps), guidance_scale=guidance,
                      noise_generator=noise, cond_generator=cond, tiled=o.tiling,
                      max_sequence_length=o.max_sequence_length, progress=progress)

    def deblur(self, image: np.ndarray, pre_deblurred: np.ndarray | None = None, progress=None) -> np.ndarray:
        """All-in-focus image (Genfocus DeblurNet). With ``pre_deblurred`` (an H x W x 3
        image, e.g. refocus's DeblurNet output) the pre-deblur variant runs."""
        from refocus.pipeline.genfocus.sampler import ConditionInput

        img = _check_image(image)
        hw = model_size(*img.shape[:2], self.options.long_side)
        conds = [ConditionInput(_fit(img, hw), "deblur")]
        task = "deblur"
        if pre_deblurred is not None:
            pre = _check_image(pre_deblurred, "pre-deblurred image")
            task = "deblur-pre"
            conds = [ConditionInput(_fit(pre, hw), "deblur_pre", PRE_DEBLUR_OFFSET),
                     ConditionInput(conds[0].pixels, "deblur_pre")]
        seed = DEBLUR_SEED if self.options.seed is None else self.options.seed
        out = self._run(task, DEBLUR_PROMPT, DEBLUR_GUIDANCE, conds, hw, seed, None, progress)
        return np.clip(_resize(out, img.shape[:2]), 0, 1)

    def bokeh(self, all_in_focus: np.ndarray, coc_px: np.ndarray, progress=None) -> np.ndarray:
        """A photo with the defocus of ``coc_px`` (signed CoC radius, px at the image's
        resolution) from an all-in-focus image (Genfocus BokehNet)."""
        import torch

        from refocus.pipeline.genfocus.sampler import ConditionInput

        img = _check_image(all_in_focus, "all-in-focus image")
        coc = np.asarray(coc_px, dtype=np.float32)
        if coc.shape != img.shape[:2]:
            raise RefocusError(f"CoC map is {coc.shape[1]}x{coc.shape[0]} but the image is {img.shape[1]}x{img.shape[0]}")
        if not np.isfinite(coc).all():
            raise RefocusError("the CoC map has non-finite values")
        hw = model_size(*img.shape[:2], self.options.long_side)
        # The CoC is in px of the input; at the model's size it scales with the frame.
        scale = np.float32(hw[1] / img.shape[1])
        coc_m = coc if hw == img.shape[:2] else _resize(coc, hw) * scale
        dmap = torch.from_numpy(defocus_condition(coc_m))[None].repeat(3, 1, 1)[None]
        conds = [ConditionInput(_fit(img, hw), "bokeh"), ConditionInput(dmap, "bokeh", raw=True)]
        seed = BOKEH_SEED if self.options.seed is None else self.options.seed
        out = self._run("bokeh", BOKEH_PROMPT, BOKEH_GUIDANCE, conds, hw, seed, CONDITION_SEED, progress)
        return np.clip(_resize(out, img.shape[:2]), 0, 1)


_ENGINES: dict[GenfocusOptions, GenfocusEngine] = {}


def get_engine(options: GenfocusOptions | None = None) -> GenfocusEngine:
    """One engine (one loaded FLUX) per set of options in this process."""
    options = (options or GenfocusOptions()).validated()
    if options not in _ENGINES:
        _ENGINES.clear()  # FLUX takes tens of GB: never keep two
        _ENGINES[options] = GenfocusEngine(options)
    return _ENGINES[options]


def with_options(options: GenfocusOptions | None, **changes) -> GenfocusOptions:
    return replace(options or GenfocusOptions(), **changes)
