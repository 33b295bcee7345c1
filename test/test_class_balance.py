"""Class-balanced clip sampling (train.class_balance): the weights, the stream, the trainer's use."""

import itertools
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from syncl_ros.cli import main
from syncl_ros.data.frames import NuScenesFrames
from syncl_ros.experiment import load_experiment
from syncl_ros.training.class_balance import balanced_weights, class_draw_shares
from syncl_ros.training.data import ClipDataset
from syncl_ros.training.order import clip_sampler

CAR, BUS = 0, 3


def test_every_class_gets_the_same_share_of_draws() -> None:
    # eight clips of cars only, one with a car and a bus, one with a bus only, one empty
    clips = [{CAR}] * 8 + [{CAR, BUS}, {BUS}, set()]
    w = balanced_weights(clips)
    # cars are in 9 clips, buses in 2; each class draws half of the time, spread over its clips
    expected = [0.5 / 9] * 8 + [0.5 / 9 + 0.5 / 2, 0.5 / 2, 0.0]
    np.testing.assert_allclose(w, expected, rtol=1e-12)
    shares = class_draw_shares(clips, w)
    assert shares[BUS] == pytest.approx(0.5 + 0.5 / 9)  # the bus clips, from 2 of 11 under uniform draws
    assert class_draw_shares(clips, np.full(len(clips), 1 / len(clips)))[BUS] == pytest.approx(2 / 11)


def test_no_object_in_any_clip_is_an_error() -> None:
    with pytest.raises(ValueError, match="none has any"):
        balanced_weights([set(), set()])


def test_weighted_stream_draws_in_proportion_and_resumes_where_it_stopped() -> None:
    weights = balanced_weights([{CAR}] * 8 + [{CAR, BUS}, {BUS}, set()])
    data = range(len(weights))

    def draws(seed: int, done_steps: int, n: int) -> list[int]:
        return list(itertools.islice(clip_sampler(data, seed, 0, done_steps, 2, weights=weights), n))

    stream = draws(3, 0, 20_000)
    counts = Counter(stream)
    assert counts[10] == 0  # the empty clip is never drawn
    np.testing.assert_allclose([counts[i] / len(stream) for i in range(10)], weights[:10], atol=0.01)
    assert draws(3, 0, 50) == stream[:50]  # seeded
    assert draws(4, 0, 50) != stream[:50]
    assert draws(3, 1234, 100) == stream[2468:2568]  # step 1234 of batch 2 continues the stream
    with pytest.raises(ValueError, match="one process"):
        clip_sampler(data, 3, 0, 0, 2, world=2, rank=0, weights=weights)
    with pytest.raises(ValueError, match="clip weights"):
        clip_sampler(range(5), 3, 0, 0, 2, weights=weights)


def test_clip_classes_are_the_classes_each_training_clip_keeps(synth_val_root: Path) -> None:
    exp = load_experiment("tiny")
    frames = NuScenesFrames(synth_val_root, "v1.0-trainval", "val")
    data = ClipDataset(frames, exp.model, exp.train.clip_length)
    classes = data.clip_classes()
    assert len(classes) == len(data) and any(classes)
    for i in (0, len(data) - 1):
        assert classes[i] == {int(label) for frame in data[i] for label in frame.labels}


def test_training_draws_its_clips_class_balanced(synth_val_root: Path, tmp_path: Path) -> None:
    common = ["--config", "tiny", "--dataroot", str(synth_val_root), "--split", "val", "--no-progress"]
    steps = ["--max-steps", "4", "--set", "train.log_every=1"]
    balanced, uniform = tmp_path / "balanced", tmp_path / "uniform"
    assert main(["train", *common, "--out", str(balanced), *steps, "--set", "train.class_balance=true"]) == 0
    assert main(["train", *common, "--out", str(uniform), *steps]) == 0

    def trained(run: Path) -> list[int]:
        log = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        return [clip for record in log for clip in record["clips"]]

    exp = load_experiment("tiny")
    frames = NuScenesFrames(synth_val_root, "v1.0-trainval", "val")
    data = ClipDataset(frames, exp.model, exp.train.clip_length)
    weights = balanced_weights(data.clip_classes())
    expected = list(itertools.islice(clip_sampler(data, exp.train.seed, 0, 0, 1, weights=weights), 4))
    assert trained(balanced) == expected
    assert trained(uniform) != expected  # the switch changes the order
