#!/usr/bin/env python3
"""Can a model of a package's architecture learn, from pure noise alone, where a caption's
objects are and which way they go? Trains one (fresh, or from a run's weights) at t = 1 only,
aiming at each caption's mean clip (the best prediction there), and prints every 50 steps its
loss beside two floors and the way a large red circle told to move right, and one told to move
left, go in its prediction.

    layout_probe.py --package models/reel-shapes --captions all --steps 600
    layout_probe.py --package models/reel-shapes --captions two --input zeros
    layout_probe.py --package RUN/package --captions one --init RUN

The floors, measured on one batch before training: `background` is the loss of predicting each
caption's background colour alone, `mean` that of predicting the caption's mean clip of 64 clips
(what a model reading its captions perfectly would reach; the targets are means of only
--target-clips clips, so not zero). A loss that stays at `background` has learned colours
spread over the canvas and nothing of the layout. `--captions two` trains on the right and left
captions alone, `motions` on the probe's object with every motion, `one` on every one-object
caption; `--input zeros` gives the model zeros instead of noise (the positions then reach it
undisturbed). Together they say whether the architecture can map words to a layout at all, and
how fast that slows as the caption space grows. `--init RUN` asks it of a trained model, which
reads colours and backgrounds already.
"""
import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from caption_check import centroid_travel, probe_scene  # noqa: E402
from reel_train.data import model_values, open_package, pad_tokens  # noqa: E402
from reel_train.model import Reel  # noqa: E402

PROBES = ("moving right", "moving left")
CAPTIONS = ("all", "one", "motions", "two")  # from the whole caption space down to two captions


def arguments(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--package", required=True, help="model package directory (config.json, vocab.txt, world.json)")
    p.add_argument("--captions", choices=CAPTIONS, default="all",
                   help="all: the world's captions as the trainer draws them; one: its one-object captions; "
                        "motions: the probe's object with each of the world's motions; two: the probe's two captions")
    p.add_argument("--input", choices=("noise", "zeros"), default="noise", help="what the model sees at t = 1")
    p.add_argument("--init", metavar="RUN", help="start from this run's EMA weights (its checkpoint.pt) instead of a fresh model")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate after 100 steps of warm-up")
    p.add_argument("--target-clips", type=int, default=4, help="clips averaged for each training target")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def encode(world, vocabulary, scenes):
    """Padded tokens and mask for the scenes' captions (None: the empty caption)."""
    token_lists = [vocabulary.tokenize(world.caption(s)) if s else vocabulary.tokenize("") for s in scenes]
    tokens, mask = pad_tokens(token_lists)
    return torch.from_numpy(tokens), torch.from_numpy(mask)


def draw(args, world, vocabulary, rng):
    """Scenes (None for a dropped caption), their tokens and mask, and mean-clip targets."""
    if args.captions == "two":
        scenes = [probe_scene(PROBES[i % 2]) for i in range(args.batch)]
    elif args.captions == "motions":
        scenes = [probe_scene(str(m)) for m in rng.choice(sorted(world.motions), size=args.batch)]
    elif args.captions == "one":
        scenes = [world.sample_scene(rng, max_objects=1) for _ in range(args.batch)]
    else:  # as reel_train.data.batch draws them (the same random stream), without rendering clips
        scenes = [(world.sample_scene(rng), rng.random() < 0.1) for _ in range(args.batch)]
        scenes = [None if dropped else scene for scene, dropped in scenes]
    targets = np.stack([world.prior_mean(s, rng, args.target_clips) for s in scenes])
    return (scenes, *encode(world, vocabulary, scenes), torch.from_numpy(targets))


def model_input(args, shape, generator):
    return torch.zeros(shape) if args.input == "zeros" else torch.randn(shape, generator=generator)


def predict(model, x, tokens, mask):
    """The clean clip the model predicts at t = 1 (x - v there, for either prediction kind)."""
    return x - model.velocity(x, torch.ones(x.shape[0]), model.text(tokens, mask), mask)


def floors(args, world, vocabulary, rng):
    scenes, _, _, targets = draw(args, world, vocabulary, rng)
    background, mean = [], []
    for scene, target in zip(scenes, targets.numpy()):
        if scene is None:
            continue
        color = model_values(world.backgrounds[scene["background"]])
        background.append(np.mean((target - color[None, :, None, None]) ** 2))
        mean.append(np.mean((target - world.prior_mean(scene, rng, 64)) ** 2))
    return np.mean(background), np.mean(mean)


def travels(args, model, world, vocabulary, generator):
    """'right (dx, dy)  left (dx, dy)': how the probe captions' objects go in the prediction."""
    scenes = [probe_scene(m) for m in PROBES]
    tokens, mask = encode(world, vocabulary, scenes)
    with torch.no_grad():
        clean = predict(model, model_input(args, (2, world.frames, 3, world.canvas, world.canvas), generator), tokens, mask)
    red, gray = model_values(world.colors["red"]), model_values(world.backgrounds["gray"])
    return "  ".join("%s (%5.1f, %5.1f)" % (m.split()[-1], *centroid_travel(c.numpy(), red, gray))
                     for m, c in zip(PROBES, clean))


def main(argv=None):
    args = arguments(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    cfg, world, vocabulary = open_package(args.package)
    model = Reel(cfg, len(vocabulary.words))
    if args.init:
        model.load_state_dict(torch.load(os.path.join(args.init, "checkpoint.pt"), map_location="cpu")["ema"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.99), weight_decay=0.0)
    rng, generator = np.random.default_rng(args.seed), torch.Generator().manual_seed(args.seed)
    print("floors: background %.5f, mean %.5f" % floors(args, world, vocabulary, rng), flush=True)
    start, window = time.time(), []
    for step in range(1, args.steps + 1):
        _, tokens, mask, targets = draw(args, world, vocabulary, rng)
        loss = torch.mean((predict(model, model_input(args, targets.shape, generator), tokens, mask) - targets) ** 2)
        for group in optimizer.param_groups:
            group["lr"] = args.lr * min(1.0, step / 100)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        window.append(loss.item())
        if step % 50 == 0:
            print("step %4d  loss %.5f  %4.0f s  %s" % (step, np.mean(window), time.time() - start,
                                                       travels(args, model, world, vocabulary, generator)), flush=True)
            window = []


if __name__ == "__main__":
    main()
