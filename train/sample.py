#!/usr/bin/env python3
"""Samples a checkpoint in PyTorch and writes a contact sheet: one row per prompt, every other
frame. Reel renders the same weights in Swift; when both show the same pictures, what they show
is the training's doing, not the renderer's.

    sample.py --package models/reel-shapes -o sheet.png [PROMPT ...]     # the default model's weights
    sample.py --package RUN/package --run RUN -o sheet.png             # a run's checkpoint
    sample.py ... --start 0.9 --guidance 1     # finish three noised clips instead
    sample.py ... --prior-above 0.93           # the caption's mean clip leads the first steps
    sample.py ... --first-frame 8              # a window from frame 8 of a long video (frame_phase)
    sample.py ... --first-frame 48 --video-frames 64   # its last window (video_progress)

Euler steps from t = 1 (or --start) to 0 on the Swift sampler's schedule, with classifier-free
guidance against the empty prompt.
"""
import argparse
import itertools
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from caption_check import centroid_travel  # noqa: E402
from reel_train.checks import add_weight_arguments, load_model  # noqa: E402
from reel_train.data import model_values  # noqa: E402
from reel_train.files import write_png  # noqa: E402
from reel_train.model import shifted  # noqa: E402

DEFAULT_PROMPTS = ["a large red circle moving right on a gray background",
                   "a large blue square moving up on a white background",
                   "a small green triangle moving left on a black background"]


def schedule(steps, shift, start=1.0):
    """Times from `start` to 0, on the Swift FlowSchedule's steps."""
    return start * shifted(torch.linspace(1, 0, steps + 1), shift)


def sample(model, vocabulary, prompt, frames, height, width, steps, guidance, seed, shift=1.0, clip=None, start=1.0,
           prior=None, prior_above=1.0, first_frame=0, video_frames=None):
    """Frames [F, H, W, 3] as bytes. With `clip` ([F, 3, H, W] in [-1, 1]), starts from it noised
    to t = `start` instead of from pure noise. With `prior` (the caption's mean clip), steps at
    t >= `prior_above` take it as the clean clip in place of the model's conditional one.
    `first_frame`: where the window starts in a long video (read by models with frame_phase);
    `video_frames`: that video's length (read by models with video_progress; None: one window)."""
    def context(text):
        tokens = torch.tensor([vocabulary.tokenize(text)] if text else [[0]])
        mask = torch.ones_like(tokens, dtype=torch.bool)
        return model.text(tokens, mask), mask, torch.tensor([first_frame]), \
            None if video_frames is None else torch.tensor([video_frames])

    conditional, unconditional = context(prompt), context("")
    x = torch.randn((1, frames, 3, height, width), generator=torch.Generator().manual_seed(seed))
    if clip is not None:
        x = (1 - start) * torch.as_tensor(clip)[None] + start * x
    times = schedule(steps, shift, start)
    for k in range(steps):
        t = times[k].repeat(1)
        if prior is not None and times[k] >= prior_above:
            v = (x - torch.as_tensor(prior)[None]) / t
        else:
            v = model.velocity(x, t, *conditional)
        if guidance != 1:
            v_empty = model.velocity(x, t, *unconditional)
            v = v_empty + guidance * (v - v_empty)
        x = x + (times[k + 1] - times[k]) * v
    return to_bytes(x[0])


def to_bytes(frames):
    """[F, 3, H, W] in [-1, 1] to [F, H, W, 3] bytes."""
    return ((torch.as_tensor(frames).clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()


def one_object_scene(world, prompt):
    """The scene (without a start) whose caption is `prompt`, for one-object prompts."""
    for size, color, shape, motion, background in itertools.product(
            world.sizes, world.colors, world.shapes, world.motions, world.backgrounds):
        scene = {"background": background,
                 "objects": [{"size": size, "color": color, "shape": shape, "motion": motion}]}
        if world.caption(scene) == prompt:
            return scene
    return None


def report_travel(world, scene, frames):
    """Prints which way a one-object scene's object went in `frames` [F, H, W, 3] bytes."""
    obj = scene["objects"][0]
    direction = world.motions[obj["motion"]].get("direction")
    if direction is None:
        return
    clip = model_values(frames.transpose(0, 3, 1, 2))
    color, background = model_values(world.colors[obj["color"]]), model_values(world.backgrounds[scene["background"]])
    travel = centroid_travel(clip, color, background)
    cosine = travel @ np.array(direction) / (np.linalg.norm(travel) * np.linalg.norm(direction) + 1e-9)
    print("  travels (%5.1f, %5.1f) px, %3.0f degrees from \"%s\"" %
          (travel[0], travel[1], np.degrees(np.arccos(np.clip(cosine, -1, 1))), obj["motion"]))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_weight_arguments(p)
    p.add_argument("-o", "--output", default="sample-sheet.png")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--guidance", type=float, default=None, help="default: the package's")
    p.add_argument("--shift", type=float, default=None, help="timestep shift; default: the package's")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--start", type=float, default=1.0,
                   help="below 1: denoise three clips of the world (a seed training never draws) noised to this t, "
                        "each row followed by the clip itself; shows up to which noise level the model can "
                        "finish a picture it is given")
    p.add_argument("--prior-above", type=float, default=0.0,
                   help="above 0: at t from this one up, the mean of the prompt's clips in the world (one-object "
                        "prompts) stands in for the model's conditional prediction; shows whether the model "
                        "follows a path it did not have to lay down itself")
    p.add_argument("--first-frame", type=int, default=0,
                   help="where the window starts in a long video, for a model told so (frame_phase in config.json)")
    p.add_argument("--video-frames", type=int, default=None,
                   help="the long video's length, for a model told so (video_progress in config.json); "
                        "default: the window is the whole video")
    p.add_argument("prompts", nargs="*", default=DEFAULT_PROMPTS)
    args = p.parse_args(argv)
    cfg, world, vocabulary, model, step = load_model(args)
    guidance = args.guidance if args.guidance is not None else cfg["defaults"]["guidance"]
    shift = args.shift if args.shift is not None else cfg["defaults"].get("shift", 1.0)
    jobs = [(prompt, None) for prompt in args.prompts]
    if args.start < 1:
        rng = np.random.default_rng(987_654_321)
        jobs = [(world.caption(scene), world.render(scene)) for scene in (world.sample_scene(rng) for _ in range(3))]
    rows = []
    with torch.no_grad():
        for index, (prompt, clip) in enumerate(jobs):
            scene, prior = one_object_scene(world, prompt), None
            if args.prior_above > 0:
                if scene is None:
                    sys.exit("sample.py: --prior-above needs one-object prompts of the world; %r is not one" % prompt)
                prior = world.prior_mean(scene, np.random.default_rng(index), 64)
            frames = sample(model, vocabulary, prompt, cfg["window_frames"], cfg["canvas_height"], cfg["canvas_width"],
                            args.steps, guidance, args.seed + index, shift, clip, args.start, prior, args.prior_above,
                            args.first_frame, args.video_frames)
            rows.append(np.concatenate(list(frames[::2]), axis=1))
            print(prompt)
            if scene is not None:
                report_travel(world, scene, frames)
            if clip is not None:
                rows.append(np.concatenate(list(to_bytes(clip)[::2]), axis=1))
    write_png(args.output, np.concatenate(rows, axis=0))
    print("step %d (%s weights), guidance %g, shift %g, from t = %g: wrote %s" %
          (step, "raw" if args.raw else "EMA", guidance, shift, args.start, args.output))


if __name__ == "__main__":
    main()
