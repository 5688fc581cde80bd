#!/usr/bin/env python3
"""Writes the trainer-parity fixture: a tiny model package with weights perturbed away from
their initialisation (so every branch, adaLN and the pooled-text, window-phase, video-progress and
frame-stride paths included, does something),
predicting the clean video (so the conversion to velocity is covered too; dit_reference.py
covers velocity models without pooled text),
inputs, and this trainer's outputs on them. Tests/DiffusionTests checks the Swift forward pass against it within
1e-4 relative, so CI needs no PyTorch. Rerun after changing the architecture:

    .venv-train/bin/python train/make_fixture.py Tests/DiffusionTests/Fixtures/trainer-parity
"""
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reel_train.files import write_safetensors  # noqa: E402
from reel_train.model import Reel  # noqa: E402

CONFIG = {
    "format": "reel-dit/1", "channels": 3, "canvas_height": 16, "canvas_width": 16, "window_frames": 4, "fps": 8,
    "patch": 4, "width": 32, "depth": 2, "heads": 2, "mlp_ratio": 2,
    "text": {"width": 16, "depth": 1, "heads": 2, "mlp_ratio": 2, "max_tokens": 8},
    "vocabulary": "vocab.txt", "prediction": "clean", "pooled_text": True,
    "frame_phase": {"period": 32, "harmonics": 3}, "video_progress": True, "frame_stride": True,
}
WORDS = ["<start>", "a", "red", "blue", "circle", "square", "moving", "left", "right", "on", "black", "background"]
PROMPTS = [[0, 1, 2, 4, 6, 7], [0]]
FIRST_FRAME = 45  # a window past the first period, as in a long render
VIDEO_FRAMES = 100  # of which the window is neither the start nor the end
# The same window's frames as keyframes, spread from its first frame to the video's last.
KEYFRAME_STRIDE = (VIDEO_FRAMES - 1 - FIRST_FRAME) / (CONFIG["window_frames"] - 1)


def main(directory):
    os.makedirs(directory, exist_ok=True)
    torch.manual_seed(1234)
    model = Reel(CONFIG, len(WORDS)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    x = torch.randn(2, 4, 3, 16, 16, dtype=torch.float64)
    t = torch.tensor([0.73, 0.21], dtype=torch.float64)
    length = max(len(p) for p in PROMPTS)
    tokens = torch.zeros(len(PROMPTS), length, dtype=torch.long)
    mask = torch.zeros(len(PROMPTS), length, dtype=torch.bool)
    for i, p in enumerate(PROMPTS):
        tokens[i, :len(p)] = torch.tensor(p)
        mask[i, :len(p)] = True
    with torch.no_grad():
        context = model.text(tokens, mask)
        place = torch.tensor([FIRST_FRAME] * 2), torch.tensor([VIDEO_FRAMES] * 2)
        velocity = model.velocity(x, t, context, mask, *place)
        keyframes = model.velocity(x, t, context, mask, *place, torch.tensor([KEYFRAME_STRIDE] * 2, dtype=torch.float64))
        # Padding must not leak: each prompt encoded alone gives the same real rows.
        for i, p in enumerate(PROMPTS):
            alone = model.text(torch.tensor([p]), torch.ones(1, len(p), dtype=torch.bool))[0]
            assert torch.allclose(alone, context[i, :len(p)], atol=1e-12)

    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(CONFIG, f, indent=2)
    with open(os.path.join(directory, "vocab.txt"), "w") as f:
        f.write("\n".join(WORDS) + "\n")
    write_safetensors(os.path.join(directory, "model.safetensors"),
                      {k: v.numpy() for k, v in model.state_dict().items()}, {"reel.weights": "parity fixture"})
    inputs = {"x": x.numpy(), "t": t.numpy(), "first_frame": np.array([FIRST_FRAME], np.float32),
              "video_frames": np.array([VIDEO_FRAMES], np.float32)}
    outputs = {"velocity": velocity.numpy(), "velocity_keyframes": keyframes.numpy()}
    for i, p in enumerate(PROMPTS):
        inputs["tokens_%d" % i] = np.array(p, np.float32)
        outputs["text_%d" % i] = context[i, :len(p)].numpy()
    write_safetensors(os.path.join(directory, "inputs.safetensors"), inputs)
    write_safetensors(os.path.join(directory, "outputs.safetensors"), outputs)
    print("wrote", directory)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "Tests/DiffusionTests/Fixtures/trainer-parity")
