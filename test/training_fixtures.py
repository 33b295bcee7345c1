"""A tiny in-memory experiment and clip for training tests (no dataset needed)."""

import numpy as np
import torch

from syncl_ros.experiment import Experiment
from syncl_ros.experiment.train_config import AidsConfig, SynCLConfig, TrainConfig
from syncl_ros.geometry import Transform, optical_to_body
from syncl_ros.model.config import InputConfig, ModelConfig
from syncl_ros.model.inputs import camera_geometry
from syncl_ros.training.data import FrameSample

TINY_MODEL = ModelConfig(
    embed_dim=32,
    num_heads=2,
    ffn_dim=64,
    num_layers=2,
    num_queries=30,
    num_slots=8,
    depth_bins=8,
    dense_queries=10,
    input=InputConfig(height=64, width=160),
)
K = np.array([[1266.0, 0.0, 816.0], [0.0, 1266.0, 491.0], [0.0, 0.0, 1.0]])


def tiny_experiment(
    syncl: SynCLConfig | None = None, aids: AidsConfig | None = None, model: ModelConfig = TINY_MODEL
) -> Experiment:
    train = TrainConfig(syncl=syncl or SynCLConfig(), aids=aids or AidsConfig(denoising=True), track_drop=0.0)
    return Experiment("tiny-test", model=model, train=train)


def tiny_clip(seed: int = 0) -> list[FrameSample]:
    """Three frames, 0.5 s apart, ego driving 2.5 m per frame; a car ahead and a pedestrian that leaves."""
    rng = torch.Generator().manual_seed(seed)
    cams = [
        Transform(optical_to_body(np.deg2rad(a)), np.array([1.0, 0.0, 1.5]))
        for a in (0, -55, 55, 180, 110, -110)
    ]
    l2i, i2l = camera_geometry([K] * 6, cams, [(1600, 900)] * 6, TINY_MODEL.input)
    car = [10.0, 2.0, 0.8, 4.5, 1.9, 1.6, 0.0, 5.0, 0.0]
    ped = [15.0, -3.0, 0.9, 0.7, 0.6, 1.8, 1.0, 0.0, 1.0]
    frames = []
    for t in range(3):
        boxes, labels, inst = ([car, ped], [0, 8], [0, 1]) if t < 2 else ([car], [0], [0])
        frames.append(
            FrameSample(
                images=torch.randn(6, 3, 64, 160, generator=rng),
                lidar2img=torch.from_numpy(l2i),
                img2lidar=torch.from_numpy(i2l),
                boxes=torch.tensor(boxes),
                labels=torch.tensor(labels),
                instances=torch.tensor(inst),
                timestamp_ns=t * 500_000_000,
                model_to_world=torch.from_numpy(Transform.from_xy_yaw(2.5 * t, 0.0, 0.0).matrix()),
            )
        )
    return frames
