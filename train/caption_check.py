#!/usr/bin/env python3
"""Does a checkpoint use its captions? Compares the loss on one fixed batch of held-out clips
with their own captions, with the captions shuffled between clips, and with empty captions.

    caption_check.py --package models/reel-shapes --run train/runs/reel-shapes

A model that follows its prompts has a clearly lower loss with its own captions; when the three
agree, the denoiser has learned to ignore the text and more steps will not teach it prompts.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reel_train.data import Vocabulary, World, batch  # noqa: E402
from reel_train.model import Reel  # noqa: E402
from train import flow_loss  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--package", required=True)
    p.add_argument("--run", required=True, help="directory holding checkpoint.pt")
    p.add_argument("--clips", type=int, default=32)
    p.add_argument("--repeats", type=int, default=4, help="noise draws per clip")
    args = p.parse_args(argv)
    with open(os.path.join(args.package, "config.json")) as f:
        cfg = json.load(f)
    world = World(os.path.join(args.package, "world.json"))
    vocabulary = Vocabulary(os.path.join(args.package, cfg.get("vocabulary", "vocab.txt")))
    state = torch.load(os.path.join(args.run, "checkpoint.pt"), map_location="cpu")
    model = Reel(cfg, len(vocabulary.words))
    model.load_state_dict(state["ema"])
    model.eval()
    # A seed the trainer never draws from (it seeds with seed * 1_000_003 + step).
    clips, tokens, mask = batch(world, vocabulary, np.random.default_rng(987_654_321), args.clips)
    clips, tokens, mask = torch.from_numpy(clips), torch.from_numpy(tokens), torch.from_numpy(mask)
    shuffled = torch.roll(torch.arange(args.clips), 1)
    empty_tokens, empty_mask = torch.zeros_like(tokens[:, :1]), torch.ones_like(mask[:, :1])
    variants = {"own captions": (tokens, mask), "shuffled captions": (tokens[shuffled], mask[shuffled]),
                "empty captions": (empty_tokens, empty_mask)}
    print("step %d" % state["step"])
    with torch.no_grad():
        for name, (t, m) in variants.items():
            # The same timesteps and noise for every variant: only the text differs.
            generator = torch.Generator().manual_seed(12345)
            losses = [flow_loss(model, clips, t, m, generator, 0.25).item() for _ in range(args.repeats)]
            print("%-18s loss %.4f" % (name, float(np.mean(losses))))


if __name__ == "__main__":
    main()
