"""Captioned clips drawn from a model package's world.json: one or two shapes of a colour and
size, moving, bouncing, growing or shrinking on a plain background. Deterministic by seed."""
import json
import math
import os

import numpy as np


class World:
    def __init__(self, path):
        with open(path) as f:
            self.spec = json.load(f)
        s = self.spec
        self.canvas, self.frames = s["canvas"], s["frames"]
        self.colors, self.backgrounds = s["colors"], s["backgrounds"]
        self.shapes, self.sizes, self.motions = s["shapes"], s["sizes"], s["motions"]
        self.heldout = set(s.get("heldout", []))
        # "wrap": an object leaving one edge comes back at the opposite one, so a render many
        # windows long can keep moving one way. "span": objects stay on the canvas and a
        # travelling one crosses it over the whole video, so every window of a long video finds
        # it where the video's progress puts it. The default ("stop") keeps objects on the
        # canvas and counts travel from each window's start.
        self.edges = s.get("edges", "stop")
        self.wrap, self.span = self.edges == "wrap", self.edges == "span"
        # Pixel centres (y, x) of the canvas, made once: every object of every frame is drawn on them.
        self.grid = np.mgrid[0:self.canvas, 0:self.canvas].astype(np.float32) + 0.5
        # How often each motion and size is drawn, relative to the others (a trainer's choice, not
        # the world's: see favour()); empty, every one is drawn as often as the next.
        self.weights = {}

    def favour(self, name, weight):
        """Draw the motion or size `name` `weight` times as often as one left at 1, so a run can
        spend its steps on what the model gets wrong. Raises ValueError naming what is wrong."""
        if name not in self.motions and name not in self.sizes:
            raise ValueError("'%s' is neither a motion nor a size of this world; give one of: %s"
                             % (name, ", ".join(sorted(self.motions) + sorted(self.sizes))))
        if not weight >= 0:
            raise ValueError("the weight of '%s' is %g; give 0 or more" % (name, weight))
        self.weights[name] = weight
        for kind in (self.motions, self.sizes):
            if name in kind and not any(self.weights.get(n, 1) > 0 for n in kind):
                raise ValueError("every %s now has the weight 0; leave at least one above 0"
                                 % ("motion" if kind is self.motions else "size"))

    def draw_name(self, rng, names):
        """One of `names` (sorted), each as often as its weight says; with no weights given, the
        very draw an unweighted world makes, so existing seeds keep their clips."""
        names = sorted(names)
        if not any(n in self.weights for n in names):
            return str(rng.choice(names))
        weights = np.array([self.weights.get(n, 1.0) for n in names])
        return str(rng.choice(names, p=weights / weights.sum()))

    def sample_scene(self, rng, max_objects=2, video_frames=None):
        """A training scene: never one whose caption is held out for evaluation."""
        while True:
            scene = self.draw_scene(rng, max_objects, video_frames)
            if self.caption(scene) not in self.heldout:
                return scene

    def draw_scene(self, rng, max_objects=2, video_frames=None):
        """A scene: background and objects (each shape, colour, size, motion, start), for a
        video `video_frames` long (None: one window)."""
        count = 1 if max_objects == 1 or rng.random() < 0.6 else 2
        colors = rng.choice(sorted(self.colors), size=count, replace=False)
        objects = []
        for i in range(count):
            size = self.draw_name(rng, self.sizes)
            motion = self.draw_name(rng, self.motions)
            objects.append({"shape": str(rng.choice(self.shapes)), "color": str(colors[i]), "size": size,
                            "motion": motion, "start": self.start_position(rng, size, motion, video_frames)})
        return {"background": str(rng.choice(sorted(self.backgrounds))), "objects": objects}

    def start_position(self, rng, size, motion, video_frames=None):
        """A start that keeps the whole object on the canvas for the whole clip (in a spanning
        world, for the whole video `video_frames` long: its place at the video's first frame); in
        a wrapping world, an object that travels starts anywhere."""
        if self.wrap and "direction" in self.motions[motion]:
            return [float(rng.uniform(0, self.canvas)) for _ in range(2)]
        radius = self.sizes[size] * max(self.motions[motion].get("scale", [1, 1]))
        travel = self.span_travel(size, video_frames) if self.span else self.spec["speed"] * (self.frames - 1)
        direction = self.motions[motion].get("direction", [0, 0])
        lo = [radius + 1 + (travel if d < 0 else 0) for d in direction]
        hi = [self.canvas - radius - 1 - (travel if d > 0 else 0) for d in direction]
        if "bounce" in self.motions[motion]:
            lo[1] += self.motions[motion]["bounce"]
        return [float(rng.uniform(lo[k], max(lo[k], hi[k]))) for k in range(2)]

    def prior_mean(self, scene, rng, clips):
        """The mean of `clips` renders of the scene's caption, each object's start drawn afresh:
        what a clip of that caption looks like before any of it is seen. With no scene (a dropped
        caption), the mean of `clips` scenes drawn afresh."""
        total = np.zeros((self.frames, 3, self.canvas, self.canvas), np.float32)
        for _ in range(clips):
            if scene is None:
                total += self.render(self.sample_scene(rng))
                continue
            objects = [dict(o, start=self.start_position(rng, o["size"], o["motion"], scene.get("video_frames")))
                       for o in scene["objects"]]
            total += self.render(dict(scene, objects=objects))
        return total / clips

    def span_travel(self, size, video_frames=None):
        """Pixels a travelling object of `size` moves along each axis it travels over a video
        `video_frames` long in a spanning world: as far as the world's speed takes it, up to the
        whole canvas less the object, so a long video crosses the canvas once, more slowly."""
        across = self.canvas - 2 * (self.sizes[size] + 1)
        return min(self.spec["speed"] * (self.video_length(video_frames) - 1), across)

    def video_length(self, video_frames=None):
        """Frames of a video told `video_frames` long (None: one window); never under a window."""
        return max(video_frames or self.frames, self.frames)

    def phase_period(self):
        """Frames after which every travelling object of a wrapping world is back where it
        started: the canvas over the speed along an axis (diagonals move `speed` along each)."""
        return self.canvas / self.spec["speed"]

    def canonical_scene(self, scene, first_frame, video_frames=None):
        """The scene with its objects laid where a window starting at `first_frame` of a long
        video finds them on their canonical path: travelling objects pass the canvas centre in
        the middle of the video's first window, so that window already starts each way in its
        own place, and the others stay at the centre. Windows of one long video agree on it
        wherever they start, which a fresh draw of the start cannot."""
        objects = []
        middle = (self.frames - 1) / 2
        for obj in scene["objects"]:
            dx, dy = self.velocity(obj["motion"])
            start = [self.canvas / 2 + dx * (first_frame - middle), self.canvas / 2 + dy * (first_frame - middle)]
            if self.wrap:
                start = [v % self.canvas for v in start]
            objects.append(dict(obj, start=start))
        placed = dict(scene, objects=objects, first_frame=first_frame)
        if video_frames:
            placed["video_frames"] = video_frames
        return placed

    def velocity(self, motion):
        """Pixels per frame (x, y) of a motion; (0, 0) for one that does not travel."""
        direction = self.motions[motion].get("direction", [0, 0])
        norm = math.hypot(*direction) or 1
        step = self.spec["speed"] / norm * (math.sqrt(2) if norm > 1 else 1)
        return direction[0] * step, direction[1] * step

    def caption(self, scene):
        g = self.spec["grammar"]
        parts = [g["object"].format(**{k: o[k] for k in ("size", "color", "shape", "motion")}) for o in scene["objects"]]
        return g["clip"].format(objects=g["join"].join(parts), background=scene["background"])

    def object_state(self, obj, frame, first_frame=0, video_frames=None):
        """Centre (x, y) and radius of an object at a frame of a window that starts at
        `first_frame` of a video `video_frames` long. A bounce keeps time with the video, so that
        the windows of a long render bounce as one (its period, half a window, divides a phase
        model's period); travel counts from the window's start, where `start` places the object.
        Growth runs over the whole video when its length is told (None: over each window), by
        the motion's scale from its first frame to its last. In a spanning world `start` is the
        place at the video's first frame and travel runs over the whole video (span_travel)."""
        motion = self.motions[obj["motion"]]
        x, y = obj["start"]
        radius = self.sizes[obj["size"]]
        dx, dy = self.velocity(obj["motion"])
        travelled = frame
        if self.span:
            slower = self.span_travel(obj["size"], video_frames) / (self.spec["speed"] * (self.video_length(video_frames) - 1))
            dx, dy, travelled = dx * slower, dy * slower, first_frame + frame
        x, y = x + dx * travelled, y + dy * travelled
        if "bounce" in motion:
            y -= motion["bounce"] * abs(math.sin(math.pi * (first_frame + frame) / (self.frames / 2)))
        if "scale" in motion:
            a, b = motion["scale"]
            start, length = (first_frame, self.video_length(video_frames)) if video_frames else (0, self.frames)
            # Geometric: every stretch of the video grows by the same factor, so each window of a
            # long video grows as visibly as the others (reel eval scores every window-long part).
            radius *= a * (b / a) ** ((start + frame) / (length - 1))
        return x, y, radius

    def coverage(self, shape, x, y, radius):
        """Anti-aliased coverage in [0, 1] of a shape over the canvas grid."""
        yy, xx = self.grid
        dx, dy = xx - x, yy - y
        if shape == "circle":
            distance = np.hypot(dx, dy) - radius
        elif shape == "square":
            distance = np.maximum(abs(dx), abs(dy)) - radius * 0.85
        elif shape == "diamond":
            distance = (abs(dx) + abs(dy)) / math.sqrt(2) - radius * 0.8
        else:  # triangle pointing up
            distance = np.maximum(np.maximum(dy - radius * 0.7, -dy * 0.5 + abs(dx) * 0.866 - radius * 0.5), -radius)
        return np.clip(0.5 - distance, 0, 1)

    def object_coverage(self, obj, frame, first_frame=0, video_frames=None):
        """The object's coverage at a frame; in a wrapping world, with its copies one canvas
        away wherever it crosses an edge."""
        x, y, radius = self.object_state(obj, frame, first_frame, video_frames)
        if not self.wrap:
            return self.coverage(obj["shape"], x, y, radius)
        x, y = x % self.canvas, y % self.canvas
        reach = radius * 1.25 + 1  # a square's corner lies 1.2 radii out

        def copies(v):
            """Offsets of the copies of a centre at `v` that reach into the canvas."""
            return [0] + [-self.canvas] * (v + reach > self.canvas) + [self.canvas] * (v - reach < 0)
        return np.max([self.coverage(obj["shape"], x + dx, y + dy, radius) for dx in copies(x) for dy in copies(y)], axis=0)

    def render(self, scene):
        """Frames [F, 3, H, W] in [-1, 1] of a window starting at the scene's `first_frame` of
        a video `video_frames` long (0 and one window when it has none), its frames `stride`
        video frames apart (1 when it has none; keyframes when more)."""
        first_frame, video_frames = scene.get("first_frame", 0), scene.get("video_frames")
        stride = scene.get("stride", 1)
        clip = np.empty((self.frames, self.canvas, self.canvas, 3), np.float32)
        clip[:] = np.array(self.backgrounds[scene["background"]], np.float32)
        colors = [np.array(self.colors[obj["color"]], np.float32) for obj in scene["objects"]]
        for f in range(self.frames):
            frame = clip[f]
            for obj, color in zip(scene["objects"], colors):
                cover = self.object_coverage(obj, f * stride, first_frame, video_frames)[..., None]
                frame = frame * (1 - cover) + color * cover
            clip[f] = frame
        return model_values(clip).transpose(0, 3, 1, 2)


