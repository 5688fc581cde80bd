#!/usr/bin/env python3
"""Whether a model told its window's phase (frame_phase in config.json) lays its objects where
the phase says: the clean clip it predicts from pure noise (t = 1) for one-object captions of
travelling objects, each at a random first frame, compared with the caption's canonical clip
for that first frame, with the mean of its canonical clips over the whole period (what a model
that ignores the phase would best predict), and with the canonical clip half a period away.

    phase_check.py --package PKG [--run RUN [--raw]] [--scenes 16]

A model that reads the phase is nearest the first; one that ignores it, the second.
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reel_train.checks import arguments, load_model  # noqa: E402


def main(argv=None):
    args = arguments(__doc__, scenes=16).parse_args(argv)
    cfg, world, vocabulary, model, step = load_model(args)
    if "frame_phase" not in cfg:
        sys.exit("phase_check.py: %s/config.json has no frame_phase; there is no phase to check" % args.package)
    period = int(cfg["frame_phase"]["period"])
    rng = np.random.default_rng(args.seed)
    errors = {"canonical": [], "mean over the period": [], "half a period off": []}
    while len(errors["canonical"]) < args.scenes:
        scene = world.sample_scene(rng, max_objects=1)
        if "direction" not in world.motions[scene["objects"][0]["motion"]]:
            continue
        first = int(rng.integers(0, period))
        tokens = torch.tensor([vocabulary.tokenize(world.caption(scene))])
        mask = torch.ones_like(tokens, dtype=torch.bool)
        noise = torch.from_numpy(rng.standard_normal((1, cfg["window_frames"], 3, cfg["canvas_height"],
                                                      cfg["canvas_width"])).astype(np.float32))
        with torch.no_grad():
            velocity = model.velocity(noise, torch.ones(1), model.text(tokens, mask), mask, torch.tensor([first]))
        predicted = (noise - velocity)[0].numpy()  # at t = 1, x = noise and clean = x - v
        targets = {"canonical": world.render(world.canonical_scene(scene, first)),
                   "mean over the period": np.mean([world.render(world.canonical_scene(scene, f))
                                                    for f in range(period)], axis=0),
                   "half a period off": world.render(world.canonical_scene(scene, first + period // 2))}
        for name, target in targets.items():
            errors[name].append(float(np.mean((predicted - target) ** 2)))
    print("step %d (%s weights), %d one-object scenes of travelling objects, error of the t = 1 prediction against:" %
          (step, "raw" if args.raw else "EMA", args.scenes))
    for name, values in errors.items():
        print("  %-22s %.4f" % (name, np.mean(values)))


if __name__ == "__main__":
    main()
