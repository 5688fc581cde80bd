#!/usr/bin/env python3
"""Does a checkpoint use its captions? Compares the loss on one fixed batch of held-out clips
with their own captions, with each object's motion words swapped for another motion's, with the
captions shuffled between clips, and with empty captions. Then shows, for each motion that names
a direction, which way the object goes in the clean clip the model predicts from pure noise.

    caption_check.py --package models/reel-shapes     # the default model's weights
    caption_check.py --package RUN/package --run RUN   # a run's checkpoint

Two figures a variant: the flow loss as the trainer weighs it, and the error of the clean clip
the model predicts at t = 0.9, where a sample's objects and their paths are laid down. A model
that follows its prompts has a clearly lower loss with its own captions; when a variant agrees
with its own captions, the denoiser has learned to ignore what that variant changes.

From pure noise (t = 1) the best clean clip is the mean of every clip the caption allows, and
that mean already travels the caption's way (a clip moving right starts in the left part of the
canvas). Sampling lays an object's path down in its first steps, so a model whose t = 1 clip does
not travel that way moves its objects in a direction the noise picks.
"""
import argparse
import copy
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reel_train.checks import add_weight_arguments, load_model  # noqa: E402
from reel_train.data import model_values, pad_tokens  # noqa: E402
from train import flow_loss  # noqa: E402

HIGH_NOISE = 0.9


def with_other_motions(world, scene, rng):
    """The scene with every object's motion replaced by a different one."""
    motions = sorted(world.motions)
    swapped = copy.deepcopy(scene)
    for obj in swapped["objects"]:
        others = [m for m in motions if m != obj["motion"]]
        obj["motion"] = others[rng.integers(len(others))]
    return swapped


def clean_error(model, clips, tokens, mask, t, seed):
    """Mean squared error of the clean clips predicted from x_t, the same noise for every caller."""
    noise = torch.randn(clips.shape, generator=torch.Generator().manual_seed(seed))
    x = (1 - t) * clips + t * noise
    times = torch.full((clips.shape[0],), t)
    clean = x - t * model.velocity(x, times, model.text(tokens, mask), mask)
    return torch.mean((clean - clips) ** 2).item()


def centroid_travel(clip, color, background):
    """Travel (dx, dy) in pixels, first frame to last, of where `clip` [F, 3, H, W] is coloured
    `color` rather than `background` (each pixel weighted by how far it is along that way)."""
    axis = (color - background) / np.linalg.norm(color - background)
    weight = np.clip(np.einsum("fchw,c->fhw", clip - background[None, :, None, None], axis), 0, None) ** 2
    rows, columns = np.mgrid[0:clip.shape[2], 0:clip.shape[3]]
    total = weight.sum(axis=(1, 2)) + 1e-9
    x, y = (weight * columns).sum(axis=(1, 2)) / total, (weight * rows).sum(axis=(1, 2)) / total
    return np.array([x[-1] - x[0], y[-1] - y[0]])


def probe_scene(motion, size="large"):
    """A red circle of `size` moving `motion` on gray: the scene the layout checks ask about."""
    return {"background": "gray", "objects": [{"shape": "circle", "color": "red", "size": size, "motion": motion}]}


def layout_check(model, world, vocabulary, rng, seeds=4, means=64):
    """For each motion with a direction: the travel of a large red circle on gray in the clean
    clip predicted at t = 1 (averaged over `seeds` noises) against the travel of the caption's
    mean clip. Returns the angles between the two, in degrees."""
    color, background = model_values(world.colors["red"]), model_values(world.backgrounds["gray"])
    angles = []
    for motion in sorted(m for m in world.motions if "direction" in world.motions[m]):
        scene = probe_scene(motion)
        caption = world.caption(scene)
        tokens = torch.tensor([vocabulary.tokenize(caption)])
        mask = torch.ones_like(tokens, dtype=torch.bool)
        noise = torch.randn((seeds, world.frames, 3, world.canvas, world.canvas), generator=torch.Generator().manual_seed(4321))
        context = model.text(tokens, mask).expand(seeds, -1, -1)
        ones = torch.ones(seeds)
        predicted = (noise - model.velocity(noise, ones, context, mask.expand(seeds, -1))).mean(dim=0).numpy()
        wanted = centroid_travel(world.prior_mean(scene, rng, means), color, background)
        got = centroid_travel(predicted, color, background)
        cosine = got @ wanted / (np.linalg.norm(got) * np.linalg.norm(wanted) + 1e-9)
        angles.append(float(np.degrees(np.arccos(np.clip(cosine, -1, 1)))))
        print("  %-22s travels (%5.1f, %5.1f) px; the caption's mean clip (%5.1f, %5.1f): %3.0f degrees off"
              % (motion, got[0], got[1], wanted[0], wanted[1], angles[-1]))
    return angles


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_weight_arguments(p)
    p.add_argument("--clips", type=int, default=32)
    p.add_argument("--repeats", type=int, default=4, help="noise draws per clip")
    args = p.parse_args(argv)
    cfg, world, vocabulary, model, step = load_model(args)
    # A seed the trainer never draws from (it seeds with seed * 1_000_003 + step).
    rng = np.random.default_rng(987_654_321)
    scenes = [world.sample_scene(rng) for _ in range(args.clips)]
    clips = torch.from_numpy(np.stack([world.render(s) for s in scenes]))
    captions = [world.caption(s) for s in scenes]
    variants = {
        "own captions": captions,
        "other motions": [world.caption(with_other_motions(world, s, rng)) for s in scenes],
        "shuffled captions": captions[-1:] + captions[:-1],
        "empty captions": [""] * len(scenes),
    }
    print("step %d  (flow loss as trained; clean-clip error at t = %.1f)" % (step, HIGH_NOISE))
    with torch.no_grad():
        for name, texts in variants.items():
            tokens, mask = (torch.from_numpy(a) for a in pad_tokens([vocabulary.tokenize(t) for t in texts]))
            # The same timesteps and noise for every variant: only the text differs.
            generator = torch.Generator().manual_seed(12345)
            losses = [flow_loss(model, clips, tokens, mask, generator, 0.25).item() for _ in range(args.repeats)]
            high = clean_error(model, clips, tokens, mask, HIGH_NOISE, 6789)
            print("%-18s loss %.4f   t=%.1f error %.4f" % (name, float(np.mean(losses)), HIGH_NOISE, high))
        print("from pure noise (t = 1), \"a large red circle MOTION on a gray background\":")
        angles = layout_check(model, world, vocabulary, rng)
        print("median %.0f degrees off the way the caption's clips go (90: the words are ignored)" % np.median(angles))


if __name__ == "__main__":
    main()
