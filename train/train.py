#!/usr/bin/env python3
"""Trains a Reel model on synthetic clips and exports it as a model package.

    train.py --package RUN/package --run RUN [--steps N] [--minutes M]

`make train` runs it on from the default model with the default model's recipe, in
train/runs/reel-shapes-next, exporting into that run's own package, never into the tracked
models/reel-shapes.

The package directory must hold config.json, vocab.txt and world.json. Training resumes from
RUN/checkpoint.pt when it exists (else, with --start-from, from a package's exported weights);
every --checkpoint-every steps it saves the checkpoint (atomically), appends to RUN/loss.csv,
redraws RUN/loss.png and exports the EMA weights to PACKAGE/model.safetensors. SIGINT or
SIGTERM stops it after the step in hand, saving first.
"""
import argparse
import collections
import json
import math
import multiprocessing
import os
import signal
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reel_train.data import batch, open_package  # noqa: E402
from reel_train.files import plot_loss, read_safetensors, write_safetensors  # noqa: E402
from reel_train.model import Reel, shifted  # noqa: E402

HIGH_NOISE_FLOOR = 0.85

# Named recipes, `--recipe NAME`: the options a model was trained with, in one place for `make
# train` and train/device-run.sh. They are defaults, so options given override them wherever they
# stand, and --favour adds to the recipe's draws.
RECIPES = {
    # Run 41's (the default model; docs/training.md, "Runs"): run 32's draws of small objects
    # twice and of each diagonal, which the model already follows, a quarter as often.
    "reel-shapes": dict(lr=2e-3, layout_share=0.5, ema=0.998, one_window_share=0.25, longest_video=5,
                        keyframe_share=0.75, checkpoint_every=50,
                        favour=["small=2", "moving up and left=0.25", "moving up and right=0.25",
                                "moving down and left=0.25", "moving down and right=0.25"]),
}


def recipe_defaults(argv):
    """The options of the recipe `argv` names with --recipe ({} without one), or exit naming the
    recipes there are."""
    finder = argparse.ArgumentParser(add_help=False)
    finder.add_argument("--recipe")
    name = finder.parse_known_args(argv)[0].recipe
    if name is not None and name not in RECIPES:
        sys.exit("train.py: --recipe %r is not a recipe; give one of: %s" % (name, ", ".join(sorted(RECIPES))))
    return RECIPES.get(name, {})


