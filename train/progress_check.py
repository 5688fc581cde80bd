#!/usr/bin/env python3
"""Whether a model told its window's progress (video_progress in config.json) in a world whose
paths span the video (world.json "edges": "span") lays its objects where the window's place
puts them: the clean clip it predicts from pure noise (t = 1) for one-object captions of
travelling objects, for the first and the last window of a video four windows long, compared
with the caption's mean clip for that window's place, for the window at the other end, and for
a one-window video (what a model that ignores its progress would best predict).

    progress_check.py --package PKG [--run RUN [--raw]] [--scenes 12]

A model that reads its progress is nearest the first; one that ignores it, the third.
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reel_train.checks import arguments, load_model  # noqa: E402


def main(argv=None):
    p = arguments(__doc__, scenes=12)
    p.add_argument("--clips", type=int, default=8, help="clips averaged for each mean clip")
    args = p.parse_args(argv)
    cfg, world, vocabulary, model, step = load_model(args)
    if not cfg.get("video_progress") or not world.span:
        sys.exit("progress_check.py: %s needs video_progress in config.json and \"edges\": \"span\" in world.json"
                 % args.package)
    window = world.frames
    video = 4 * window
    ends = (0, video - window)
    rng = np.random.default_rng(args.seed)
    errors = {"its own place": [], "the other end": [], "a one-window video": []}
    scenes = 0
    while scenes < args.scenes:
        scene = world.sample_scene(rng, max_objects=1)
        if "direction" not in world.motions[scene["objects"][0]["motion"]]:
            continue
        scenes += 1
        tokens = torch.tensor([vocabulary.tokenize(world.caption(scene))])
        mask = torch.ones_like(tokens, dtype=torch.bool)
        for first, other in (ends, ends[::-1]):
            noise = torch.from_numpy(rng.standard_normal((1, window, 3, cfg["canvas_height"],
                                                          cfg["canvas_width"])).astype(np.float32))
            with torch.no_grad():
                velocity = model.velocity(noise, torch.ones(1), model.text(tokens, mask), mask,
                                          torch.tensor([first]), torch.tensor([video]))
            predicted = (noise - velocity)[0].numpy()  # at t = 1, x = noise and clean = x - v
            placed = dict(scene, video_frames=video)
            targets = {"its own place": world.prior_mean(dict(placed, first_frame=first), rng, args.clips),
                       "the other end": world.prior_mean(dict(placed, first_frame=other), rng, args.clips),
                       "a one-window video": world.prior_mean(scene, rng, args.clips)}
            for name, target in targets.items():
                errors[name].append(float(np.mean((predicted - target) ** 2)))
    print("step %d (%s weights), %d one-object scenes of travelling objects, first and last window of %d frames, "
          "error of the t = 1 prediction against the mean clip for:" % (step, "raw" if args.raw else "EMA",
                                                                          args.scenes, video))
    for name, values in errors.items():
        print("  %-20s %.4f" % (name, np.mean(values)))


if __name__ == "__main__":
    main()
