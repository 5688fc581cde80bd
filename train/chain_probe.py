#!/usr/bin/env python3
"""Asks whether a long render keeps its prompt's motion better when its chunks are chained than
when they are co-denoised. Both render the same held-out prompts, four windows long, from the
same noise, in PyTorch:

- fused: every chunk steps together and overlapping frames take the weighted mean of their
  chunks' steps, as the farm fuses them;
- chained: chunk by chunk, each finished before the next starts; the frames a chunk shares with
  the one before are that chunk's finished frames, noised to each step's t and put back before
  every step, so the chunk draws only what follows them.

Neither has the farm's layout pass (docs/farm.md), so both show what a model's chunks keep of
a way on their own.

Each window-long segment of each video is scored for its direction as `reel eval` scores it
(centroid of the named colour, first three frames to last three, at least 6 pixels within 22.5
degrees), with the centroid taken as a circular mean for a world whose edges wrap.

    chain_probe.py --package PKG [--run RUN] [--prompts 16] [--seeds 2] [--windows 4]
"""
import argparse
import math
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reel_train.checks import add_weight_arguments, load_model  # noqa: E402
from sample import schedule, to_bytes  # noqa: E402

COLOR_TOLERANCE = 90.0
MINIMUM_AREA = 15
MINIMUM_TRAVEL = 6.0


def chunk_starts(total, window, overlap):
    """Segmentation.cover: a chunk every window - overlap frames, the last ending at the end."""
    stride = window - overlap
    starts = list(range(0, max(total - window, 0) + 1, stride))
    if starts[-1] + window < total:
        starts.append(total - window)
    return starts


def ramp(start, starts, window, overlap):
    """Segmentation.weights: a linear ramp over the overlap at each side that has a neighbour."""
    w = np.ones(window, np.float32)
    ramp_up = np.arange(1, overlap + 1, dtype=np.float32) / (overlap + 1)
    if start != starts[0]:
        w[:overlap] = ramp_up
    if start != starts[-1]:
        w[-overlap:] = ramp_up[::-1]
    return torch.from_numpy(w)


class Renderer:
    def __init__(self, model, vocabulary, cfg, steps, guidance):
        self.model, self.vocabulary = model, vocabulary
        self.window = cfg["window_frames"]
        self.times = schedule(steps, cfg["defaults"].get("shift", 1.0))
        self.guidance = guidance

    def encode(self, prompt):
        """The prompt's and the empty prompt's encoded tokens [2, L, D] and mask [2, L], once a render."""
        tokens = [self.vocabulary.tokenize(prompt), [0]]
        length = max(len(t) for t in tokens)
        ids = torch.tensor([t + [0] * (length - len(t)) for t in tokens])
        mask = torch.tensor([[True] * len(t) + [False] * (length - len(t)) for t in tokens])
        return self.model.text(ids, mask), mask

    def velocity(self, windows, t, text, firsts, total):
        """Guided velocities at time `t` of windows [B, F, 3, H, W] that start at `firsts` of a
        video `total` long, for `text` from encode()."""
        B = windows.shape[0]
        context, mask = text
        v = self.model.velocity(torch.cat([windows, windows]), t.reshape(1).repeat(2 * B), context.repeat_interleave(B, 0),
                                mask.repeat_interleave(B, 0), torch.tensor(firsts * 2), torch.tensor([total] * (2 * B)))
        conditional, empty = v[:B], v[B:]
        return empty + self.guidance * (conditional - empty)

    def fused(self, noise, prompt, overlap):
        total = noise.shape[0]
        starts = chunk_starts(total, self.window, overlap)
        weights = [ramp(s, starts, self.window, overlap) for s in starts]
        x, text = noise.clone(), self.encode(prompt)
        for k in range(len(self.times) - 1):
            v = self.velocity(torch.stack([x[s:s + self.window] for s in starts]), self.times[k], text, starts, total)
            total_v, total_w = torch.zeros_like(x), torch.zeros(total)
            for i, s in enumerate(starts):
                total_v[s:s + self.window] += weights[i][:, None, None, None] * v[i]
                total_w[s:s + self.window] += weights[i]
            x = x + (self.times[k + 1] - self.times[k]) * total_v / total_w[:, None, None, None]
        return x

    def chained(self, noise, prompt, overlap):
        total = noise.shape[0]
        starts = chunk_starts(total, self.window, overlap)
        video, text = torch.zeros_like(noise), self.encode(prompt)
        done = 0
        for s in starts:
            x = noise[s:s + self.window].clone()
            known = done - s  # frames of this chunk already drawn by the chunks before
            for k in range(len(self.times) - 1):
                t = self.times[k]
                if known > 0:
                    x[:known] = (1 - t) * video[s:s + known] + t * noise[s:s + known]
                x = x + (self.times[k + 1] - t) * self.velocity(x[None], t, text, [s], total)[0]
            video[s + max(known, 0):s + self.window] = x[max(known, 0):]
            done = s + self.window
        return video


