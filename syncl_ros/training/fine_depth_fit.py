"""`syncl fit-depth`: give a trained model the fine center-depth head and fit it alone.

The head (model/fine_depth.py) reads the backbone's stride-8 and stride-16
levels, which a trained backbone already computes: it starts as the model's
stride-16 depth head (zeros on the stride-8 channels) and is fitted on the
object centers of a training split, everything else frozen. Both levels of
every selected frame are encoded once and kept in memory (float16), so the fit
costs one encoder pass per frame plus a few minutes of head steps on a CPU.
The decoder is not retrained: its seeds move to the better depths.

    syncl fit-depth syncl_ros/weights/tiny_synth.pt runs/fine/fine.pt --dataroot data/synth_train240
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from syncl_ros.data.frames import NuScenesFrames
from syncl_ros.data.tables import require_tables
from syncl_ros.experiment import Experiment, with_overrides
from syncl_ros.experiment.checkpoint import read_checkpoint, save_checkpoint
from syncl_ros.model.network import TrackerNet, center_depth_head
from syncl_ros.pipeline.dataset_inputs import frame_geometry, frame_images
from syncl_ros.training.data import kept_ground_truth
from syncl_ros.training.dense import center_depth_loss, dense_targets

RANGE_BINS_M = (0.0, 10.0, 20.0, 35.0, math.inf)  # as eval/range_errors.py


@dataclass
class Levels:
    """Both backbone levels of some frames and their center-depth targets."""

    f8: torch.Tensor  # (F, N, C8, 2h, 2w) float16
    f16: torch.Tensor  # (F, N, C, h, w) float16
    depth: torch.Tensor  # (F, N, h, w) metres at the center cells
    mask: torch.Tensor  # (F, N, h, w) bool


def fine_model(payload: dict[str, Any]) -> tuple[TrackerNet, Experiment]:
    """The checkpoint's network with the fine head in place of its stride-16 depth head."""
    exp = Experiment.from_dict(payload["experiment"], where="checkpoint")
    if not exp.model.dense_heads:
        raise ValueError("the model has no dense heads: nothing seeds from a center depth")
    state = dict(payload["model"])
    if exp.model.fine_center_depth:
        net = TrackerNet(exp.model)
        net.load_state_dict(state)
        return net, exp
    exp = with_overrides(exp, ["model.fine_center_depth=true"])
    net = TrackerNet(exp.model)
    result = net.load_state_dict(state, strict=False)
    unexpected = [k for k in result.unexpected_keys if not k.startswith("depth_head.")]
    missing = [k for k in result.missing_keys if not k.startswith("fine_depth_head.")]
    if unexpected or missing:
        raise ValueError(f"weights do not fit: {', '.join(unexpected + missing)}")
    coarse = center_depth_head(exp.model.embed_dim)
    coarse.load_state_dict(
        {k.removeprefix("depth_head."): v for k, v in state.items() if k.startswith("depth_head.")}
    )
    net.fine_depth_head.init_from(coarse)
    return net, exp


@torch.no_grad()
def encode_levels(net: TrackerNet, frames: NuScenesFrames, every: int, progress: bool) -> Levels:
    """Both levels and the targets of every `every`-th frame (the ground truth the training keeps)."""
    net.eval()
    cfg = net.cfg
    f8s, f16s, depths, masks = [], [], [], []
    for i in tqdm(range(0, len(frames), every), desc="encode", unit="frame", disable=not progress):
        frame = frames[i]
        f8, f16 = net.backbone.levels(frame_images(frame, cfg))
        keep = kept_ground_truth(frame, cfg.pc_range)
        lidar2img, _ = frame_geometry(frame, cfg)
        _, depth, mask = dense_targets(
            torch.from_numpy(frame.boxes[keep]).float(),
            torch.from_numpy(frame.labels[keep]),
            torch.from_numpy(lidar2img),
            f16.shape[-2],
            f16.shape[-1],
            cfg.num_classes,
        )
        f8s.append(f8.half())
        f16s.append(f16.half())
        depths.append(depth)
        masks.append(mask)
    return Levels(torch.stack(f8s), torch.stack(f16s), torch.stack(depths), torch.stack(masks))


def predict(net: TrackerNet, f16: torch.Tensor, f8: torch.Tensor) -> torch.Tensor:
    """Center depths (F, N, h, w) in metres of a batch of frames' levels."""
    raw = net.fine_depth_head(f16.float().flatten(0, 1), f8.float().flatten(0, 1))
    depth = F.softplus(raw) + net.cfg.depth_range[0]
    return depth.reshape(*f16.shape[:2], *depth.shape[-2:])