def arguments(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", metavar="NAME", choices=sorted(RECIPES),
                   help="the options a named recipe trains with (%s); options given override them"
                        % ", ".join(sorted(RECIPES)))
    p.add_argument("--package", required=True, help="model package directory (config.json, vocab.txt, world.json)")
    p.add_argument("--run", required=True, help="directory for the checkpoint, loss log and plot")
    p.add_argument("--steps", type=int, default=0, help="stop after this many steps in all (0: no limit)")
    p.add_argument("--minutes", type=float, default=0, help="stop after this many minutes of this session (0: no limit)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate")
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--rewarm", type=int, default=0,
                   help="steps over which a resumed session raises the learning rate from zero again (0: at once); "
                        "use it when resuming an annealed run at a higher rate")
    p.add_argument("--horizon", type=int, default=40000, help="steps of the cosine decay")
    p.add_argument("--anneal-at", type=int, default=0,
                   help="from this step on, decay the learning rate linearly to 2%% of its value there (0: never)")
    p.add_argument("--anneal-steps", type=int, default=1000, help="steps of that linear decay")
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--caption-dropout", type=float, default=0.1)
    p.add_argument("--uniform-t", type=float, default=0.25,
                   help="share of timesteps drawn uniformly instead of logit-normal (reaches t near 0 and 1)")
    p.add_argument("--high-noise", type=float, default=0.0,
                   help="share of timesteps drawn uniformly from [--high-noise-floor, 1], where only the caption "
                        "says where objects go and which way they move")
    p.add_argument("--high-noise-floor", type=float, default=HIGH_NOISE_FLOOR,
                   help="lower end of the --high-noise draws (default %g)" % HIGH_NOISE_FLOOR)
    p.add_argument("--shift", type=float, default=3.0,
                   help="timestep shift of the logit-normal draws, t' = s t / (1 + (s - 1) t): above 1 trains "
                        "more at high noise, where objects are placed")
    p.add_argument("--weight-cap", type=float, default=4.0,
                   help="cap on the 1/t^2 weight the velocity loss puts on the clean video's error (0: none); "
                        "uncapped, the few low-noise samples of a batch dominate its gradient")
    p.add_argument("--prior-above", type=float, default=0.0,
                   help="at timesteps from this one up, aim at the mean of --prior-clips clips of the same caption "
                        "instead of the clip itself (0: never): near pure noise the best guess is that mean, and "
                        "one clip's object, anywhere in its range, is a noisy pointer to it")
    p.add_argument("--object-weight", type=float, default=0.0,
                   help="weigh the error on pixels that differ from the clip's background this much more "
                        "(0: every pixel alike): a small object is under 3%% of a frame, so an even loss "
                        "hardly notices where it goes")
    p.add_argument("--keyframe-object-weight", type=float,
                   help="with frame_stride: --object-weight for keyframe windows alone (default: --object-weight): "
                        "a long render keeps its keyframe layout's ways, and what that layout gets wrong is a small "
                        "object drifting a few pixels across its way, which an even loss barely notices")
    p.add_argument("--object-share", type=float, default=0.0,
                   help="instead of --object-weight: the pixels that differ from each clip's background carry "
                        "this share of that clip's loss, however few they are (0: off), so a small object's "
                        "path counts as much as a large one's")
    p.add_argument("--favour", action="append", default=[], metavar="NAME=WEIGHT",
                   help="draw the motion or size NAME (as world.json spells it: 'moving left', 'small') WEIGHT "
                        "times as often as the others (repeatable; each left out weighs 1), to spend a run's "
                        "steps on what the model gets wrong")
    p.add_argument("--prior-clips", type=int, default=8, help="clips averaged for a --prior-above or --layout-share target")
    p.add_argument("--layout-share", type=float, default=0.0,
                   help="share of each batch drawn as one-object scenes, trained at t = 1 towards their caption's "
                        "mean clip (0: none): from pure noise only the caption says where an object starts, and "
                        "one-object captions teach that layout fastest; the rest of the batch trains as usual")
    p.add_argument("--one-window-share", type=float, default=0.25,
                   help="with video_progress: share of training videos one window long, the length most renders have")
    p.add_argument("--longest-video", type=int, default=8,
                   help="with video_progress: the longest training video, in windows (lengths between one window "
                        "and this are drawn evenly)")
    p.add_argument("--keyframe-share", type=float,
                   help="with frame_stride: share of the videos longer than a window drawn as one window of "
                        "keyframes spanning the whole video, as a long render's layout pass asks for (default 0.25)")
    p.add_argument("--start-from", metavar="PACKAGE",
                   help="when RUN holds no checkpoint, start from PACKAGE/model.safetensors (the EMA weights a run "
                        "exported) at the step its metadata records, with a fresh optimiser (so give --rewarm): "
                        "a 10 MB package kept in git carries a run on where its 40 MB checkpoint was not kept")
    p.add_argument("--checkpoint-every", type=int, default=100)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--data-workers", type=int, default=0,
                   help="processes drawing batches ahead of the model (0: drawn between steps); on a machine with a "
                        "GPU give it most of the cores, or the GPU waits on the CPU to draw clips")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    argv = sys.argv[1:] if argv is None else argv
    p.set_defaults(**recipe_defaults(argv))
    return p.parse_args(argv)


def learning_rate(step, args, first_step=0):
    """Warm-up, then cosine decay over `horizon`; with `anneal_at`, a short linear decay from there
    ends a session with a settled model, and a later session without it picks the cosine up again.
    With `rewarm`, a session that began at `first_step` reaches that rate over `rewarm` steps."""
    if args.anneal_at and step >= args.anneal_at:
        progress = min(1.0, (step - args.anneal_at) / max(1, args.anneal_steps))
        rate = cosine_rate(args.anneal_at, args) * (1 - 0.98 * progress)
    else:
        rate = cosine_rate(step, args)
    if args.rewarm:
        rate *= min(1.0, (step - first_step + 1) / args.rewarm)
    return rate