def circular_mean(weights, coordinate, period):
    angle = 2 * math.pi * coordinate / period
    return (math.atan2((weights * np.sin(angle)).sum(), (weights * np.cos(angle)).sum()) * period / (2 * math.pi)) % period


def segment_passes(frames, world, color, direction):
    """`reel eval`'s direction test on frames [F, H, W, 3] in 0..255."""
    target = np.array(world.colors[color], np.float64)
    palette = [np.array(c, np.float64) for c in list(world.colors.values()) + list(world.backgrounds.values())]
    H, W = frames.shape[1:3]
    rows, columns = np.mgrid[0:H, 0:W]
    track = []
    for frame in frames.astype(np.float64):
        d = np.linalg.norm(frame - target, axis=-1)
        nearest = np.min([np.linalg.norm(frame - p, axis=-1) for p in palette], axis=0)
        mask = (d < COLOR_TOLERANCE) & (d <= nearest)
        if mask.sum() < MINIMUM_AREA:
            continue
        if world.wrap:
            track.append((circular_mean(mask, columns, W), circular_mean(mask, rows, H)))
        else:
            track.append((columns[mask].mean(), rows[mask].mean()))
    if len(track) * 2 < len(frames):
        return False
    path = [np.array(track[0])]
    for previous, current in zip(track, track[1:]):
        step = np.array(current) - np.array(previous)
        if world.wrap:
            step -= np.array([W, H]) * np.round(step / np.array([W, H]))
        path.append(path[-1] + step)
    k = min(3, len(path) // 2)
    travel = np.mean(path[-k:], axis=0) - np.mean(path[:k], axis=0)
    length = np.linalg.norm(travel)
    cosine = travel @ direction / (length * np.linalg.norm(direction) + 1e-9)
    return length >= MINIMUM_TRAVEL and math.degrees(math.acos(max(-1, min(1, cosine)))) < 22.5


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_weight_arguments(p)
    p.add_argument("--prompts", type=int, default=16, help="the first N held-out prompts (those with a direction are kept)")
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--windows", type=int, default=4, help="video length in windows")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg, world, vocabulary, model, step = load_model(args)
    renderer = Renderer(model, vocabulary, cfg, args.steps, cfg["defaults"]["guidance"])
    window, overlap = cfg["window_frames"], cfg["window_frames"] // 4
    total = window * args.windows
    tally = {"fused": [0, 0], "chained": [0, 0]}
    started = time.time()
    for prompt in world.spec["heldout"][:args.prompts]:  # in the file's order, as reel eval takes them
        words = prompt.split(" on a ")[0].split()
        motion = " ".join(words[4:])
        direction = world.motions.get(motion, {}).get("direction")
        if direction is None:
            continue
        color = words[2]
        for seed in range(args.seeds):
            noise = torch.randn((total, 3, cfg["canvas_height"], cfg["canvas_width"]),
                                generator=torch.Generator().manual_seed(seed))
            line = []
            for name in ("fused", "chained"):
                with torch.no_grad():
                    video = getattr(renderer, name)(noise, prompt, overlap)
                frames = to_bytes(video)
                passed = [segment_passes(frames[s:s + window], world, color, np.array(direction, np.float64))
                          for s in range(0, total, window)]
                tally[name][0] += sum(passed)
                tally[name][1] += len(passed)
                line.append("%s %s" % (name, "".join("+" if ok else "." for ok in passed)))
            print("%-62s seed %d: %s" % (prompt, seed, "  ".join(line)), flush=True)
    for name, (passed, count) in tally.items():
        print("%s: %d of %d window-long segments go the named way (%.1f %%)" % (name, passed, count, 100 * passed / max(count, 1)))
    print("step %d, %d windows, overlap %d, %.0f s" % (step, args.windows, overlap, time.time() - started))


if __name__ == "__main__":
    main()
