"""What the probes and samplers of a model (sample.py, caption_check.py, chain_probe.py,
phase_check.py, progress_check.py) share: their weight arguments and the model they load,
from a run's checkpoint or, without --run, from a package's exported weights."""
import argparse
import os
import sys

import torch

from .data import open_package
from .files import read_safetensors
from .model import Reel


def add_weight_arguments(p):
    """--package, --run and --raw: which model a probe looks at."""
    p.add_argument("--package", required=True, help="model package directory; its model.safetensors is used without --run")
    p.add_argument("--run", help="a training run's directory: its checkpoint.pt instead of the package's weights")
    p.add_argument("--raw", action="store_true", help="the run's raw weights instead of their EMA (needs --run)")
    return p


def arguments(doc, scenes, argv=None):
    """The weight arguments, --scenes (default `scenes`) and --seed, with `doc` as the help."""
    p = add_weight_arguments(argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter))
    p.add_argument("--scenes", type=int, default=scenes)
    p.add_argument("--seed", type=int, default=5)
    return p


def load_model(args):
    """The package's config, world and vocabulary, the model (in evaluation mode) and the step
    its weights were trained to: a run's checkpoint (EMA, or raw with --raw) when --run is
    given, else the EMA weights the package holds. Exits with one line naming what is wrong."""
    name = os.path.basename(sys.argv[0]) or "probe"
    cfg, world, vocabulary = open_package(args.package)
    model = Reel(cfg, len(vocabulary.words))
    if args.run:
        path = os.path.join(args.run, "checkpoint.pt")
        if not os.path.exists(path):
            sys.exit("%s: %s does not exist; give --run a training run's directory, or leave it out to use %s's weights"
                     % (name, path, args.package))
        state = torch.load(path, map_location="cpu")
        weights, step = state["model" if args.raw else "ema"], state["step"]
    else:
        if args.raw:
            sys.exit("%s: --raw needs --run: a package holds only the EMA weights" % name)
        path = os.path.join(args.package, "model.safetensors")
        if not os.path.exists(path):
            sys.exit("%s: %s does not exist; give a package a run exported to, or --run" % (name, path))
        tensors, metadata = read_safetensors(path, with_metadata=True)
        weights, step = {key: torch.from_numpy(value) for key, value in tensors.items()}, int(metadata.get("reel.steps", 0))
    result = model.load_state_dict(weights, strict=False)
    if result.missing_keys or result.unexpected_keys:
        sys.exit("%s: %s does not fit %s/config.json (%d tensors missing, %d unexpected); give the package the run "
                 "trained for" % (name, path, args.package, len(result.missing_keys), len(result.unexpected_keys)))
    model.eval()
    return cfg, world, vocabulary, model, step
