"""Writes the Wan 2.1 parity fixtures Reel's tests check against.

Builds a tiny Wan 2.1 text-to-video model from fixed seeds in the published Diffusers layout (a
SentencePiece model trained here, umT5, the DiT, the causal 3D VAE, the UniPC scheduler), runs
each part with the pinned reference (requirements.txt), and writes the inputs and outputs as a
reference file in the format `reel model check --reference` reads. Runs offline:

    python3 -m venv .venv-ref && .venv-ref/bin/pip install -r tools/wan-reference/requirements.txt
    .venv-ref/bin/python tools/wan-reference/make_fixtures.py Tests/WanTests/Fixtures

The same script, pointed at a real model directory with --model, writes a reference for it
instead (`reel model check DIR --reference REF` then proves Reel computes what diffusers does).
"""

import argparse
import json
import os
import shutil
import sys
import tempfile

import torch
from safetensors.torch import save_file

# A small corpus for the tokenizer: enough pieces to split words several ways, some unicode.
CORPUS = """a red fox running through snow
a cat sleeping on a warm windowsill in the afternoon sun
waves crash on a rocky beach at sunset while gulls circle overhead
a small boat drifts across a calm lake under grey clouds
an old man walks his dog along a quiet city street at night
children play football in a dusty field beside the river
a hummingbird hovers near bright red flowers in the garden
snow falls softly on a pine forest in the mountains
a train crosses a long stone bridge over the valley
café crème et croissant sur une table en bois
une rivière coule à travers la forêt
ein Fuchs läuft durch den Schnee im Wald
東京の夜の街を歩く人々
雪の中を走る赤い狐
the quick brown fox jumps over the lazy dog 12345 times
rain on the window, lights of the city blurred behind it
""".strip().split("\n")

PROMPT = "A red fox running through snow, café lights & 東京 at night"
NEGATIVE = "blurry, static, low quality"
LONG_PROMPT = " ".join(["snow falls softly on a pine forest"] * 120)   # past 512 tokens
UNICODE_PROMPT = "  Ein Fuchs   läuft durch den Schnee &amp; 雪の中 — ①②  ﬁne\tcafé  "


