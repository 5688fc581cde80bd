"""Prints `reel bench engine --model DIR --json` and tools/bench-torch/bench.py's report side by
side: seconds, Reel's speedup over PyTorch, and each part's peak RSS."""

import json
import sys


def main():
    reel, torch = (json.load(open(path)) for path in sys.argv[1:3])
    gib = lambda b: f"{b / 2**30:.2f} GiB"
    print(f"Wan engines on {reel['model']} at {reel['width']}x{reel['height']}x{reel['frames']}, "
          f"{reel['threads']} thread(s); Reel (OpenBLAS {reel['cpu_kernel']}, sgemm {reel['sgemm_gflops']:.1f} GFLOP/s) "
          f"against {torch['engine']}")
    rows = [("part", "Reel", "PyTorch", "Reel faster by", "Reel peak RSS", "PyTorch peak RSS")]
    for label, key, rss in [(f"text encoder, {reel['prompt_tokens']} tokens (s)", "text_encoder_seconds", "text_encoder_peak_rss_bytes"),
                            ("guided step (s)", "guided_step_seconds", "denoiser_peak_rss_bytes"),
                            ("VAE decode (s a frame)", "vae_decode_seconds_per_frame", "vae_peak_rss_bytes")]:
        rows.append((label, f"{reel[key]:.2f}", f"{torch[key]:.2f}", f"{torch[key] / reel[key]:.2f}x", gib(reel[rss]), gib(torch[rss])))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row)))


if __name__ == "__main__":
    main()