@torch.no_grad()
def errors_by_range(net: TrackerNet, levels: Levels, batch: int = 32) -> list[tuple[int, float, float]]:
    """(centers, median |error|, median signed error) per camera-depth bin of RANGE_BINS_M."""
    net.eval()
    truth, err = [], []
    for i in range(0, len(levels.f16), batch):
        pred = predict(net, levels.f16[i : i + batch], levels.f8[i : i + batch])
        mask, depth = levels.mask[i : i + batch], levels.depth[i : i + batch]
        truth.append(depth[mask])
        err.append(pred[mask] - depth[mask])
    d, e = torch.cat(truth).numpy(), torch.cat(err).numpy()
    rows = []
    for lo, hi in itertools.pairwise(RANGE_BINS_M):
        sel = (d >= lo) & (d < hi)
        med = (float(np.median(np.abs(e[sel]))), float(np.median(e[sel]))) if sel.any() else (math.nan,) * 2
        rows.append((int(sel.sum()), *med))
    return rows


def fit(net: TrackerNet, levels: Levels, steps: int, batch: int, lr: float, seed: int) -> list[float]:
    """AdamW on the fine head alone, cosine schedule; the mean loss of each 100 steps (and of the rest)."""
    head = net.fine_depth_head.train()
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=0.01)
    gen = torch.Generator().manual_seed(seed)
    losses, window = [], []
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * step / steps))
        idx = torch.randint(0, len(levels.f16), (batch,), generator=gen)
        mask = levels.mask[idx]
        if not mask.any():
            continue
        loss = center_depth_loss(predict(net, levels.f16[idx], levels.f8[idx]), levels.depth[idx], mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
        window.append(float(loss.detach()))
        if len(window) == 100:
            losses.append(sum(window) / len(window))
            window = []
    if window:  # the last, shorter stretch (all of a run under 100 steps)
        losses.append(sum(window) / len(window))
    head.eval()
    return losses


def print_errors(title: str, rows: list[tuple[int, float, float]]) -> None:
    print(f"{title}\n| camera depth | centers | median error | median signed |\n|---|---:|---:|---:|")
    for (lo, hi), (n, med, signed) in zip(itertools.pairwise(RANGE_BINS_M), rows, strict=True):
        label = f"≥ {lo:g} m" if math.isinf(hi) else f"{lo:g}–{hi:g} m"
        print(f"| {label} | {n} | {med:.2f} m | {signed:+.2f} m |", flush=True)


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", type=Path, help="a trained model (release or training checkpoint)")
    p.add_argument("out", type=Path, help="the model with the fitted fine center-depth head")
    p.add_argument("--dataroot", type=Path, required=True, help="nuScenes-format training data")
    p.add_argument("--version", default="v1.0-trainval")
    p.add_argument("--split", default="train")
    p.add_argument("--every", type=int, default=4, help="use every N-th key frame (default: 4)")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch", type=int, default=16, help="frames per step (default: 16)")
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--dev", type=Path, default=None, help="report center-depth errors on this dataset's val split"
    )
    p.add_argument("--no-progress", action="store_true")


def main(args: argparse.Namespace) -> int:
    if args.every < 1 or args.steps < 1 or args.batch < 1:
        print("syncl fit-depth: --every, --steps and --batch must be at least 1", file=sys.stderr)
        return 2
    try:
        require_tables(args.dataroot, args.version)
        payload = read_checkpoint(args.checkpoint)
        net, exp = fine_model(payload)
    except (FileNotFoundError, ValueError) as err:
        print(f"syncl fit-depth: {err}", file=sys.stderr)
        return 2
    torch.manual_seed(args.seed)
    start = time.monotonic()
    train = encode_levels(
        net, NuScenesFrames(args.dataroot, args.version, split=args.split), args.every, not args.no_progress
    )
    if not train.mask.any():
        print(f"syncl fit-depth: no object center in the selected frames of {args.dataroot}", file=sys.stderr)
        return 2
    dev = None
    if args.dev is not None:
        dev = encode_levels(net, NuScenesFrames(args.dev, args.version, split="val"), 1, not args.no_progress)
        print_errors("before:", errors_by_range(net, dev))
    encoded_s = time.monotonic() - start
    losses = fit(net, train, args.steps, args.batch, args.lr, args.seed)
    print(
        f"encoded {len(train.f16)} frames in {encoded_s:.0f} s; {args.steps} steps in "
        f"{time.monotonic() - start - encoded_s:.0f} s; loss {losses[0]:.4f} -> {losses[-1]:.4f}"
    )
    if dev is not None:
        print_errors("after:", errors_by_range(net, dev))
    metadata = {
        **payload["metadata"],
        "fine_depth_fit": {
            "from": args.checkpoint.name,
            "data": f"{args.dataroot.name} {args.split}, one key frame in {args.every}",
            "frames": len(train.f16),
            "steps": args.steps,
            "batch": args.batch,
            "lr": args.lr,
            "seed": args.seed,
            "loss_first_last": [losses[0], losses[-1]],
        },
    }
    save_checkpoint(args.out, net, exp, metadata)
    print(f"wrote {args.out}")
    return 0