def cosine_rate(step, args):
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    progress = min(1.0, (step - args.warmup) / max(1, args.horizon - args.warmup))
    return args.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def timesteps(b, uniform_share, generator, device, shift=1.0, high_share=0.0, high_floor=HIGH_NOISE_FLOOR):
    """Logit-normal t warped by `shift`, with a share drawn uniformly: logit-normal alone rarely
    trains t near 1, where every sample starts, or near 0, where it ends. `high_share` more are
    drawn from [high_floor, 1]: below it the noisy clip itself shows where an object is and
    which way it goes, so only there does a caption's motion lower the loss."""
    logit_normal = torch.sigmoid(torch.randn(b, generator=generator, device=device))
    logit_normal = shifted(logit_normal, shift)
    uniform = torch.rand(b, generator=generator, device=device)
    pick = torch.rand(b, generator=generator, device=device)
    t = torch.where(pick < uniform_share, uniform, logit_normal)
    if high_share > 0:
        high = high_floor + (1 - high_floor) * torch.rand(b, generator=generator, device=device)
        t = torch.where(pick >= 1 - high_share, high, t)
    return t


def flow_loss(model, clips, tokens, mask, generator, uniform_share=0.0, shift=1.0, weight_cap=0.0, high_share=0.0,
              high_floor=HIGH_NOISE_FLOOR, aim=None, pure_noise=0, first_frame=None, video_frames=None,
              object_weight=0.0, object_share=0.0, stride=None):
    """Rectified flow: x_t = (1-t) x0 + t e, predict v = e - x0, t mostly logit-normal.

    The velocity error is the clean video's error over t, so the loss weighs that error by
    1/t^2; `weight_cap` > 0 caps the weight (below t = 1/sqrt(cap) every t counts alike).
    The first `pure_noise` clips are drawn at t = 1. `aim(t)`, when given, returns the clean
    clips to aim at for the drawn timesteps. `first_frame` [B] is where each clip's window starts
    in a long video (for models with `frame_phase`), `video_frames` [B] that video's length (for
    models with `video_progress`), `stride` [B] how many video frames apart its frames lie (for
    models with `frame_stride`). With `object_weight`, pixels of the target that differ from its
    background weigh 1 + object_weight times as much as the background's; with `object_share`,
    they carry that share of each clip's loss together, the background the rest."""
    b = clips.shape[0]
    t = timesteps(b, uniform_share, generator, clips.device, shift, high_share, high_floor)
    t[:pure_noise] = 1.0
    noise = torch.randn(clips.shape, generator=generator, device=clips.device)
    tt = t[:, None, None, None, None]
    x = (1 - tt) * clips + tt * noise
    context = model.text(tokens, mask)
    prediction = model.velocity(x, t, context, mask, first_frame, video_frames, stride)
    target = clips if aim is None else aim(t)
    error = (prediction - (noise - target)) ** 2
    weight = object_weights(target, object_weight, object_share)
    if weight is not None:
        per_clip = torch.sum(error * weight, dim=(1, 2, 3, 4)) / (torch.sum(weight, dim=(1, 2, 3, 4)) * clips.shape[2])
    else:
        per_clip = torch.mean(error, dim=(1, 2, 3, 4))
    if weight_cap > 0:
        per_clip = per_clip * torch.clamp(weight_cap * t ** 2, max=1.0)
    return torch.mean(per_clip)


def clip_object_weights(args, strides):
    """--object-weight, or with --keyframe-object-weight a tensor [B] of each clip's: that weight
    for keyframe windows (stride over 1), --object-weight for the rest."""
    if args.keyframe_object_weight is None or strides is None:
        return args.object_weight
    return torch.from_numpy(np.where(strides > 1, args.keyframe_object_weight, args.object_weight)).float()


def object_weights(target, object_weight=0.0, object_share=0.0):
    """[B, F, 1, H, W] weights of the target's pixels in the loss, or None when all weigh alike.
    `object_weight` is one number or one per clip [B].
    With `object_share`, a clip whose objects cover a share a of its pixels gives each object
    pixel object_share / a and each background pixel (1 - object_share) / (1 - a): the weights
    of a clip sum to its pixel count, so the loss keeps its scale."""
    if object_share > 0:
        objects = object_pixels(target)
        covered = objects.mean(dim=(1, 2, 3, 4), keepdim=True).clamp(1e-4, 1 - 1e-4)
        return torch.where(objects > 0, object_share / covered, (1 - object_share) / (1 - covered))
    weight = torch.as_tensor(object_weight)  # told on the CPU, so deciding here waits on no GPU
    if not bool((weight > 0).any()):
        return None
    return 1 + weight.to(target).reshape(-1, 1, 1, 1, 1) * object_pixels(target)  # [B or 1, 1, 1, 1, 1]


