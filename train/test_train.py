#!/usr/bin/env python3
"""The trainer's own test (make train-test): a few dozen steps on a tiny model and a tiny world
lower the loss, resuming from a checkpoint continues where it stopped, an anneal lowers the
learning rate, the export writes every tensor the Swift model reads, a checkpoint resumes into
a config that adds the pooled-text path (which then learns), a caption's mean clip travels the
caption's way, training that aims at such means runs (with one-object layouts at t = 1 and a
re-warmed learning rate too), a world with wrapping edges draws objects across them,
caption_check runs, and in a wrapping world the windows of one long video agree on their
canonical paths and a checkpoint resumes into a config that adds the window phase (which then
learns), a new run starts from a package's exported weights (--start-from), and in a world whose
paths span the video a long video's windows lie on one path across the canvas, training runs
there, progress_check runs, a probe without --run reads the package's exported weights,
which are the checkpoint's EMA, and the loss runs with model and batch on another device than
the CPU."""
import argparse
import json
import os
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import caption_check  # noqa: E402
import progress_check  # noqa: E402
import train  # noqa: E402
from reel_train.checks import add_weight_arguments, load_model  # noqa: E402
from reel_train.data import Vocabulary, World, batch, model_values, open_package  # noqa: E402
from reel_train.files import read_safetensors  # noqa: E402
from reel_train.model import progress_features, stride_features  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def tiny_package(directory):
    with open(os.path.join(HERE, "..", "models", "reel-shapes", "world.json")) as f:
        world = json.load(f)
    world.update({"canvas": 16, "frames": 4, "sizes": {"small": 3, "large": 5}, "speed": 1.0})
    world.pop("edges", None)  # edges that stop objects, until a check changes them
    world["motions"] = {k: v for k, v in world["motions"].items() if "bounce" not in v}
    with open(os.path.join(directory, "world.json"), "w") as f:
        json.dump(world, f)
    config = {"format": "reel-dit/1", "channels": 3, "canvas_height": 16, "canvas_width": 16, "window_frames": 4,
              "fps": 8, "patch": 4, "width": 32, "depth": 2, "heads": 2, "mlp_ratio": 2,
              "text": {"width": 32, "depth": 1, "heads": 2, "mlp_ratio": 2, "max_tokens": 32}, "vocabulary": "vocab.txt"}
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(config, f)
    with open(os.path.join(HERE, "..", "models", "reel-shapes", "vocab.txt")) as f:
        vocab = f.read()
    with open(os.path.join(directory, "vocab.txt"), "w") as f:
        f.write(vocab)


def add_pooled_text(directory):
    path = os.path.join(directory, "config.json")
    with open(path) as f:
        config = json.load(f)
    config["pooled_text"] = True
    with open(path, "w") as f:
        json.dump(config, f)


def losses(run):
    return np.loadtxt(os.path.join(run, "loss.csv"), delimiter=",", skiprows=1, ndmin=2)


def check_prior_mean(directory):
    """The mean of a caption's clips travels the caption's way, and by its full distance."""
    world = World(os.path.join(directory, "world.json"))
    red, gray = model_values(world.colors["red"]), model_values(world.backgrounds["gray"])
    for motion, direction in (("moving right", (1, 0)), ("moving up", (0, -1))):
        scene = caption_check.probe_scene(motion, size="small")
        travel = caption_check.centroid_travel(world.prior_mean(scene, np.random.default_rng(0), 32), red, gray)
        distance = world.spec["speed"] * (world.frames - 1)
        assert np.allclose(travel, np.array(direction) * distance, atol=0.5), (motion, travel)


def check_one_object_batch(directory):
    """The first clips of a batch asked for one object each hold one and keep their caption."""
    world = World(os.path.join(directory, "world.json"))
    vocabulary = Vocabulary(os.path.join(directory, "vocab.txt"))
    _, _, _, told = batch(world, vocabulary, np.random.default_rng(0), 32, caption_dropout=0.5, one_object=16)
    assert all(scene is not None and len(scene["objects"]) == 1 for scene in told[:16]), told[:16]
    assert any(scene is None for scene in told[16:]), "captions are dropped in the rest of the batch"


