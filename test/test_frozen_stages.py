"""`train.frozen_stages`: detection training with the backbone's first stages fixed."""

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from training_fixtures import tiny_experiment

from syncl_ros.model.backbone import build_backbone
from syncl_ros.training.trainer import RunSpec, Trainer

VERSION, SPLIT = "v1.0-trainval", "val"


def test_frozen_stages_keep_weights_and_statistics_and_the_rest_trains(
    synth_val_root: Path, tmp_path: Path
) -> None:
    exp = tiny_experiment()
    train = replace(exp.train, clip_length=1, frozen_stages=2, workers=0, warmup_steps=0, lr=1e-3)
    spec = RunSpec(synth_val_root, VERSION, SPLIT, tmp_path / "run", 2, progress=False)
    trainer = Trainer(replace(exp, train=train), spec)
    backbone = trainer.module.net.backbone
    optimized = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    stages = backbone.stages()
    assert not any(id(p) in optimized for s in stages[:2] for p in s.parameters())
    assert all(id(p) in optimized for s in stages[2:] for p in s.parameters())
    before = [{k: v.clone() for k, v in s.state_dict().items()} for s in stages]
    trainer.run()

    for stage, saved in zip(stages[:2], before[:2], strict=True):
        for name, value in stage.state_dict().items():  # weights and BatchNorm statistics alike
            assert torch.equal(value, saved[name]), name
    for stage, saved in zip(stages[2:], before[2:], strict=True):
        assert any(not torch.equal(v, saved[k]) for k, v in stage.state_dict().items())


def test_more_frozen_stages_than_the_backbone_has_is_a_clear_error(
    synth_val_root: Path, tmp_path: Path
) -> None:
    exp = tiny_experiment()
    spec = RunSpec(synth_val_root, VERSION, SPLIT, tmp_path / "run", 1, progress=False)
    with pytest.raises(ValueError, match="frozen_stages=5: the backbone has 4 stages"):
        Trainer(replace(exp, train=replace(exp.train, clip_length=1, frozen_stages=5)), spec)


@pytest.mark.parametrize("kind", ["small", "resnet50"])
def test_the_stages_hold_every_layer_before_the_neck(kind: str) -> None:
    backbone = build_backbone(kind, 32)
    staged = {id(p) for s in backbone.stages() for p in s.parameters()}
    neck = ("lateral4.", "lateral5.", "smooth.")
    for name, p in backbone.named_parameters():
        assert (id(p) in staged) == (not name.startswith(neck)), name