def train_tokenizer(directory):
    import sentencepiece as spm
    os.makedirs(directory, exist_ok=True)
    home = os.getcwd()
    with tempfile.TemporaryDirectory() as work:
        # A relative prefix: the model records it, and the fixture should not change with the temp name.
        os.chdir(work)
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(CORPUS * 20), model_prefix="spiece", vocab_size=150,
            model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1, num_threads=1,
            hard_vocab_limit=False, character_coverage=1.0, minloglevel=2)
        os.chdir(home)
        shutil.copy(f"{work}/spiece.model", f"{directory}/spiece.model")
    with open(f"{directory}/tokenizer_config.json", "w") as f:
        json.dump({"tokenizer_class": "T5Tokenizer", "extra_ids": 0, "model_max_length": 512,
                   "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}, f, indent=2)


def perturb(module, seed):
    """Random init leaves norms at one and many biases at zero; nudge every parameter so a wrong
    scale, offset or transpose shows in the outputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)


def build_tiny(directory):
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel
    from transformers import AutoTokenizer, UMT5Config, UMT5EncoderModel

    train_tokenizer(f"{directory}/tokenizer")
    tokenizer = AutoTokenizer.from_pretrained(f"{directory}/tokenizer")

    torch.manual_seed(1)
    text_encoder = UMT5EncoderModel(UMT5Config(
        vocab_size=tokenizer.vocab_size, d_model=32, d_kv=8, d_ff=48, num_layers=2, num_heads=4,
        relative_attention_num_buckets=32, relative_attention_max_distance=128,
        feed_forward_proj="gated-gelu", dropout_rate=0.0, layer_norm_epsilon=1e-6, tie_word_embeddings=False))
    perturb(text_encoder, 11)

    torch.manual_seed(2)
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=4, out_channels=4,
        text_dim=32, freq_dim=16, ffn_dim=40, num_layers=2, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
        eps=1e-6, rope_max_seq_len=1024)
    perturb(transformer, 12)

    torch.manual_seed(3)
    vae = AutoencoderKLWan(base_dim=8, z_dim=4, dim_mult=[1, 2, 2, 2], num_res_blocks=1, attn_scales=[],
                           temperal_downsample=[False, True, True],
                           latents_mean=[0.1, -0.2, 0.3, -0.4], latents_std=[1.5, 0.8, 1.2, 2.0])
    perturb(vae, 13)

    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True,
                                        num_train_timesteps=1000, flow_shift=3.0)
    pipe = WanPipeline(tokenizer=tokenizer, text_encoder=text_encoder, transformer=transformer, vae=vae,
                       scheduler=scheduler)
    pipe.save_pretrained(directory, safe_serialization=True)
    return directory


def reference(model_dir, out_path, height, width, frames, steps):
    from diffusers import WanPipeline
    from diffusers.pipelines.wan.pipeline_wan import prompt_clean

    pipe = WanPipeline.from_pretrained(model_dir, torch_dtype=torch.float32)
    tokenizer, text_encoder, transformer, vae = pipe.tokenizer, pipe.text_encoder, pipe.transformer, pipe.vae
    g = torch.Generator().manual_seed(7)
    tensors = {}
    metadata = {"prompt": PROMPT}

    # Tokenizer: the cleaned prompt's ids, as the pipeline tokenises (EOS appended, no padding).
    ids = tokenizer(prompt_clean(PROMPT), add_special_tokens=True, truncation=True, max_length=512).input_ids
    tensors["tokenizer.ids"] = torch.tensor(ids, dtype=torch.int64)

    # Text encoder on a batch of two prompts of different lengths, as the pipeline uses it.
    L = 512
    batch = [prompt_clean(PROMPT), prompt_clean(NEGATIVE)]
    enc = tokenizer(batch, padding="max_length", max_length=L, truncation=True, add_special_tokens=True,
                    return_attention_mask=True, return_tensors="pt")
    with torch.no_grad():
        embeds = pipe._get_t5_prompt_embeds(prompt=[PROMPT, NEGATIVE], max_sequence_length=L)
    tensors["text_encoder.input_ids"] = enc.input_ids
    tensors["text_encoder.attention_mask"] = enc.attention_mask
    tensors["text_encoder.output"] = embeds

    # Transformer at three timesteps; the text rows past each prompt are zero, as in the pipeline.
    c = transformer.config.in_channels
    lf, lh, lw = (frames - 1) // 4 + 1, height // 8, width // 8
    hidden = torch.randn(3, c, lf, lh, lw, generator=g)
    timestep = torch.tensor([999.0, 500.0, 13.0])
    context = torch.cat([embeds, embeds[:1]], dim=0)
    block_outputs = []
    hooks = [block.register_forward_hook(lambda module, args, output: block_outputs.append(output.detach().clone()))
             for block in transformer.blocks]
    with torch.no_grad():
        velocity = transformer(hidden, timestep, context, return_dict=False)[0]
    for hook in hooks:
        hook.remove()
    tensors["transformer.hidden_states"] = hidden
    tensors["transformer.timestep"] = timestep
    tensors["transformer.encoder_hidden_states"] = context
    tensors["transformer.output"] = velocity
    tensors["transformer.block_outputs"] = torch.stack(block_outputs)   # [layers, B, tokens, width]

    # VAE: decode (without the final clamp) and encode.
    latents = torch.randn(1, vae.config.z_dim, lf, lh, lw, generator=g)
    with torch.no_grad():
        vae.clear_cache()
        x = vae.post_quant_conv(latents)
        pieces = []
        for i in range(x.shape[2]):
            vae._conv_idx = [0]
            pieces.append(vae.decoder(x[:, :, i:i + 1], feat_cache=vae._feat_map, feat_idx=vae._conv_idx,
                                      first_chunk=(i == 0)))
        decoded = torch.cat(pieces, 2)
        vae.clear_cache()
        video_in = torch.rand(1, 3, frames, height, width, generator=g) * 2 - 1
        mean = vae.encode(video_in).latent_dist.mean
    tensors["vae.latents"] = latents
    tensors["vae.decoded"] = decoded
    tensors["vae.frames"] = video_in
    tensors["vae.encoded_mean"] = mean

    # The whole pipeline: injected noise, every step's latents, the decoded video in [-1, 1].
    noise = torch.randn(1, c, lf, lh, lw, generator=g)
    step_latents = []

    def on_step(pipeline, i, t, kwargs):
        step_latents.append(kwargs["latents"].clone())
        return kwargs

    settings = {"prompt": PROMPT, "negative_prompt": NEGATIVE, "height": height, "width": width,
                "num_frames": frames, "num_inference_steps": steps, "guidance_scale": 5.0,
                "max_sequence_length": L}
    with torch.no_grad():
        final = pipe(**settings, latents=noise.clone(), output_type="latent", return_dict=False,
                     callback_on_step_end=on_step)[0]
        mean_t = torch.tensor(vae.config.latents_mean).view(1, -1, 1, 1, 1)
        std_t = torch.tensor(vae.config.latents_std).view(1, -1, 1, 1, 1)
        video = vae.decode(final * std_t + mean_t, return_dict=False)[0]
    tensors["pipeline.latents"] = noise
    tensors["pipeline.step_latents"] = torch.stack(step_latents)
    tensors["pipeline.video"] = video
    metadata["pipeline"] = json.dumps(settings)

    save_file({k: v.contiguous() for k, v in tensors.items()}, out_path, metadata=metadata)


def tokenizer_reference(model_dir, out_path, prompt):
    from diffusers.pipelines.wan.pipeline_wan import prompt_clean
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(f"{model_dir}/tokenizer")
    ids = tokenizer(prompt_clean(prompt), add_special_tokens=True, truncation=True, max_length=512).input_ids
    save_file({"tokenizer.ids": torch.tensor(ids, dtype=torch.int64)}, out_path, metadata={"prompt": prompt})


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", help="folder to write into")
    parser.add_argument("--model", help="an existing Wan 2.1 Diffusers folder; default: build the tiny one")
    parser.add_argument("--size", default="48x32", help="WIDTHxHEIGHT of the reference runs")
    parser.add_argument("--frames", type=int, default=9)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)
    model_dir = args.model or build_tiny(f"{args.out}/wan-tiny")
    width, height = (int(v) for v in args.size.split("x"))
    reference(model_dir, f"{args.out}/reference.safetensors", height, width, args.frames, args.steps)
    tokenizer_reference(model_dir, f"{args.out}/reference-tokenizer-unicode.safetensors", UNICODE_PROMPT)
    tokenizer_reference(model_dir, f"{args.out}/reference-tokenizer-long.safetensors", LONG_PROMPT)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
