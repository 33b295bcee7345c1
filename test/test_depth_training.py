"""The lidar depth loss: bins, its switch, and that it teaches depth to a smoke model."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from training_fixtures import TINY_MODEL, tiny_clip, tiny_experiment

from syncl_ros.data.frames import NuScenesFrames
from syncl_ros.experiment import Experiment
from syncl_ros.experiment.train_config import AidsConfig, TrainConfig
from syncl_ros.model.position import lid_depths
from syncl_ros.training.clip_pass import COUNTS, METRICS, TrainingModel
from syncl_ros.training.data import ClipDataset
from syncl_ros.training.depth_loss import bin_targets, depth_distribution_loss

DEPTH_MODEL = replace(TINY_MODEL, depth_distribution=True, position_embedding="depth")


def test_depths_go_to_the_nearest_bin_and_far_or_empty_cells_are_ignored() -> None:
    bins = torch.tensor([1.0, 3.0, 7.0, 15.0])
    depth = torch.tensor([0.0, 1.5, 2.1, 4.9, 5.1, 14.0, 19.0, 21.0])
    index, valid = bin_targets(depth, bins, far=20.0)
    assert index[valid].tolist() == [0, 1, 1, 2, 3, 3]
    assert valid.tolist() == [False, True, True, True, True, True, True, False]


def test_the_loss_is_small_only_for_the_right_bin() -> None:
    bins = lid_depths(8, 1.0, 60.0)
    depth = torch.full((1, 1, 2, 2), float(bins[5]))
    depth[0, 0, 0, 0] = 0.0  # no lidar: whatever the logits say there costs nothing
    right = torch.full((1, 1, 8, 2, 2), -20.0)
    right[:, :, 5] = 20.0
    right[0, 0, :, 0, 0] = torch.randn(8) * 50
    wrong = torch.roll(right, 1, dims=2)
    assert depth_distribution_loss(right, depth, bins, 60.0) < 1e-6
    assert depth_distribution_loss(wrong, depth, bins, 60.0) > 10.0


def test_the_depth_loss_is_off_by_default_and_needs_the_distribution() -> None:
    clip = tiny_clip()
    out = TrainingModel(tiny_experiment())(clip[:1], torch.Generator().manual_seed(0))
    assert "depth" not in out and "depth_err_m" not in out  # default: today's losses, no lidar read
    with pytest.raises(ValueError, match="depth_distribution"):
        TrainingModel(tiny_experiment(aids=AidsConfig(depth_weight=1.0)))


def _depth_experiment(weight: float, freeze: bool = False) -> Experiment:
    exp = tiny_experiment(aids=AidsConfig(depth_weight=weight), model=DEPTH_MODEL)
    return replace(exp, train=replace(exp.train, clip_length=1, freeze_encoder=freeze))


def test_the_depth_loss_joins_the_sum_and_its_error_does_not() -> None:
    sample = tiny_clip()[0]
    sample.depth = torch.zeros(6, 4, 10)
    sample.depth[0, 2:, :] = 12.0
    torch.manual_seed(0)
    module = TrainingModel(_depth_experiment(2.0))
    out = module([sample], torch.Generator().manual_seed(0))
    assert out["depth"] > 0 and out["depth_err_m"] > 0 and not out["depth_err_m"].requires_grad
    summed = sum(v for k, v in out.items() if k not in ("loss", *COUNTS, *METRICS))
    assert torch.allclose(out["loss"], summed)
    frozen = TrainingModel(_depth_experiment(2.0, freeze=True))([sample], torch.Generator().manual_seed(0))
    assert "depth" not in frozen  # the tracking stage does not train the encoder


@pytest.mark.slow
def test_depth_supervision_teaches_a_smoke_model_depth(synth_val_root: Path) -> None:
    """30 steps on two synthetic key frames: the per-cell depth error falls, with the loss."""
    frames = NuScenesFrames(synth_val_root, "v1.0-trainval", split="val")
    data = ClipDataset(frames, DEPTH_MODEL, 1, depth_targets=True)
    clips = [data[0], data[6]]
    torch.manual_seed(0)
    exp = _depth_experiment(1.0)
    exp = replace(exp, train=replace(exp.train, aids=replace(exp.train.aids, denoising=False)))
    assert isinstance(exp.train, TrainConfig)
    module = TrainingModel(exp).train()
    opt = torch.optim.AdamW(module.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    errors, losses = [], []
    for step in range(30):
        out = module(clips[step % 2], gen)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        errors.append(float(out["depth_err_m"]))
        losses.append(float(out["depth"].detach()))
    first, last = sum(errors[:4]) / 4, sum(errors[-4:]) / 4
    print(f"depth error {first:.2f} -> {last:.2f} m; loss {losses[0]:.2f} -> {losses[-1]:.2f}")
    assert last < 0.6 * first, errors
    assert sum(losses[-4:]) < 0.7 * sum(losses[:4]), losses