class Vocabulary:
    def __init__(self, path):
        with open(path) as f:
            self.words = [w.strip() for w in f if w.strip()]
        self.ids = {w: i for i, w in enumerate(self.words)}

    def tokenize(self, text):
        return [0] + [self.ids[w] for w in text.lower().split()]


def model_values(rgb):
    """RGB bytes (0-255; an array ending in 3 channels, or one colour) as the model's values in [-1, 1]."""
    return np.asarray(rgb, np.float32) / 127.5 - 1


def open_package(directory):
    """A model package's config (config.json), world (world.json) and vocabulary."""
    with open(os.path.join(directory, "config.json")) as f:
        cfg = json.load(f)
    world = World(os.path.join(directory, "world.json"))
    vocabulary = Vocabulary(os.path.join(directory, cfg.get("vocabulary", "vocab.txt")))
    return cfg, world, vocabulary


def batch(world, vocabulary, rng, size, caption_dropout=0.0, one_object=0, first_frames=None, video_frames=None,
          strides=None):
    """Clips [B, F, 3, H, W], padded token ids [B, L], their mask [B, L], and each clip's scene as
    its caption tells it (None where the caption was dropped). The first `one_object` clips hold
    one object each and always keep their caption. `first_frames` [B], where each clip's window
    starts in its video, sets the time a bounce keeps (none: every window starts the video);
    `video_frames` [B], each video's length, the span growth runs over (none: one window);
    `strides` [B], how many video frames apart each window's frames lie (none: 1)."""
    clips, token_lists, told = [], [], []
    for i in range(size):
        single = i < one_object
        length = None if video_frames is None else int(video_frames[i])
        scene = world.sample_scene(rng, max_objects=1 if single else 2, video_frames=length)
        if first_frames is not None:
            scene["first_frame"] = int(first_frames[i])
        if length is not None:
            scene["video_frames"] = length
        if strides is not None and strides[i] != 1:
            scene["stride"] = float(strides[i])
        clips.append(world.render(scene))
        dropped = not single and rng.random() < caption_dropout
        token_lists.append([0] if dropped else vocabulary.tokenize(world.caption(scene)))
        told.append(None if dropped else scene)
    tokens, mask = pad_tokens(token_lists)
    return np.stack(clips), tokens, mask, told


def pad_tokens(token_lists):
    """Token id lists as padded ids [B, L] and a mask [B, L], True for real tokens."""
    length = max(len(t) for t in token_lists)
    tokens = np.zeros((len(token_lists), length), np.int64)
    mask = np.zeros((len(token_lists), length), bool)
    for i, t in enumerate(token_lists):
        tokens[i, :len(t)] = t
        mask[i, :len(t)] = True
    return tokens, mask
