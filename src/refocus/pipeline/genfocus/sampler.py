"""Genfocus's sampler on a diffusers ``FluxPipeline``: conditions as extra image-token
branches, the LoRA active only on those branches, and Genfocus's tiled denoising.

What the released method does (read from the authors' code, reproduced here):

* **Branches.** The token streams are: the prompt (T5), the noisy latent image, and one
  stream per condition image (VAE-encoded, packed like the latents). All streams share
  the transformer's weights. The text and latent streams attend to every stream; a
  condition stream attends to the text, the latents and itself, never to another
  condition.
* **Conditions are clean.** A condition stream runs at timestep 0 with guidance 1 and
  keeps the prompt's pooled embedding.
* **The LoRA touches only condition tokens.** In the modules Genfocus's LoRAs adapt (the
  image embedder and every per-stream projection of the image path), a condition stream
  uses its adapter at scale exactly 1 (not peft's ``lora_alpha / r``) and the text and
  latent streams use the base weights. Anything else a LoRA file adapts keeps peft's
  ordinary behaviour.
* **Single blocks.** Each stream is normalised and modulated with its own embedding (in
  FLUX itself text and image are concatenated first; with one timestep that is the same,
  with clean condition streams it is not).
* **Tiles.** When the latent grid is at least ``tile`` tokens on each side (and tiling is
  on), each step runs the transformer on ``tile x tile`` token windows with 1/8 overlap
  (the last window flush with the far edge), every stream of a window carrying the
  position ids of one fixed ``tile x tile`` grid (a condition's position offset is not
  applied there), and blends the windows' velocity predictions with a Gaussian weight
  ``exp(-(x^2 + y^2))`` over ``[-2, 2]^2``. Windows are visited column by column.

Only what the released inference scripts use is implemented: no image guidance, no
key/value cache, no latent masks.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

#: Window side in latent tokens (16 px each with FLUX's VAE: 512 px).
TILE_TOKENS = 32


@dataclass
class ConditionInput:
    """One condition stream.

    ``pixels``: an H x W x 3 float image in [0, 1] (normalised to [-1, 1] by the
    pipeline's image processor, as a photo is) when ``raw`` is False; a 1 x 3 x H x W
    tensor given to the VAE as it is when ``raw`` is True (Genfocus's defocus map, in [0, 1]).
    ``offset``: added to the (row, column) position ids of its tokens.
    """

    pixels: object
    adapter: str | None
    offset: tuple[int, int] = (0, 0)
    raw: bool = False


@dataclass
class _Stream:
    hidden: torch.Tensor
    temb: torch.Tensor
    rope: tuple[torch.Tensor, torch.Tensor]
    adapter: str | None


def _lora_layers(modules):
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [m for m in modules if isinstance(m, BaseTunerLayer)]


@contextmanager
def only_adapter(modules, adapter: str | None):
    """Within the block, the given peft layers apply ``adapter`` at scale 1 and no other
    active adapter (``adapter=None``: the base weights)."""
    layers = _lora_layers(modules)
    saved = [dict(layer.scaling) for layer in layers]
    for layer in layers:
        for name in layer.active_adapters:
            if name in layer.scaling:
                layer.scaling[name] = 1 if name == adapter else 0
    try:
        yield
    finally:
        for layer, scaling in zip(layers, saved):
            layer.scaling.clear()
            layer.scaling.update(scaling)


def _fp16_safe(h: torch.Tensor) -> torch.Tensor:
    # Activations of FLUX overflow float16's range; saturate rather than produce inf.
    return h.clip(-65504, 65504) if h.dtype == torch.float16 else h


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    b, n, c = x.shape
    return x.view(b, n, heads, c // heads).transpose(1, 2)


def _attend(attn, text: list, images: list, streams: list[_Stream], visible: torch.Tensor):
    """Joint attention over all streams; returns the per-stream outputs (text first)."""
    from diffusers.models.embeddings import apply_rotary_emb

    qkv = []
    for x in text:
        q, k, v = (_heads(p(x), attn.heads) for p in (attn.add_q_proj, attn.add_k_proj, attn.add_v_proj))
        qkv.append((attn.norm_added_q(q), attn.norm_added_k(k), v))
    for x, s in zip(images, streams[len(text):]):
        with only_adapter((attn.to_q, attn.to_k, attn.to_v), s.adapter):
            q, k, v = (_heads(p(x), attn.heads) for p in (attn.to_q, attn.to_k, attn.to_v))
        qkv.append((attn.norm_q(q), attn.norm_k(k), v))
    qkv = [(apply_rotary_emb(q, s.rope), apply_rotary_emb(k, s.rope), v) for (q, k, v), s in zip(qkv, streams)]
    out = []
    for i, (q, _, _) in enumerate(qkv):
        seen = [j for j in range(len(qkv)) if visible[i, j]]
        keys = torch.cat([qkv[j][1] for j in seen], dim=2)
        values = torch.cat([qkv[j][2] for j in seen], dim=2)
        o = F.scaled_dot_product_attention(q, keys, values).to(q.dtype)
        out.append(o.transpose(1, 2).flatten(2))
    return out


def _double_block(block, streams: list[_Stream], visible):
    text_s, image_s = streams[0], streams[1:]
    t_mod = block.norm1_context(text_s.hidden, emb=text_s.temb)
    i_mod = []
    for s in image_s:
        with only_adapter((block.norm1.linear,), s.adapter):
            i_mod.append(block.norm1(s.hidden, emb=s.temb))
    att = _attend(block.attn, [t_mod[0]], [m[0] for m in i_mod], streams, visible)
    text_out = block.attn.to_add_out(att[0])
    image_out = []
    for s, o in zip(image_s, att[1:]):
        if getattr(block.attn, "to_out", None) is not None:
            with only_adapter((block.attn.to_out[0],), s.adapter):
                o = block.attn.to_out[0](o)
        image_out.append(o)

    _, gate_msa, shift_mlp, scale_mlp, gate_mlp = t_mod
    h = text_s.hidden + text_out * gate_msa.unsqueeze(1)
    n = block.norm2_context(h) * (1 + scale_mlp[:, None]) + shift_mlp[:, None]
    text_s.hidden = _fp16_safe(block.ff_context(n) * gate_mlp.unsqueeze(1) + h)
    for s, m, o in zip(image_s, i_mod, image_out):
        _, gate_msa, shift_mlp, scale_mlp, gate_mlp = m
        h = (s.hidden + o * gate_msa.unsqueeze(1)).to(s.hidden.dtype)
        n = block.norm2(h) * (1 + scale_mlp[:, None]) + shift_mlp[:, None]
        with only_adapter((block.ff.net[2],), s.adapter):
            s.hidden = _fp16_safe(h + block.ff(n) * gate_mlp.unsqueeze(1))


def _single_block(block, streams: list[_Stream], visible):
    normed, mlp, gates = [], [], []
    for s in streams:
        with only_adapter((block.norm.linear, block.proj_mlp), s.adapter):
            h, gate = block.norm(s.hidden, emb=s.temb)
            mlp.append(block.act_mlp(block.proj_mlp(h)))
        normed.append(h)
        gates.append(gate)
    att = _attend(block.attn, [], normed, streams, visible)  # one projection for every stream here
    for s, a, m, gate in zip(streams, att, mlp, gates):
        with only_adapter((block.proj_out,), s.adapter):
            s.hidden = _fp16_safe(gate.unsqueeze(1) * block.proj_out(torch.cat([a, m], dim=2)) + s.hidden)


def velocity(transformer, latents, conds, text_embeds, text_ids, latent_ids, cond_ids, temb_main, temb_cond, adapters):
    """The transformer's prediction for the latent stream, with the condition streams."""
    streams = [_Stream(transformer.context_embedder(text_embeds), temb_main, transformer.pos_embed(text_ids), None)]
    for x, ids, temb, adapter in zip([latents, *conds], [latent_ids, *cond_ids], [temb_main] + [temb_cond] * len(conds),
                                     [None, *adapters]):
        with only_adapter((transformer.x_embedder,), adapter):
            h = transformer.x_embedder(x)
        streams.append(_Stream(h, temb, transformer.pos_embed(ids), adapter))
    n = len(streams)
    visible = torch.ones(n, n, dtype=torch.bool)
    visible[2:, 2:] = torch.eye(n - 2, dtype=torch.bool)  # conditions never see each other
    for block in transformer.transformer_blocks:
        _double_block(block, streams, visible)
    for block in transformer.single_transformer_blocks:
        _single_block(block, streams, visible)
    return transformer.proj_out(transformer.norm_out(streams[1].hidden, temb_main))


def _time_embedding(transformer, timestep, guidance, pooled, dtype):
    t = timestep.to(dtype) * 1000
    if guidance is None:
        return transformer.time_text_embed(t, pooled)
    return transformer.time_text_embed(t, guidance.to(dtype) * 1000, pooled)


def _encode_condition(pipe, cond: ConditionInput, generator, device, dtype):
    x = cond.pixels if cond.raw else pipe.image_processor.preprocess(np.asarray(cond.pixels, dtype=np.float32)[None])
    x = x.to(device).to(dtype)
    z = pipe.vae.encode(x).latent_dist.sample(generator=generator)
    z = (z - pipe.vae.config.shift_factor) * pipe.vae.config.scaling_factor
    tokens = pipe._pack_latents(z, *z.shape)
    ids = pipe._prepare_latent_image_ids(z.shape[0], z.shape[2] // 2, z.shape[3] // 2, device, dtype)
    ids[:, 1] += cond.offset[0]
    ids[:, 2] += cond.offset[1]
    return tokens, ids


def window_origins(size: int, tile: int = TILE_TOKENS) -> np.ndarray:
    """Start of each window along one axis: stride 7/8 of a window, the last one flush
    with the end."""
    stride = tile - tile // 8
    starts = np.arange(0, max(1, size - tile + 1), stride)
    if starts[-1] + tile < size:
        starts = np.append(starts, size - tile)
    return starts


def _onload(module) -> None:
    # With enable_model_cpu_offload the transformer moves to the GPU in a hook on its
    # forward(), which the per-block calls here bypass: run the hook ourselves.
    hook = getattr(module, "_hf_hook", None)
    if hook is not None:
        hook.pre_forward(module)


@torch.no_grad()
def sample(
    pipe,
    prompt: str,
    conditions: list[ConditionInput],
    height: int,
    width: int,
    steps: int = 28,
    guidance_scale: float = 3.5,
    noise_generator: torch.Generator | None = None,
    cond_generator: torch.Generator | None = None,
    tiled: bool = True,
    tile: int = TILE_TOKENS,
    max_sequence_length: int = 512,
    progress=None,
) -> np.ndarray:
    """Denoise from Gaussian noise with ``conditions``; returns H x W x 3 float32 in [0, 1].

    ``noise_generator`` draws the initial latents; ``cond_generator`` the conditions'
    VAE samples (the same generator for both continues one random sequence).
    ``tiled=False`` always runs whole frames.
    """
    from diffusers.pipelines.flux.pipeline_flux import calculate_shift, retrieve_timesteps

    device = pipe._execution_device
    text_embeds, pooled, text_ids = pipe.encode_prompt(
        prompt=prompt, prompt_2=None, device=device, num_images_per_prompt=1, max_sequence_length=max_sequence_length
    )
    dtype = text_embeds.dtype
    channels = pipe.transformer.config.in_channels // 4
    latents, latent_ids = pipe.prepare_latents(1, channels, height, width, dtype, device, noise_generator)
    rows = int(latent_ids[:, 1].max().item()) + 1
    cols = int(latent_ids[:, 2].max().item()) + 1
    encoded = [_encode_condition(pipe, c, cond_generator, device, dtype) for c in conditions]
    cond_tokens = [t for t, _ in encoded]
    cond_ids = [i for _, i in encoded]
    adapters = [c.adapter for c in conditions]

    sched = pipe.scheduler
    sigmas = np.linspace(1.0, 1 / steps, steps)
    mu = calculate_shift(latents.shape[1], sched.config.base_image_seq_len, sched.config.max_image_seq_len,
                         sched.config.base_shift, sched.config.max_shift)
    timesteps, _ = retrieve_timesteps(sched, steps, device, None, sigmas, mu=mu)

    use_tiles = tiled and rows * cols >= tile * tile and min(rows, cols) >= tile
    if use_tiles:
        _, grid_ids = pipe.prepare_latents(1, channels, tile * pipe.vae_scale_factor * 2, tile * pipe.vae_scale_factor * 2,
                                           dtype, device, None, latents)
        axis = torch.linspace(-2, 2, tile, dtype=latents.dtype, device=device)
        weight = torch.exp(-(axis[:, None] ** 2 + axis[None] ** 2)).flatten()
        index = torch.arange(rows * cols, device=device).view(rows, cols)
        windows = [index[r:r + tile, c:c + tile].flatten() for c in window_origins(cols, tile) for r in window_origins(rows, tile)]

    transformer = pipe.transformer
    _onload(transformer)
    guided = transformer.config.guidance_embeds
    zero = torch.zeros([1], device=device)
    temb_cond = _time_embedding(transformer, zero, torch.ones([1], device=device) if guided else None, pooled, dtype)
    for i, t in enumerate(timesteps):
        timestep = t.expand(latents.shape[0]).to(latents.dtype) / 1000
        guidance = torch.tensor([guidance_scale], device=device).expand(latents.shape[0]) if guided else None
        temb = _time_embedding(transformer, timestep, guidance, pooled, dtype)
        if use_tiles:
            acc = torch.zeros_like(latents)
            wsum = torch.zeros(latents.shape[:2], device=device, dtype=latents.dtype)
            for idx in windows:
                v = velocity(transformer, latents[:, idx], [c[:, idx] for c in cond_tokens], text_embeds, text_ids,
                             grid_ids, [grid_ids] * len(cond_tokens), temb, temb_cond, adapters)
                acc[:, idx] += v * weight[None, :, None]
                wsum[:, idx] += weight
            noise = acc / wsum.unsqueeze(-1)
        else:
            noise = velocity(transformer, latents, cond_tokens, text_embeds, text_ids, latent_ids, cond_ids,
                             temb, temb_cond, adapters)
        latents = sched.step(noise, t, latents)[0]
        if progress is not None:
            progress(i + 1, len(timesteps))

    z = pipe._unpack_latents(latents, height, width, pipe.vae_scale_factor)
    z = z / pipe.vae.config.scaling_factor + pipe.vae.config.shift_factor
    image = pipe.vae.decode(z, return_dict=False)[0]
    out = pipe.image_processor.postprocess(image, output_type="np")[0]
    pipe.maybe_free_model_hooks()
    return np.ascontiguousarray(out, dtype=np.float32)
