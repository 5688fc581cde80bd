"""What a user would run instead of Reel: the same Wan 2.1 folder in PyTorch on the CPU, through
the pinned diffusers/transformers of tools/wan-reference, timed part by part as `reel bench
engine --model DIR` times Reel's. Each part runs in a process of its own, so its peak RSS is
its own.

- text: umT5-XXL on a 512-token prompt, in bfloat16 (in float32 its 22.7 GB do not fit a
  24 GiB machine; bfloat16 is how a CPU user runs it).
- dit: one guided step, the transformer in float32 over a batch of 2 (the conditional and
  unconditional halves of guidance) at the given size.
- vae: the VAE decoder in float32, per decoded frame.

    python tools/bench-torch/bench.py --model DIR --size 256x256 --frames 17 --threads 2 > torch.json

Offline: it only reads the folder. `make bench-peer` runs it beside Reel and prints both.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time


def peak_rss_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def latent_shape(model_dir, width, height, frames):
    with open(os.path.join(model_dir, "vae", "config.json")) as f:
        vae = json.load(f)
    temporal = 2 ** sum(1 for down in vae.get("temperal_downsample", [False, True, True]) if down)
    spatial = 2 ** (len(vae.get("dim_mult", [1, 2, 4, 4])) - 1)
    return vae.get("z_dim", 16), (frames - 1) // temporal + 1, height // spatial, width // spatial


def measure(part, model_dir, width, height, frames):
    import torch
    torch.manual_seed(0)
    channels, latent_frames, latent_height, latent_width = latent_shape(model_dir, width, height, frames)
    with torch.no_grad():
        if part == "text":
            from transformers import AutoTokenizer, UMT5EncoderModel
            tokenizer = AutoTokenizer.from_pretrained(os.path.join(model_dir, "tokenizer"))
            encoder = UMT5EncoderModel.from_pretrained(os.path.join(model_dir, "text_encoder"), torch_dtype=torch.bfloat16)
            prompt = ", ".join(["a red fox running through deep snow under a pale winter sky"] * 60)
            inputs = tokenizer([prompt], max_length=512, truncation=True, padding="max_length", return_tensors="pt")
            start = time.perf_counter()
            encoder(inputs.input_ids, attention_mask=inputs.attention_mask)
            return {"seconds": time.perf_counter() - start, "count": int(inputs.attention_mask.sum()), "peak_rss_bytes": peak_rss_bytes()}
        if part == "dit":
            from diffusers import WanTransformer3DModel
            transformer = WanTransformer3DModel.from_pretrained(os.path.join(model_dir, "transformer"), torch_dtype=torch.float32)
            latents = torch.randn(2, channels, latent_frames, latent_height, latent_width)
            context = torch.randn(2, 512, transformer.config.text_dim)
            timestep = torch.tensor([500.0, 500.0])
            start = time.perf_counter()
            transformer(hidden_states=latents, timestep=timestep, encoder_hidden_states=context, return_dict=False)
            return {"seconds": time.perf_counter() - start, "count": 2, "peak_rss_bytes": peak_rss_bytes()}
        if part == "vae":
            from diffusers import AutoencoderKLWan
            vae = AutoencoderKLWan.from_pretrained(os.path.join(model_dir, "vae"), torch_dtype=torch.float32)
            latents = torch.randn(1, channels, latent_frames, latent_height, latent_width)
            start = time.perf_counter()
            video = vae.decode(latents, return_dict=False)[0]
            return {"seconds": time.perf_counter() - start, "count": int(video.shape[2]), "peak_rss_bytes": peak_rss_bytes()}
    raise SystemExit(f"bench.py: unknown part {part}; use text, dit or vae")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a Wan 2.1 Diffusers folder")
    parser.add_argument("--size", default="256x256", help="WIDTHxHEIGHT")
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--part", choices=["text", "dit", "vae"], help="time one part in this process")
    args = parser.parse_args()
    width, height = (int(side) for side in args.size.lower().split("x"))

    if args.part:
        import torch
        torch.set_num_threads(args.threads)
        print(json.dumps(measure(args.part, args.model, width, height, frames=args.frames)))
        return

    parts = {}
    for part in ["text", "dit", "vae"]:
        print(f"bench-torch: timing {part} in a process of its own", file=sys.stderr)
        output = subprocess.run([sys.executable, __file__, "--model", args.model, "--size", args.size,
                                 "--frames", str(args.frames), "--threads", str(args.threads), "--part", part],
                                check=True, capture_output=True, text=True).stdout
        parts[part] = json.loads(output.strip().splitlines()[-1])
    import torch
    print(json.dumps({
        "engine": f"PyTorch {torch.__version__}", "threads": args.threads,
        "width": width, "height": height, "frames": args.frames,
        "prompt_tokens": parts["text"]["count"],
        "text_encoder_seconds": parts["text"]["seconds"], "text_encoder_peak_rss_bytes": parts["text"]["peak_rss_bytes"],
        "guided_step_seconds": parts["dit"]["seconds"], "denoiser_peak_rss_bytes": parts["dit"]["peak_rss_bytes"],
        "vae_decode_seconds_per_frame": parts["vae"]["seconds"] / max(1, parts["vae"]["count"]),
        "vae_peak_rss_bytes": parts["vae"]["peak_rss_bytes"],
    }, sort_keys=True))


if __name__ == "__main__":
    main()