def check_favour(directory):
    """--favour draws a motion or size as often as its weight says, refuses a name the world lacks,
    and leaves an unweighted world's draws exactly as they were."""
    path = os.path.join(directory, "world.json")
    plain, weighted = World(path), World(path)
    first = [plain.draw_scene(np.random.default_rng(5)) for _ in range(3)]
    assert first == [World(path).draw_scene(np.random.default_rng(5)) for _ in range(3)]
    weighted.favour("small", 3)
    weighted.favour("moving up and left", 0)
    rng = np.random.default_rng(6)
    objects = [o for _ in range(400) for o in weighted.draw_scene(rng)["objects"]]
    small = sum(o["size"] == "small" for o in objects) / len(objects)
    assert 0.68 < small < 0.82, small  # 3 of 4
    assert not any(o["motion"] == "moving up and left" for o in objects)
    for name, weight in (("tiny", 2), ("small", -1)):
        try:
            weighted.favour(name, weight)
        except ValueError as error:
            assert repr(name) in str(error) or name in str(error), error
        else:
            raise AssertionError("--favour %s=%g was taken" % (name, weight))


def check_object_pixels(directory):
    """The object mask of --object-weight is each clip's objects, nothing of its background."""
    world = World(os.path.join(directory, "world.json"))
    vocabulary = Vocabulary(os.path.join(directory, "vocab.txt"))
    clips, _, _, told = batch(world, vocabulary, np.random.default_rng(1), 8, one_object=8)
    clips = torch.from_numpy(clips)
    found = train.object_pixels(clips)
    for i, scene in enumerate(told):
        background = torch.from_numpy(model_values(world.backgrounds[scene["background"]]))
        differs = (clips[i] - background[None, :, None, None]).abs().amax(dim=1, keepdim=True) > 0.1
        assert torch.equal(found[i].bool(), differs), scene
        assert 0 < found[i].mean() < 0.5, (scene, found[i].mean())
    # --object-share: every clip's objects carry that share of its weight, small or large, and
    # each clip's weights still sum to its pixel count.
    weights = train.object_weights(clips, object_share=0.5)
    for i in range(len(told)):
        on_objects = (weights[i] * found[i]).sum() / weights[i].sum()
        assert abs(on_objects.item() - 0.5) < 1e-4, (told[i], on_objects)
        assert abs(weights[i].sum().item() - found[i].numel()) < 1e-2 * found[i].numel(), weights[i].sum()


def world_with_edges(source, directory, edges):
    """The world of `source` (a world.json) with its edges set to `edges`, written to `directory`."""
    with open(source) as f:
        spec = json.load(f)
    spec["edges"] = edges
    path = os.path.join(directory, "%s-world.json" % edges)
    with open(path, "w") as f:
        json.dump(spec, f)
    return World(path)


def check_wrapping_world(directory):
    """In a world whose edges wrap, a travelling object starts anywhere, and one crossing an edge
    shows on both sides, whole in every frame."""
    world = world_with_edges(os.path.join(directory, "world.json"), directory, "wrap")
    starts = np.array([world.start_position(np.random.default_rng(seed), "small", "moving right") for seed in range(200)])
    assert starts.min() < 2 and starts.max() > world.canvas - 2, "starts spread over the whole canvas"
    obj = {"shape": "square", "color": "red", "size": "small", "motion": "moving right", "start": [world.canvas - 1.5, 8.0]}
    coverage = np.array([world.object_coverage(obj, f) for f in range(world.frames)])
    assert coverage[0][:, 0].max() > 0.5 and coverage[0][:, -1].max() > 0.5, "the object straddles the edge"
    areas = coverage.sum(axis=(1, 2))
    assert np.allclose(areas, areas[0], rtol=0.02), ("whole in every frame", areas)
    half = world.canvas // 2
    centre_of_left_part = [np.average(np.arange(half), weights=c[:, :half].sum(0)) for c in coverage]
    assert np.all(np.diff(centre_of_left_part) > 0), "the part that came back keeps moving right"


