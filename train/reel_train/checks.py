"""What the probes of a run's checkpoint (phase_check.py, progress_check.py) share: their
command line and the model they load."""
import argparse
import os

import torch

from .data import open_package
from .model import Reel


def arguments(doc, scenes, argv=None):
    """--package, --run, --raw, --scenes (default `scenes`) and --seed, with `doc` as the help."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--package", required=True)
    p.add_argument("--run", required=True, help="directory holding checkpoint.pt")
    p.add_argument("--raw", action="store_true", help="the raw weights instead of their EMA")
    p.add_argument("--scenes", type=int, default=scenes)
    p.add_argument("--seed", type=int, default=5)
    return p


def load_run(args):
    """The package's config, world and vocabulary, the run's model (raw or EMA weights, in
    evaluation mode) and the step of its checkpoint."""
    cfg, world, vocabulary = open_package(args.package)
    state = torch.load(os.path.join(args.run, "checkpoint.pt"), map_location="cpu")
    model = Reel(cfg, len(vocabulary.words))
    model.load_state_dict(state["model" if args.raw else "ema"])
    model.eval()
    return cfg, world, vocabulary, model, state["step"]
