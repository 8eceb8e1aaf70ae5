"""A tiny random-weight FLUX.1 (transformer, VAE, CLIP and T5 encoders with tokenizers
built here) and Genfocus-style LoRA files, for the equivalence tests.

Nothing is downloaded: the tokenizers' vocabularies are made from the prompts' letters,
every weight is drawn from a seeded generator. The LoRA files are written the way the
released ``deblurNet.safetensors`` / ``bokehNet.safetensors`` were (peft adapters on the
transformer, saved by ``FluxPipeline.save_lora_weights``: ``transformer.<module>.lora_A.weight``
keys), with random non-zero ``lora_B`` and ``lora_alpha != r`` so that a LoRA applied at
the wrong scale, on the wrong tokens or not at all changes the output.
"""

from __future__ import annotations

import json
from pathlib import Path

#: Modules the released LoRAs adapt (OminiControl's target set): every per-branch
#: projection of the image stream in double and single blocks, and the image embedder.
LORA_TARGETS = (
    r"(x_embedder"
    r"|transformer_blocks\.\d+\.(norm1\.linear|attn\.to_q|attn\.to_k|attn\.to_v|attn\.to_out\.0|ff\.net\.2)"
    r"|single_transformer_blocks\.\d+\.(norm\.linear|proj_mlp|proj_out|attn\.to_q|attn\.to_k|attn\.to_v))"
)

PROMPT_WORDS = "a sharp photo with everything in focus an excellent large aperture"


def _clip_tokenizer(folder: Path):
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in sorted(set(PROMPT_WORDS.replace(" ", ""))):
        vocab.setdefault(c, len(vocab))
        vocab.setdefault(c + "</w>", len(vocab))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77)


def _t5_tokenizer():
    from transformers import T5TokenizerFast

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    pieces += [("\u2581" + w, -1.0) for w in sorted(set(PROMPT_WORDS.split()))]
    pieces += [(c, -5.0) for c in sorted(set(PROMPT_WORDS.replace(" ", "")))]
    return T5TokenizerFast(vocab=pieces, extra_ids=0, model_max_length=512)


def build_tiny_flux(folder: Path, seed: int = 0, vae_blocks: int = 1):
    """Save a tiny FLUX pipeline to ``folder`` (loadable by ``FluxPipeline.from_pretrained``)."""
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    torch.manual_seed(seed)
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=4, num_layers=1, num_single_layers=2, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32, axes_dims_rope=[4, 4, 8],
        guidance_embeds=True,  # as FLUX.1-dev (guidance-distilled)
    )
    clip = CLIPTextModel(CLIPTextConfig(
        bos_token_id=0, eos_token_id=1, hidden_size=32, intermediate_size=37, layer_norm_eps=1e-5,
        num_attention_heads=4, num_hidden_layers=2, pad_token_id=1, vocab_size=64, hidden_act="gelu",
        projection_dim=32, max_position_embeddings=77,
    ))
    t5 = T5EncoderModel(T5Config(
        vocab_size=64, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4, relative_attention_num_buckets=8,
        pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
    ))
    vae = AutoencoderKL(
        sample_size=32, in_channels=3, out_channels=3, block_out_channels=(4,) * vae_blocks,
        down_block_types=("DownEncoderBlock2D",) * vae_blocks, up_block_types=("UpDecoderBlock2D",) * vae_blocks,
        layers_per_block=1, latent_channels=1, norm_num_groups=1, use_quant_conv=False, use_post_quant_conv=False,
        shift_factor=0.0609, scaling_factor=1.5035,
    )
    with torch.no_grad():  # random-init norms/biases are often exactly 0 or 1; make every weight matter
        for model in (transformer, vae):
            for p in model.parameters():
                p.add_(0.02 * torch.randn_like(p))
    pipe = FluxPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=clip,
        tokenizer=_clip_tokenizer(folder / "_clip_tok"), text_encoder_2=t5, tokenizer_2=_t5_tokenizer(),
        transformer=transformer,
    )
    pipe.save_pretrained(folder)
    return folder


def write_lora(base_folder: Path, out_file: Path, seed: int, rank: int = 4, alpha: float = 8.0) -> Path:
    """A LoRA on the tiny transformer, saved as the released files are."""
    import torch
    from diffusers import FluxPipeline, FluxTransformer2DModel
    from peft import LoraConfig, get_peft_model_state_dict

    transformer = FluxTransformer2DModel.from_pretrained(base_folder, subfolder="transformer")
    transformer.add_adapter(LoraConfig(r=rank, lora_alpha=alpha, target_modules=LORA_TARGETS, init_lora_weights=False))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in transformer.named_parameters():
            if "lora_" in name:
                p.copy_(0.3 * torch.randn(p.shape, generator=gen))
    state = get_peft_model_state_dict(transformer)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    FluxPipeline.save_lora_weights(out_file.parent, transformer_lora_layers=state, weight_name=out_file.name)
    return out_file