def check_canonical_paths(world):
    """Windows of one long video agree on where a canonical path puts an object: frame k of the
    window from frame f is frame 0 of the window from frame f + k, across the edges and over
    a whole period. Travel and bounce keep the video's time, and so does growth, over the whole
    video, where the video's length is told."""
    period = int(world.phase_period())
    video = period + 2 * world.frames
    for motion in [m for m in ("moving right", "moving up and left", "bouncing", "growing", "shrinking") if m in world.motions]:
        scene = {"background": "gray", "objects": [{"shape": "circle", "color": "red", "size": "small", "motion": motion}]}
        for first in (0, 3, period - 2):
            window = world.render(world.canonical_scene(scene, first, video))
            for k in range(1, world.frames):
                later = world.render(world.canonical_scene(scene, first + k, video))
                assert np.allclose(window[k], later[0], atol=1e-5), (motion, first, k)
        if "scale" not in world.motions[motion]:
            again = world.render(world.canonical_scene(scene, period))
            assert np.allclose(again, world.render(world.canonical_scene(scene, 0)), atol=1e-5), (motion, "a period on")
    if "growing" in world.motions:
        obj = {"shape": "circle", "color": "red", "size": "small", "motion": "growing", "start": [8.0, 8.0]}
        whole = [world.object_state(obj, f, 0, world.frames)[2] for f in (0, world.frames - 1)]
        assert whole == [world.object_state(obj, f)[2] for f in (0, world.frames - 1)], "a one-window video grows as a window"
        ends = world.object_state(obj, 0, 0, video)[2], world.object_state(obj, world.frames - 1, video - world.frames, video)[2]
        assert np.allclose(ends, whole), ("a long video grows from the same size to the same size", ends, whole)


def check_spanning_world(directory):
    """In reel-shapes' world with paths that span the video, a one-window clip travels as where
    edges stop objects, a long video's travelling object crosses the canvas once, on it all the
    time, the windows of one long video agree on the frames they share, and the mean clip a
    window aims at lies where the video's progress puts the object."""
    source = os.path.join(HERE, "..", "models", "reel-shapes", "world.json")
    world, stopping = (world_with_edges(source, directory, edges) for edges in ("span", "stop"))
    for motion in ("moving right", "moving up and left"):
        assert world.start_position(np.random.default_rng(3), "small", motion) == \
            stopping.start_position(np.random.default_rng(3), "small", motion), "one window starts as it does without span"
        obj = {"shape": "circle", "color": "red", "size": "small", "motion": motion, "start": [32.0, 32.0]}
        assert [world.object_state(obj, f) for f in (0, 15)] == [stopping.object_state(obj, f) for f in (0, 15)], \
            "one window travels as it does without span"
        video = 4 * world.frames
        obj["start"] = world.start_position(np.random.default_rng(4), "small", motion, video)
        path = np.array([world.object_state(obj, f, 0, video)[:2] for f in range(video)])
        radius = world.sizes["small"]
        assert path.min() >= radius and path.max() <= world.canvas - radius, ("on the canvas all the way", motion)
        dx, dy = world.velocity(motion)
        along = 0 if dx else 1
        assert abs(path[-1, along] - path[0, along]) > world.canvas - 2 * radius - 3, ("crosses the canvas", motion)
        scene = {"background": "gray", "objects": [obj], "video_frames": video}
        for first in (0, 12, 30):
            window = world.render(dict(scene, first_frame=first))
            later = world.render(dict(scene, first_frame=first + 5))
            assert np.allclose(window[5:], later[:world.frames - 5], atol=1e-5), (motion, first)
    told = {"background": "gray", "objects": [{"shape": "circle", "color": "red", "size": "small", "motion": "moving right"}],
            "video_frames": 64}
    mean = [world.prior_mean(dict(told, first_frame=first), np.random.default_rng(5), 4) for first in (0, 48)]
    columns = [np.abs(m[0] - m[0, :, :1, :1]).sum(axis=(0, 1)) for m in mean]  # how far each column is from the background
    centres = [np.average(np.arange(world.canvas), weights=c) for c in columns]
    assert centres[1] > centres[0] + 20, ("the last window's mean clip finds the object further right", centres)