def object_pixels(clips, tolerance=0.1):
    """[B, F, 1, H, W]: 1 where a clip's pixel differs from its background, the median colour
    of the clip (objects cover far less than half of it), by more than `tolerance`."""
    b, _, c = clips.shape[:3]
    background = clips.transpose(1, 2).reshape(b, c, -1).median(dim=2).values
    return ((clips - background[:, None, :, None, None]).abs().amax(dim=2, keepdim=True) > tolerance).to(clips)


def load_weights(model, weights, source):
    """`weights` into `model`, and the names of the parameters they lack: a path added to the
    config since (pooled_text, frame_phase, video_progress or frame_stride), which keeps its zero start,
    or blocks past the weights' depth, which start as the identity. Anything else that does not
    fit stops the trainer."""
    result = model.load_state_dict(weights, strict=False)
    missing = result.missing_keys
    grown = grown_blocks(model, weights)
    added = [name for name in missing if not name.startswith(tuple("blocks.%d." % i for i in grown))]
    if result.unexpected_keys or any(not name.startswith(("text_pool.", "phase_embed.", "progress_embed.", "stride_embed.")) for name in added):
        sys.exit("train.py: %s does not fit config.json (unexpected %s, missing %s); "
                 "start a new --run directory for a new architecture" % (source, result.unexpected_keys, added))
    for index in grown:
        model.blocks[index].start_as_identity()
    if grown:
        print("blocks %s new in this run (config.json's depth %d), starting as the identity"
              % (", ".join(map(str, grown)), len(model.blocks)), flush=True)
    if added:
        print("new in this run, starting from zero: %s" % ", ".join(added), flush=True)
    return missing


def grown_blocks(model, weights):
    """The model's blocks past the last one `weights` holds: a config.json made deeper since.
    Only trailing whole blocks count; a block missing in the middle is a misfit."""
    held = {int(name.split(".")[1]) for name in weights if name.startswith("blocks.")}
    depth = max(held) + 1 if held else 0
    return list(range(depth, len(model.blocks))) if held == set(range(depth)) else []


def load_checkpoint(state, model, ema, optimizer):
    """Weights, EMA and optimiser from a checkpoint. Parameters the checkpoint lacks get fresh
    optimiser moments; they are registered last, so every other parameter keeps its place."""
    if grown_blocks(model, state["model"]):
        # Grown blocks sit before those late paths, so the saved moments would not line up.
        sys.exit("train.py: config.json is deeper than the checkpoint; grow a model in a new --run directory "
                 "with --start-from PACKAGE, which starts a fresh optimiser")
    missing = load_weights(model, state["model"], "the checkpoint")
    ema.load_state_dict(state["ema"], strict=False)
    saved = state["optimizer"]
    if missing:
        saved["param_groups"][0]["params"] = list(range(len(list(model.parameters()))))
    optimizer.load_state_dict(saved)


def start_from(package, model, ema):
    """Model and EMA both from the weights a run exported to `package`, and the step and seconds
    its metadata records, so the loss log and the learning-rate schedule go on from there."""
    path = os.path.join(package, "model.safetensors")
    if not os.path.exists(path):
        sys.exit("train.py: --start-from %s holds no model.safetensors; give a package a run exported to" % package)
    tensors, metadata = read_safetensors(path, with_metadata=True)
    if metadata.get("reel.weights") != "trained" or "reel.steps" not in metadata:
        sys.exit("train.py: --start-from %s: its weights are not a run's export (no reel.steps in their metadata); "
                 "give a package a run exported to" % package)
    load_weights(model, {name: torch.from_numpy(value) for name, value in tensors.items()}, path)
    ema.load_state_dict(model.state_dict())
    return int(metadata["reel.steps"]), float(metadata.get("reel.train_seconds", 0))


