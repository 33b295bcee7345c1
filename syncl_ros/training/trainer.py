"""The training loop: AdamW + warmup/cosine schedule, gradient clipping, atomic
checkpoints with resume, a JSONL metrics log, and DistributedDataParallel when
started by torchrun (gloo on CPU, NCCL on GPUs).

A run killed at any moment and started again with --resume continues from its
last checkpoint exactly as if it had not stopped: same clips in the same order
(training/order.py), same random draws (RNG states in the checkpoint; the
loader's own seed does not draw on the global RNG), each step logged once
(training/metrics_log.py), and the snapshot of a step written before the
checkpoint of that step.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from numpy.typing import NDArray
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from syncl_ros.atomic import remove_stale_partials
from syncl_ros.classes import DETECTION_CLASSES
from syncl_ros.data.frames import NuScenesFrames
from syncl_ros.experiment import Experiment
from syncl_ros.experiment.checkpoint import load_across_switches, read_checkpoint, save_checkpoint
from syncl_ros.experiment.train_config import TrainConfig
from syncl_ros.inference.backend import default_cache_dir
from syncl_ros.model.network import TrackerNet
from syncl_ros.pipeline.feature_cache import FeatureCache
from syncl_ros.training.bev_aug import gt_range
from syncl_ros.training.class_balance import balanced_weights, class_draw_shares
from syncl_ros.training.clip_pass import TrainingModel
from syncl_ros.training.data import ClipDataset, Indexed, collate_indexed
from syncl_ros.training.metrics_log import open_metrics_log
from syncl_ros.training.order import clip_sampler, position

LAST = "last.pt"


@dataclass(frozen=True)
class RunSpec:
    dataroot: Path
    version: str
    split: str
    out: Path
    max_steps: int | None = None
    resume: bool = False
    device: str | None = None
    progress: bool = True
    init: Path | None = None  # start from these weights (fresh optimizer and schedule)
    feature_cache: Path | None = None  # encoder feature cache root (train.freeze_encoder); None: default

    def cache_root(self) -> Path:
        return self.feature_cache or default_cache_dir() / "features"


def _distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def _device(spec: RunSpec, rank: int) -> torch.device:
    if spec.device:
        return torch.device(spec.device)
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", rank))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device("cpu")


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warmup, then cosine decay to 1% of the base rate."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * progress))


def frozen_encoder(net: TrackerNet) -> list[torch.nn.Module]:
    """The modules `train.freeze_encoder` freezes: the backbone and the dense heads it feeds."""
    names = ("backbone", "heatmap_head", "depth_head", "fine_depth_head", "depth_dist_head")
    return [getattr(net, n) for n in names if hasattr(net, n)]


def frozen_modules(net: TrackerNet, train: TrainConfig) -> list[torch.nn.Module]:
    """What a run keeps fixed: the whole encoder (`freeze_encoder`) or its first stages."""
    if train.freeze_encoder:
        return frozen_encoder(net)
    stages = net.backbone.stages()
    if train.frozen_stages > len(stages):
        raise ValueError(f"train.frozen_stages={train.frozen_stages}: the backbone has {len(stages)} stages")
    return stages[: train.frozen_stages]


def _optimizer(module: TrainingModel, exp: Experiment) -> torch.optim.Optimizer:
    # Frozen parameters stay out; both groups always exist, so group indices match across runs.
    params = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    backbone = [p for n, p in params if n.startswith("net.backbone.")]
    rest = [p for n, p in params if not n.startswith("net.backbone.")]
    t = exp.train
    groups = [{"params": backbone, "lr": t.lr * t.backbone_lr_scale}, {"params": rest, "lr": t.lr}]
    # The fused kernel updates all tensors in one pass (the default on CPU is a per-tensor loop).
    return torch.optim.AdamW(groups, lr=t.lr, weight_decay=t.weight_decay, fused=True)


def use_bf16(requested: bool, device: torch.device) -> bool:
    """bfloat16 autocast where the hardware computes it natively.

    A CPU without AVX512-BF16 or AMX emulates it: measured several times slower than float32
    on an AVX2-only CPU, so training falls back to float32 there and says so.
    """
    if not requested or device.type != "cpu" or torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return requested
    print("syncl train: this CPU has no native bfloat16 (AVX512-BF16/AMX): training in float32", flush=True)
    return False


class Trainer:
    def __init__(self, exp: Experiment, spec: RunSpec) -> None:
        self.exp, self.spec = exp, spec
        self.rank, self.world = _distributed()
        self.device = _device(spec, self.rank)
        torch.manual_seed(exp.train.seed + self.rank)
        self.module = TrainingModel(exp).to(self.device)
        # Frozen before the optimizer is built: requires_grad does not depend on weights loaded later.
        self.frozen = frozen_modules(self.module.net, exp.train)
        for frozen in self.frozen:
            frozen.requires_grad_(False)
        self.cache: FeatureCache | None = None
        self.optimizer = _optimizer(self.module, exp)
        self.total = spec.max_steps or exp.train.max_steps
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, exp.train.warmup_steps, self.total)
        )
        self.step = 0
        self.bf16 = use_bf16(exp.train.bf16, self.device)
        self.generator = torch.Generator().manual_seed(exp.train.seed * 1000 + self.rank)
        self.seconds = 0.0
        self.skipped = 0  # updates skipped because the loss or gradient was not finite
        self.init_from: dict[str, Any] | None = None
        if spec.resume and (spec.out / LAST).is_file():
            self._resume(spec.out / LAST)
        elif spec.init is not None:
            self._initialize(spec.init)
        self.model = (
            DistributedDataParallel(self.module, find_unused_parameters=True)
            if self.world > 1
            else self.module
        )

    # -- checkpoints --------------------------------------------------------------------

    def _metadata(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "max_steps": self.total,
            "train_seconds": round(self.seconds, 1),
            "skipped_steps": self.skipped,
            "init_from": self.init_from,
            "dataroot": str(self.spec.dataroot),
            "version": self.spec.version,
            "split": self.spec.split,
            "world_size": self.world,
            "device": str(self.device),
            "torch": str(torch.__version__),  # TorchVersion would not load with weights_only
        }

    def save(self, name: str) -> Path:
        extra = {
            "train_only": {k: v.cpu() for k, v in self.module.train_only.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": {"torch": torch.get_rng_state(), "generator": self.generator.get_state()},
        }
        return save_checkpoint(self.spec.out / name, self.module.net, self.exp, self._metadata(), extra)

    def _initialize(self, path: Path) -> None:
        """Weights (and train-only layers, when present) of another run; step count starts at 0.

        The earlier training is recorded in the metadata, so that costs add up.
        """
        payload = read_checkpoint(path)
        # A detector trained without a switched module (depth distribution, depth-aware embedding)
        # can start a run with it: those layers begin fresh.
        changed = load_across_switches(self.module.net, payload["model"])
        for kind, keys in changed.items():
            if keys and self.rank == 0:
                modules = sorted({k.split(".")[0] for k in keys})
                print(f"syncl train: --init: {kind} {', '.join(modules)}", flush=True)
        if "train_only" in payload:
            self.module.train_only.load_state_dict(payload["train_only"])
        meta = payload["metadata"]
        self.init_from = {
            "checkpoint": str(path),
            "step": meta.get("step"),
            "train_seconds": meta.get("train_seconds"),
            "init_from": meta.get("init_from"),
        }

    def _resume(self, path: Path) -> None:
        payload = read_checkpoint(path)
        self.module.net.load_state_dict(payload["model"])
        self.module.train_only.load_state_dict(payload["train_only"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        torch.set_rng_state(payload["rng"]["torch"])
        self.generator.set_state(payload["rng"]["generator"])
        self.step = int(payload["metadata"]["step"])
        self.seconds = float(payload["metadata"].get("train_seconds", 0.0))
        self.skipped = int(payload["metadata"].get("skipped_steps", 0))
        self.init_from = payload["metadata"].get("init_from")

    # -- loop ------------------------------------------------------------------------------

    def _frames(self) -> NuScenesFrames:
        return NuScenesFrames(self.spec.dataroot, self.spec.version, split=self.spec.split)

    def _build_cache(self) -> FeatureCache:
        """The frozen encoder's features of the training frames, with the loaded weights."""
        cache = FeatureCache(self.spec.cache_root(), self.module.net, self._frames(), self.exp.model)
        if self.rank == 0:
            missing = len(cache.missing_scenes())
            cache.build(self.spec.progress)
            state = f"built {missing} of {len(cache.frames.scene_names)} scenes" if missing else "reused"
            print(f"syncl train: feature cache {cache.directory} ({state})", flush=True)
        while cache.missing_scenes():  # other ranks: a build can outlast a collective's timeout
            time.sleep(5.0)
        return cache

    def _clips(self) -> ClipDataset:
        frames = self.cache.frames if self.cache is not None else self._frames()
        t = self.exp.train
        depth = t.aids.depth_weight > 0 and not t.freeze_encoder  # lidar only where it is supervised
        kept = gt_range(self.exp.model.pc_range, t.aug)  # wider than the detection range when augmenting
        return ClipDataset(
            frames,
            self.exp.model,
            t.clip_length,
            cache=self.cache,
            depth_targets=depth,
            gt_range=kept,
            depth_objects_first=t.aids.depth_objects_first,
        )

    def _clip_weights(self, data: ClipDataset) -> NDArray[np.float64] | None:
        """Class-balanced drawing weights of the clips (None: train.class_balance is off), logged."""
        if not self.exp.train.class_balance:
            return None
        classes = data.clip_classes()
        weights = balanced_weights(classes)
        uniform = class_draw_shares(classes, np.full(len(classes), 1.0 / len(classes)))
        balanced = class_draw_shares(classes, weights)
        shares = [f"{DETECTION_CLASSES[c]} {uniform[c]:.2f} -> {balanced[c]:.2f}" for c in uniform]
        if self.rank == 0:
            what = "share of draws holding a class"
            print(f"syncl train: class-balanced clips ({what}: {', '.join(shares)})", flush=True)
        return weights

    def _loader(
        self, data: ClipDataset, epoch: int, done_steps: int, weights: NDArray[np.float64] | None
    ) -> DataLoader[Any]:
        """Batches of (clip indices, clips) of `epoch`, after the `done_steps` already trained."""
        t = self.exp.train
        sampler = clip_sampler(data, t.seed, epoch, done_steps, t.batch_size, self.world, self.rank, weights)
        return DataLoader(
            Indexed(data),
            batch_size=t.batch_size,
            sampler=sampler,
            collate_fn=collate_indexed,
            num_workers=t.workers,
            persistent_workers=t.workers > 0,
            # Its own generator: the workers' base seed would otherwise be drawn from the global
            # RNG, which a resumed run restores from the checkpoint first (one draw apart).
            generator=torch.Generator().manual_seed(t.seed),
        )

    def _train_step(self, batch: list[list[Any]]) -> dict[str, float]:
        self.model.train()
        for frozen in self.frozen:
            frozen.eval()  # BatchNorm keeps its running statistics (the cached features were made with them)
        self.optimizer.zero_grad(set_to_none=True)
        stats: dict[str, float] = {}
        for clip in batch:
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
                losses = self.model(clip, self.generator)
            (losses["loss"] / len(batch)).backward()
            for k, v in losses.items():
                stats[k] = stats.get(k, 0.0) + float(v.detach()) / len(batch)
        stats["grad_norm"] = float(
            torch.nn.utils.clip_grad_norm_(self.module.parameters(), self.exp.train.grad_clip)
        )
        if math.isfinite(stats["loss"]) and math.isfinite(stats["grad_norm"]):
            self.optimizer.step()
        else:
            # One non-finite step would poison every weight; skip it, count it, say so.
            self.skipped += 1
            self.optimizer.zero_grad(set_to_none=True)
            print(
                f"syncl train: step {self.step + 1}: non-finite loss or gradient, update skipped", flush=True
            )
        stats["skipped_steps"] = float(self.skipped)
        self.scheduler.step()
        self.step += 1
        return stats

    def run(self) -> Path:
        self.spec.out.mkdir(parents=True, exist_ok=True)
        log = None
        if self.rank == 0:
            remove_stale_partials(self.spec.out)  # checkpoints a kill interrupted while writing
            log = open_metrics_log(self.spec.out / "metrics.jsonl", self.step)
        bar = tqdm(
            total=self.total, initial=self.step, desc="train", disable=not self.spec.progress or self.rank
        )
        if self.exp.train.freeze_encoder and self.cache is None:
            self.cache = self._build_cache()
        try:
            data = self._clips()
            weights = self._clip_weights(data)
            epoch, done = position(self.step, len(data), self.exp.train.batch_size, self.world)
            while self.step < self.total:
                for clips, batch in self._loader(data, epoch, done, weights):
                    started = time.perf_counter()
                    stats = self._train_step(batch)
                    self.seconds += time.perf_counter() - started
                    bar.update(1)
                    bar.set_postfix(loss=f"{stats['loss']:.3f}")
                    self._after_step(stats, clips, log)
                    if self.step >= self.total:
                        break
                epoch, done = epoch + 1, 0
        finally:
            bar.close()
            if log:
                log.close()
        final = self.save(LAST) if self.rank == 0 else self.spec.out / LAST
        if self.world > 1:
            dist.barrier()
        return final

    def _after_step(self, stats: dict[str, float], clips: list[int], log: Any) -> None:
        """Log, snapshot, checkpoint: in this order, so that a checkpoint at step s implies the
        log record and the snapshot of step s (a resumed run does not repeat step s)."""
        t = self.exp.train
        if log and (self.step % t.log_every == 0 or self.step == 1 or self.step == self.total):
            record = {
                "step": self.step,
                "lr": self.scheduler.get_last_lr()[-1],
                "seconds": round(self.seconds, 2),
                "unix_time": round(time.time(), 1),  # wall clock, for cost statements
                **{k: round(v, 5) for k, v in stats.items()},
                "clips": clips,  # this process's clips (indices into the training set): the data order
            }
            log.write(json.dumps(record) + "\n")
            log.flush()
        if self.rank == 0 and t.snapshot_every and self.step % t.snapshot_every == 0:
            # Weights only (no optimizer state): the points of a learning curve.
            save_checkpoint(
                self.spec.out / f"step_{self.step:06d}.pt", self.module.net, self.exp, self._metadata()
            )
        if self.rank == 0 and self.step % t.checkpoint_every == 0:
            self.save(LAST)