def set_config(directory, **fields):
    path = os.path.join(directory, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    cfg.update(fields)
    with open(path, "w") as f:
        json.dump(cfg, f)


def use_window_phase(directory):
    """Makes the tiny package a wrapping world whose config tells the model its window's phase."""
    for name, change in (("world.json", lambda spec: spec.update(edges="wrap")),
                         ("config.json", lambda cfg: cfg.update(frame_phase={"period": 16, "harmonics": 2}))):
        path = os.path.join(directory, name)
        with open(path) as f:
            spec = json.load(f)
        change(spec)
        with open(path, "w") as f:
            json.dump(spec, f)


def check_recipe():
    """--recipe sets its options as defaults: options given override them, --favour
    adds to them, and an unknown name stops the trainer with the names it knows."""
    args = train.arguments(["--package", "p", "--run", "r", "--recipe", "reel-shapes", "--lr", "5e-4", "--favour", "bouncing=2"])
    assert args.lr == 5e-4 and args.layout_share == 0.5 and args.keyframe_share == 0.75, "the recipe, then what follows"
    assert args.favour[0] == "small=2" and args.favour[-1] == "bouncing=2" and len(args.favour) == 6
    assert train.arguments(["--package", "p", "--run", "r", "--recipe=reel-shapes"]).ema == 0.998
    try:
        train.arguments(["--package", "p", "--run", "r", "--recipe", "nothing"])
        raise AssertionError("an unknown recipe is refused")
    except SystemExit as refusal:
        assert "reel-shapes" in str(refusal.code), refusal.code


def check_one_device(directory):
    """The loss and its gradients run with the model and batch on another device than the CPU
    (PyTorch's meta device stands in for a GPU: a tensor made on the CPU and met there raises),
    with the window places given on the CPU as the trainer gives them, and per-clip object weights."""
    cfg, _, vocabulary = open_package(directory)
    model = train.Reel(cfg, len(vocabulary.words)).to("meta")
    frames, canvas = cfg["window_frames"], cfg["canvas_height"]
    clips = torch.zeros(2, frames, 3, canvas, canvas, device="meta")
    tokens = torch.ones(2, 5, dtype=torch.long, device="meta")
    mask = torch.ones(2, 5, dtype=torch.bool, device="meta")
    loss = train.flow_loss(model, clips, tokens, mask, None, 0.25, 3.0, 4.0, pure_noise=1,
                           first_frame=torch.tensor([0, 3]), video_frames=torch.tensor([frames, 3 * frames]),
                           stride=torch.tensor([1.0, 2.5]), object_weight=torch.tensor([0.0, 4.0]))
    loss.backward()
    assert loss.device.type == "meta" and model.patch_embed.weight.grad is not None


def check_package_weights(directory, run):
    """A probe given only --package reads the EMA weights the run exported there: the same
    model, at the same step, as the run's checkpoint gives; --raw without --run is refused."""
    parser = add_weight_arguments(argparse.ArgumentParser())
    *_, exported, step = load_model(parser.parse_args(["--package", directory]))
    *_, ema, checkpoint_step = load_model(parser.parse_args(["--package", directory, "--run", run]))
    assert step == checkpoint_step, "the export's step is the checkpoint's"
    for (name, value), (_, expected) in zip(exported.state_dict().items(), ema.state_dict().items()):
        assert torch.equal(value, expected), "%s: the export holds the checkpoint's EMA" % name
    try:
        load_model(parser.parse_args(["--package", directory, "--raw"]))
        raise AssertionError("--raw without --run is refused")
    except SystemExit as refusal:
        assert "--raw needs --run" in str(refusal.code), refusal.code


def check_start_from(directory, common):
    """A new run starts from the weights a run exported to the package, at their step, with a
    fresh optimiser; without --rewarm it refuses."""
    exported = read_safetensors(os.path.join(directory, "model.safetensors"))
    second = os.path.join(directory, "second-run")
    arguments = common + ["--run", second, "--start-from", directory]  # the last --run counts
    try:
        train.main(arguments + ["--steps", "175"])
        raise AssertionError("--start-from without --rewarm is refused")
    except SystemExit as refusal:
        assert "--rewarm" in str(refusal.code), refusal.code
    cfg, _, vocabulary = open_package(directory)
    model, ema = train.Reel(cfg, len(vocabulary.words)), train.Reel(cfg, len(vocabulary.words))
    step, _ = train.start_from(directory, model, ema)
    assert step == 170, "the export's step count"
    for name, value in model.state_dict().items():
        assert np.array_equal(value.numpy(), exported[name]), "%s comes from the export" % name
    train.main(arguments + ["--steps", "175", "--rewarm", "2"])
    assert list(losses(second)[:, 0]) == [171, 172, 173, 174, 175], "the new run counts on from the export's step"
    assert np.all(np.isfinite(losses(second)[:, 1]))


def check_grown_depth(directory):
    """A config.json made deeper than the exported weights loads them with its new trailing
    blocks as the identity: the grown model computes what the weights did, then learns."""
    cfg, _, vocabulary = open_package(directory)
    exported = {name: torch.from_numpy(value) for name, value in read_safetensors(os.path.join(directory, "model.safetensors")).items()}
    original, grown = train.Reel(cfg, len(vocabulary.words)), train.Reel(dict(cfg, depth=cfg["depth"] + 2), len(vocabulary.words))
    original.load_state_dict(exported)
    assert train.load_weights(grown, exported, "the export"), "the new blocks are reported missing"
    generator = torch.Generator().manual_seed(3)
    size = cfg["canvas_height"]
    x = torch.randn(2, cfg["window_frames"], 3, size, size, generator=generator)
    t, tokens = torch.tensor([0.3, 0.9]), torch.randint(1, len(vocabulary.words), (2, 6), generator=generator)
    mask = torch.ones(2, 6, dtype=torch.bool)
    with torch.no_grad():
        before = original.velocity(x, t, original.text(tokens, mask), mask)
        after = grown.velocity(x, t, grown.text(tokens, mask), mask)
    assert torch.equal(before, after), "grown blocks start as the identity (off by %g)" % (before - after).abs().max()
    state = torch.load(os.path.join(directory, "run", "checkpoint.pt"))
    optimizer = torch.optim.AdamW(grown.parameters())
    try:
        train.load_checkpoint(state, grown, train.Reel(dict(cfg, depth=cfg["depth"] + 2), len(vocabulary.words)), optimizer)
        raise AssertionError("a checkpoint does not resume into a deeper config")
    except SystemExit as refusal:
        assert "--start-from" in str(refusal.code), refusal.code


def check_data_workers(directory):
    """A batch is the same whether this process draws it or a data worker does, in step order."""
    cfg, world, vocabulary = open_package(directory)
    args = train.arguments(["--package", directory, "--run", "unused", "--batch", "4"])

    def drawn_by(workers):
        args.data_workers = workers
        draws = train.batches(world, vocabulary, args, 2, cfg.get("frame_phase"), cfg.get("video_progress", False), 7)
        drawn = [next(draws) for _ in range(5)]
        draws.close()
        return drawn
    for here, there in zip(drawn_by(0), drawn_by(2)):
        first, videos, strides, clips, tokens, mask, told, targets, _ = here
        assert first is not None and videos is not None, "the tiny package tells windows their place by now"
        assert strides is None and there[2] is None, "no keyframes for a model without frame_stride"
        for mine, theirs in zip((first, videos, clips, tokens, mask), there[:2] + there[3:6]):
            assert np.array_equal(mine, theirs)
        assert told == there[6] and len(targets) == 2
        assert all(np.array_equal(mine, theirs) for mine, theirs in zip(targets, there[7]))


def check_keyframes(directory):
    """A window of keyframes is the video's frames that far apart, and with frame_stride a share of
    the long videos is drawn as keyframes spanning the whole video, their features [0, 0] and
    1 - 1/stride."""
    cfg, world, vocabulary = open_package(directory)
    scene = world.sample_scene(np.random.default_rng(4), video_frames=4 * world.frames)
    scene["video_frames"] = 4 * world.frames
    stride = (4 * world.frames - 1) / (world.frames - 1)
    keyframes = world.render(dict(scene, stride=stride))
    for k in range(world.frames):
        frame = k * stride
        if frame == int(frame):
            assert np.array_equal(keyframes[k], world.render(dict(scene, first_frame=int(frame)))[0]), \
                "keyframe %d is the video's frame %d" % (k, frame)
    args = train.arguments(["--package", directory, "--run", "unused", "--batch", "64", "--one-window-share", "0.25",
                            "--longest-video", "3", "--keyframe-share", "0.5"])
    first, videos, strides = train.window_places(args, np.random.default_rng(2), 64, world, cfg["frame_phase"], True)
    drawn = strides > 1
    assert 0 < drawn.sum() < 64 and np.all(videos[drawn] > world.frames) and np.all(first[drawn] == 0), \
        "a share of the long videos are keyframes from their first frame"
    assert np.allclose(strides[drawn], (videos[drawn] - 1) / (world.frames - 1))
    # --keyframe-object-weight weighs the objects of keyframe windows alone.
    weighted = train.arguments(["--package", directory, "--run", "unused", "--keyframe-object-weight", "4"])
    assert torch.equal(train.clip_object_weights(weighted, strides), torch.from_numpy(np.where(drawn, 4.0, 0.0)).float())
    clips, _, _, _ = batch(world, vocabulary, np.random.default_rng(3), 64, first_frames=first, video_frames=videos,
                           strides=strides)
    clips = torch.from_numpy(clips)
    weights = train.object_weights(clips, train.clip_object_weights(weighted, strides))
    assert torch.all(weights[torch.from_numpy(~drawn)] == 1), "other windows weigh every pixel alike"
    assert torch.equal(weights[torch.from_numpy(drawn)], 1 + 4 * train.object_pixels(clips)[torch.from_numpy(drawn)])
    features = progress_features(torch.from_numpy(first), torch.from_numpy(videos), world.frames, torch.from_numpy(strides))
    assert torch.allclose(features[torch.from_numpy(drawn)], torch.zeros(1, dtype=torch.float64)), \
        "keyframes span their video"
    assert torch.all(stride_features(torch.from_numpy(strides))[~torch.from_numpy(drawn)] == 0)


def main():
    with tempfile.TemporaryDirectory() as directory:
        tiny_package(directory)
        run = os.path.join(directory, "run")
        common = ["--package", directory, "--run", run, "--batch", "8", "--lr", "3e-3", "--warmup", "5",
                  "--horizon", "80", "--checkpoint-every", "20", "--threads", "2"]
        train.main(common + ["--steps", "40"])
        train.main(common + ["--steps", "80"])  # resumes at 40
        rows = losses(run)
        assert list(rows[:, 0]) == list(range(1, 81)), "resume continues the step count without gaps"
        first, last = rows[:10, 1].mean(), rows[-10:, 1].mean()
        print("mean loss over the first 10 steps %.4f, over the last 10 %.4f" % (first, last))
        assert last < 0.8 * first, "training lowers the loss"
        exported = read_safetensors(os.path.join(directory, "model.safetensors"))
        for name in ("patch_embed.weight", "blocks.1.attn_t.qkv.weight", "blocks.0.cross.kv.bias", "text.token_embed.weight",
                     "final.adaln.weight", "time_embed.fc2.bias", "text.blocks.0.norm1.weight"):
            assert name in exported, name
        assert os.path.exists(os.path.join(run, "loss.png"))
        train.main(common + ["--steps", "100", "--anneal-at", "80", "--anneal-steps", "20"])
        rates = losses(run)[80:, 2]
        assert np.all(np.diff(rates) < 0) and rates[-1] < 0.1 * rates[0], "the anneal decays the learning rate"
        add_pooled_text(directory)
        train.main(common + ["--steps", "110", "--high-noise", "0.3"])
        assert len(losses(run)) == 110, "the checkpoint resumed into the wider model"
        pool = read_safetensors(os.path.join(directory, "model.safetensors"))["text_pool.weight"]
        assert np.abs(pool).max() > 0, "the pooled-text path starts at zero and learns"
        check_prior_mean(directory)
        train.main(common + ["--steps", "120", "--high-noise", "0.5", "--high-noise-floor", "0.9",
                             "--prior-above", "0.9", "--prior-clips", "4"])
        assert len(losses(run)) == 120 and np.all(np.isfinite(losses(run)[:, 1])), "training aims at caption means"
        check_one_object_batch(directory)
        check_wrapping_world(directory)
        train.main(common + ["--steps", "130", "--layout-share", "0.5", "--rewarm", "5"])
        rates = losses(run)[120:, 2]
        assert len(rates) == 10 and np.all(np.diff(rates[:5]) > 0) and rates[0] < 0.3 * rates[4], \
            "a resumed session re-warms its learning rate"
        assert np.all(np.isfinite(losses(run)[120:, 1])), "training aims one-object layouts at caption means"
        caption_check.main(["--package", directory, "--run", run, "--clips", "4", "--repeats", "1"])
        use_window_phase(directory)
        check_canonical_paths(World(os.path.join(directory, "world.json")))
        # reel-shapes' world wrapping, for its bounce (the tiny world has none)
        check_canonical_paths(world_with_edges(os.path.join(HERE, "..", "models", "reel-shapes", "world.json"), directory, "wrap"))
        train.main(common + ["--steps", "140", "--layout-share", "0.5"])
        assert len(losses(run)) == 140 and np.all(np.isfinite(losses(run)[130:, 1])), "the checkpoint resumed with a phase"
        phase = read_safetensors(os.path.join(directory, "model.safetensors"))["phase_embed.weight"]
        assert np.abs(phase).max() > 0, "the window-phase path starts at zero and learns"
        set_config(directory, video_progress=True)
        train.main(common + ["--steps", "150", "--layout-share", "0.5"])
        assert len(losses(run)) == 150 and np.all(np.isfinite(losses(run)[140:, 1])), "the checkpoint resumed with progress"
        progress = read_safetensors(os.path.join(directory, "model.safetensors"))["progress_embed.weight"]
        assert np.abs(progress).max() > 0, "the video-progress path starts at zero and learns"
        check_object_pixels(directory)
        check_favour(directory)
        train.main(common + ["--steps", "155", "--layout-share", "0.5", "--favour", "small=2", "--favour", "moving right=3"])
        assert len(losses(run)) == 155 and np.all(np.isfinite(losses(run)[150:, 1])), "training favours what it is told"
        train.main(common + ["--steps", "160", "--layout-share", "0.5", "--object-weight", "4"])
        assert len(losses(run)) == 160 and np.all(np.isfinite(losses(run)[155:, 1])), "training weighs object pixels"
        train.main(common + ["--steps", "170", "--layout-share", "0.5", "--object-share", "0.5"])
        assert len(losses(run)) == 170 and np.all(np.isfinite(losses(run)[160:, 1])), "training gives objects a share of the loss"
        check_start_from(directory, common)
        check_grown_depth(directory)
        check_data_workers(directory)
        train.main(common + ["--steps", "180", "--layout-share", "0.5", "--data-workers", "2"])
        assert list(losses(run)[170:, 0]) == list(range(171, 181)) and np.all(np.isfinite(losses(run)[170:, 1])), \
            "data workers feed the training"
        check_spanning_world(directory)
        world_with_edges(os.path.join(directory, "world.json"), directory, "span")
        os.replace(os.path.join(directory, "span-world.json"), os.path.join(directory, "world.json"))
        train.main(common + ["--steps", "190", "--layout-share", "0.5", "--one-window-share", "0.5", "--longest-video", "3"])
        assert len(losses(run)) == 190 and np.all(np.isfinite(losses(run)[180:, 1])), "training in a spanning world runs"
        progress_check.main(["--package", directory, "--run", run, "--scenes", "1", "--clips", "1"])
        check_package_weights(directory, run)
        set_config(directory, frame_stride=True)
        check_keyframes(directory)
        check_one_device(directory)
        check_recipe()
        train.main(common + ["--steps", "200", "--layout-share", "0.5", "--one-window-share", "0.25", "--longest-video", "3",
                             "--keyframe-share", "0.5"])
        assert len(losses(run)) == 200 and np.all(np.isfinite(losses(run)[190:, 1])), "the checkpoint resumed with keyframes"
        train.main(common + ["--steps", "205", "--layout-share", "0.5", "--one-window-share", "0.25", "--longest-video", "3",
                             "--keyframe-share", "0.5", "--keyframe-object-weight", "4"])
        assert len(losses(run)) == 205 and np.all(np.isfinite(losses(run)[200:, 1])), "training weighs keyframe objects"
        strided = read_safetensors(os.path.join(directory, "model.safetensors"))["stride_embed.weight"]
        assert np.abs(strided).max() > 0, "the frame-stride path starts at zero and learns"
    print("train-test passed")


if __name__ == "__main__":
    main()