def export(model, package, metadata):
    tensors = {name: value.detach().cpu().numpy() for name, value in model.state_dict().items()}
    write_safetensors(os.path.join(package, "model.safetensors"), tensors, metadata)


def favour(world, given):
    """Apply each --favour NAME=WEIGHT to the world's draws, or exit naming the one that is wrong."""
    for item in given:
        name, _, weight = item.rpartition("=")
        if not name:
            sys.exit("train.py: --favour %s: give NAME=WEIGHT, e.g. --favour small=2" % item)
        try:
            world.favour(name, float(weight))
        except ValueError as error:
            sys.exit("train.py: --favour %s: %s" % (item, error))


def main(argv=None):
    args = arguments(argv)
    if args.uniform_t + args.high_noise > 1:
        sys.exit("train.py: --uniform-t plus --high-noise is %g; the two shares must add up to at most 1"
                 % (args.uniform_t + args.high_noise))
    if not 0 <= args.layout_share < 1:
        sys.exit("train.py: --layout-share is %g; give a share from 0 up to but not including 1" % args.layout_share)
    if not 0 <= args.object_share < 1:
        sys.exit("train.py: --object-share is %g; give a share from 0 up to but not including 1" % args.object_share)
    if args.object_share > 0 and (args.object_weight > 0 or args.keyframe_object_weight):
        sys.exit("train.py: --object-share and --object-weight (or --keyframe-object-weight) both weigh the objects; "
                 "give one of them")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    cfg, world, vocabulary = open_package(args.package)
    favour(world, args.favour)
    phase = cfg.get("frame_phase")
    if phase and not (world.wrap or world.span):
        sys.exit("train.py: config.json has frame_phase but world.json's edges stop objects; add \"edges\": \"wrap\" "
                 "or \"span\" to world.json, so that a long video's windows share its objects' paths")
    if phase and world.wrap and phase["period"] != world.phase_period():
        sys.exit("train.py: config.json's frame_phase period is %g; set it to world.json's canvas over its speed (%g), "
                 "the period its objects' paths repeat with" % (phase["period"], world.phase_period()))
    if phase and phase["period"] % (world.frames / 2):
        sys.exit("train.py: config.json's frame_phase period is %g, which a bounce's period (%g frames, half of "
                 "world.json's frames) does not divide; make the frames divide twice the period"
                 % (phase["period"], world.frames / 2))
    if world.span and not cfg.get("video_progress"):
        sys.exit("train.py: world.json's edges span the video but config.json has no video_progress; add "
                 "\"video_progress\": true, or a window cannot know where on its objects' paths it lies")
    if cfg.get("video_progress") and not phase:
        sys.exit("train.py: config.json has video_progress but no frame_phase; a window told how far through its "
                 "video it lies must also be told its phase, which bounces and travel keep")
    if cfg.get("frame_stride") and not cfg.get("video_progress"):
        sys.exit("train.py: config.json has frame_stride but no video_progress; keyframes spanning a video "
                 "need the video's length, which video_progress tells")
    if args.keyframe_share is not None and not cfg.get("frame_stride"):
        sys.exit("train.py: --keyframe-share draws keyframe windows, which only a model with \"frame_stride\": true "
                 "in config.json is told of; add it, or leave the option out")
    if args.keyframe_object_weight is not None and not cfg.get("frame_stride"):
        sys.exit("train.py: --keyframe-object-weight weighs keyframe windows, which only a model with "
                 "\"frame_stride\": true in config.json is trained on; use --object-weight instead")
    if cfg.get("frame_stride") and args.keyframe_share is None:
        args.keyframe_share = 0.25
    model = Reel(cfg, len(vocabulary.words)).to(args.device)
    ema = Reel(cfg, len(vocabulary.words)).to(args.device)
    ema.load_state_dict(model.state_dict())
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.99), weight_decay=0.0)
    os.makedirs(args.run, exist_ok=True)
    checkpoint_path = os.path.join(args.run, "checkpoint.pt")
    step, seconds = 0, 0.0
    if os.path.exists(checkpoint_path):
        state = torch.load(checkpoint_path, map_location=args.device)
        load_checkpoint(state, model, ema, optimizer)
        step, seconds = state["step"], state["seconds"]
        print("resumed at step %d (%.0f s trained)%s" % (step, seconds, "; --start-from is not used" if args.start_from else ""),
              flush=True)
    elif args.start_from:
        if not args.rewarm:  # a run resuming its checkpoint uses neither, so only a run starting asks
            sys.exit("train.py: --start-from begins with a fresh optimiser; add --rewarm N (100 is enough) so the "
                     "learning rate climbs while its moments settle")
        step, seconds = start_from(args.start_from, model, ema)
        print("started from %s at step %d (%.0f s trained), with a fresh optimiser" % (args.start_from, step, seconds), flush=True)
    parameters = sum(p.numel() for p in model.parameters())
    print("model: %d parameters, %s" % (parameters, json.dumps({k: cfg[k] for k in ("width", "depth", "heads", "patch")})), flush=True)

    generator = torch.Generator(device=args.device).manual_seed(args.seed * 7919 + step)
    log_path = os.path.join(args.run, "loss.csv")
    if not os.path.exists(log_path):
        with open(log_path, "w") as f:
            f.write("step,loss,lr,seconds\n")
    session_start, first_step, window, last = time.time(), step, [], time.time()
    layout = round(args.layout_share * args.batch)
    stop = []  # SIGINT or SIGTERM: finish the step, save, and leave
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda *_: stop.append(True))
    draws = batches(world, vocabulary, args, layout, phase, cfg.get("video_progress", False), step)
    while not stop:
        if args.steps and step >= args.steps:
            break
        if args.minutes and time.time() - session_start > args.minutes * 60:
            break
        first, videos, strides, clips, tokens, mask, told, targets, rng = next(draws)
        clips = torch.from_numpy(clips).to(args.device)
        tokens, mask = torch.from_numpy(tokens).to(args.device), torch.from_numpy(mask).to(args.device)
        lr = learning_rate(step, args, first_step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss = flow_loss(model, clips, tokens, mask, generator, args.uniform_t, args.shift, args.weight_cap,
                         args.high_noise, args.high_noise_floor, prior_aim(args, world, clips, told, rng, targets),
                         pure_noise=layout, first_frame=None if first is None else torch.from_numpy(first),
                         video_frames=None if videos is None else torch.from_numpy(videos),
                         stride=None if strides is None else torch.from_numpy(strides),
                         object_weight=clip_object_weights(args, strides), object_share=args.object_share)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        decay = min(args.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for e, p in zip(ema.parameters(), model.parameters()):
                e.mul_(decay).add_(p, alpha=1 - decay)
        step += 1
        now = time.time()
        seconds += now - last
        last = now
        window.append(loss.item())
        with open(log_path, "a") as f:
            f.write("%d,%.6f,%.6g,%.1f\n" % (step, window[-1], lr, seconds))
        if step % args.checkpoint_every == 0:
            save(args, model, ema, optimizer, step, seconds, checkpoint_path, log_path)
            print("step %d  loss %.4f (mean of last %d)  lr %.2e  %.1f s/step" %
                  (step, np.mean(window), len(window), lr, seconds / step), flush=True)
            window = []
    draws.close()
    save(args, model, ema, optimizer, step, seconds, checkpoint_path, log_path)
    print("stopped at step %d after %.0f s of training" % (step, seconds), flush=True)


def window_places(args, rng, size, world, phase, progress):
    """Where each clip's window lies in its video: first frames [B], video lengths [B] and strides
    [B], each None where the model is not told it. Bounces keep the video's time and canonical
    layout targets lie where the video's path has taken them; with `progress`, growth runs over the
    video. A share of the videos are one window long, the length most renders have; with
    --keyframe-share, a share of the longer ones are drawn as one window of keyframes from their
    first frame to their last."""
    if progress:
        window = world.frames
        videos = np.where(rng.random(size) < args.one_window_share, window,
                          rng.integers(window + 1, args.longest_video * window + 1, size=size))
        first = np.floor(rng.random(size) * (videos - window + 1)).astype(np.int64)
        if not args.keyframe_share:
            return first, videos.astype(np.int64), None
        keyframes = (videos > window) & (rng.random(size) < args.keyframe_share)
        strides = np.where(keyframes, (videos - 1) / (window - 1), 1.0)
        return np.where(keyframes, 0, first), videos.astype(np.int64), strides
    if phase:
        return rng.integers(0, phase["period"], size=size), None, None
    return None, None, None


def layout_targets(args, world, told, rng, layout, first=None, videos=None):
    """What the first `layout` clips of a batch aim at: the mean of their caption's clips (for their
    window's place in its video, where it has one), or in a wrapping world with window phases
    (`first`) their caption's canonical clip for where their window starts, since there the mean
    is a smear with no way."""
    if first is None or not world.wrap:
        return [world.prior_mean(told[i], rng, args.prior_clips) for i in range(layout)]
    return [world.render(world.canonical_scene(told[i], int(first[i]), None if videos is None else int(videos[i])))
            for i in range(layout)]


def prior_aim(args, world, clips, told, rng, targets):
    """The `aim` that swaps the first len(`targets`) clips for those targets, and with
    --prior-above each other clip drawn at a high enough timestep for the mean of its caption's
    clips; None when it would swap none."""
    layout = len(targets)
    if not args.prior_above and not layout:
        return None

    def aim(t):
        target = clips.clone()
        swap = t >= args.prior_above if args.prior_above else torch.zeros_like(t, dtype=torch.bool)
        swap[:layout] = True
        for i in torch.nonzero(swap).flatten().tolist():
            clip = targets[i] if i < layout else world.prior_mean(told[i], rng, args.prior_clips)
            target[i] = torch.from_numpy(clip).to(clips)
        return target
    return aim


def draw(world, vocabulary, args, layout, phase, progress, step):
    """The batch for `step`: window places, clips, tokens, mask, scenes, layout targets, and the
    generator it was drawn with (still needed for --prior-above). Its seed is the run's and the
    step's, so the batch is the same whichever process draws it, and a resumed run goes on with
    the batches it would have had."""
    rng = np.random.default_rng([args.seed, step])
    first, videos, strides = window_places(args, rng, args.batch, world, phase, progress)
    clips, tokens, mask, told = batch(world, vocabulary, rng, args.batch, args.caption_dropout, layout, first, videos,
                                      strides)
    targets = layout_targets(args, world, told, rng, layout, first, videos)
    return first, videos, strides, clips, tokens, mask, told, targets, rng


_DRAWING = None  # draw()'s arguments but the step, in a data worker


def _start_drawing(arguments):
    global _DRAWING
    torch.set_num_threads(1)
    _DRAWING = arguments


def _draw_in_worker(step):
    return draw(*_DRAWING, step)


def batches(world, vocabulary, args, layout, phase, progress, step):
    """draw()'s batches from `step` on, drawn by --data-workers processes (two each ahead of the
    model) or, with none, in this process as each is needed."""
    if not args.data_workers:
        while True:
            yield draw(world, vocabulary, args, layout, phase, progress, step)
            step += 1
    # Spawned, not forked: a child forked from a process whose BLAS and OpenMP threads are
    # running can hang on a lock one of them held.
    with multiprocessing.get_context("spawn").Pool(args.data_workers, _start_drawing,
                                                   ((world, vocabulary, args, layout, phase, progress),)) as pool:
        ahead = collections.deque(pool.apply_async(_draw_in_worker, (step + k,)) for k in range(2 * args.data_workers))
        step += len(ahead)
        while True:
            drawn = ahead.popleft().get()
            ahead.append(pool.apply_async(_draw_in_worker, (step,)))
            step += 1
            yield drawn


def save(args, model, ema, optimizer, step, seconds, checkpoint_path, log_path):
    temporary = checkpoint_path + ".partial"
    torch.save({"model": model.state_dict(), "ema": ema.state_dict(), "optimizer": optimizer.state_dict(),
                "step": step, "seconds": seconds}, temporary)
    os.replace(temporary, checkpoint_path)
    export(ema, args.package, {"reel.weights": "trained", "reel.steps": str(step), "reel.train_seconds": "%.0f" % seconds})
    rows = np.loadtxt(log_path, delimiter=",", skiprows=1, ndmin=2)
    if len(rows):
        plot_loss(os.path.join(args.run, "loss.png"), rows[:, 0], rows[:, 1])


if __name__ == "__main__":
    main()
