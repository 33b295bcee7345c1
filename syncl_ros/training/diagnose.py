"""Each loss term of a training clip, its gradient norm and how it aligns with the total.

    python -m syncl_ros.training.diagnose CKPT --dataroot data/synth_train --clips 4 \
        [--set train.syncl.contrastive=false ...]

When one term's gradient dwarfs the others and points where the total does, that term alone
steers training (and gradient clipping hides how much); this prints it per clip, with the
runtime tracker's counts (tracks, births, lost) beside the losses.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import torch

from syncl_ros.data.frames import NuScenesFrames
from syncl_ros.experiment import Experiment, with_overrides
from syncl_ros.experiment.checkpoint import read_checkpoint
from syncl_ros.training.clip_pass import COUNTS, METRICS, TrainingModel
from syncl_ros.training.data import ClipDataset


def load_module(path: Path, overrides: Sequence[str]) -> TrainingModel:
    payload = read_checkpoint(path)
    exp = with_overrides(Experiment.from_dict(payload["experiment"], where=str(path)), overrides)
    module = TrainingModel(exp)
    module.net.load_state_dict(payload["model"])
    if "train_only" in payload:
        module.train_only.load_state_dict(payload["train_only"])
    return module.train()


def term_gradients(module: TrainingModel, losses: dict[str, torch.Tensor]) -> dict[str, tuple[float, float]]:
    """(gradient norm, cosine with the total's gradient) of each loss term over the trained weights."""
    params = [p for p in module.parameters() if p.requires_grad]

    def flat(value: torch.Tensor) -> torch.Tensor:
        grads = torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)
        return torch.cat(
            [
                (g if g is not None else torch.zeros_like(p)).flatten()
                for g, p in zip(grads, params, strict=True)
            ]
        )

    total = flat(losses["loss"])
    out = {}
    for name, value in losses.items():
        if name in COUNTS or name in METRICS or name == "loss" or not value.requires_grad:
            continue
        g = flat(value)
        cosine = float(torch.nn.functional.cosine_similarity(g, total, dim=0))
        out[name] = (float(g.norm()), cosine)
    out["loss"] = (float(total.norm()), 1.0)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--dataroot", type=Path, required=True)
    p.add_argument("--version", default="v1.0-trainval")
    p.add_argument("--split", default="train")
    p.add_argument("--clips", type=int, default=4, help="clips to look at, evenly spread over the split")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args(argv)
    module = load_module(args.checkpoint, args.overrides)
    exp = module.experiment
    data = ClipDataset(
        NuScenesFrames(args.dataroot, args.version, split=args.split), exp.model, exp.train.clip_length
    )
    for i in range(args.clips):
        index = i * len(data) // args.clips
        losses = module(data[index], torch.Generator().manual_seed(i))
        counts = " ".join(f"{k} {float(losses[k]):.1f}" for k in COUNTS)
        print(f"clip {index}: {counts} (per frame)")
        for name, (norm, cosine) in term_gradients(module, losses).items():
            value = float(losses[name])
            print(f"  {name:12s} value {value:9.4f}  grad norm {norm:9.3f}  cos(total) {cosine:+.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
