"""Image augmentation moves what each camera shows and its geometry together: a 3D point still
projects onto the image content that showed it, the lidar depth of a feature cell moves with it,
the draws stay within the settings, and training runs with it (but not on cached features)."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from numpy.typing import NDArray
from training_fixtures import tiny_clip, tiny_experiment

from syncl_ros.experiment.train_config import AugConfig
from syncl_ros.model.backbone import STRIDE
from syncl_ros.training.clip_pass import ClipPass, TrainingModel
from syncl_ros.training.image_aug import ImageAug, augment_images, draw_images

AUGS = [
    ImageAug(),
    ImageAug(flip=True),
    ImageAug(zoom=1.2, shift=(0.05, -0.03)),
    ImageAug(zoom=0.9, shift=(-0.1, 0.04), flip=True),
]
POINT = np.array([10.0, 2.0, 0.8, 1.0])  # the test clip's car, ahead of the front camera


def pixel(lidar2img: torch.Tensor) -> NDArray[np.float64]:
    uvd: NDArray[np.float64] = lidar2img.double().numpy() @ POINT
    uv: NDArray[np.float64] = uvd[:2] / uvd[2]
    return uv


@pytest.mark.parametrize("aug", AUGS, ids=str)
def test_a_point_still_projects_onto_what_showed_it(aug: ImageAug) -> None:
    sample = tiny_clip()[0]
    assert sample.images is not None
    _, _, h, w = sample.images.shape
    u, v = pixel(sample.lidar2img[0])
    assert 0 <= u < w and 0 <= v < h
    images = torch.zeros_like(sample.images)
    images[0, :, int(v) - 1 : int(v) + 2, int(u) - 1 : int(u) + 2] = 1.0  # a bright spot on the point
    hf, wf = h // STRIDE, w // STRIDE
    depth = torch.zeros(6, hf, wf)
    depth[0, int(v) // STRIDE, int(u) // STRIDE] = 12.5
    others = [ImageAug()] * 5
    moved = augment_images(replace(sample, images=images, depth=depth), [aug, *others])
    assert moved.images is not None and moved.depth is not None
    u2, v2 = pixel(moved.lidar2img[0])
    np.testing.assert_allclose([u2, v2], (aug.matrix(w, h) @ [u, v, 1.0])[:2], atol=1e-3)
    # the spot's centroid (pixel centers at i + 0.5) is where P puts the spot's center
    spot = moved.images[0, 0].double().numpy()
    rows, cols = np.mgrid[0:h, 0:w] + 0.5
    centroid = [(spot * cols).sum() / spot.sum(), (spot * rows).sum() / spot.sum()]
    center = aug.matrix(w, h) @ [int(u) + 0.5, int(v) + 0.5, 1.0]
    np.testing.assert_allclose(centroid, center[:2], atol=0.1)
    # the depth moved with its cell (to a cell's precision: cells are resampled whole)
    cells = np.argwhere(moved.depth[0].numpy() > 0)
    target = np.array([v2 // STRIDE, u2 // STRIDE])
    assert len(cells) and np.abs(cells - target).max() <= 1, (cells, target)
    assert moved.depth[0].max() == pytest.approx(12.5)  # moved, not blended
    torch.testing.assert_close(moved.images[1:], images[1:])  # the other cameras untouched
    identity = (moved.lidar2img.double() @ moved.img2lidar.double()).numpy()
    np.testing.assert_allclose(identity, np.broadcast_to(np.eye(4), identity.shape), atol=1e-4)


def test_draws_stay_within_the_settings_one_per_camera() -> None:
    cfg = AugConfig(image_zoom=0.1, image_shift=0.05, image_flip=True)
    gen = torch.Generator().manual_seed(0)
    draws = [a for _ in range(40) for a in draw_images(cfg, 6, gen)]
    assert len(draws) == 240 and len(set(draws)) == 240
    assert all(abs(a.zoom - 1) <= 0.1 and max(map(abs, a.shift)) <= 0.05 for a in draws)
    assert 80 < sum(a.flip for a in draws) < 160
    assert all(a == ImageAug() for a in draw_images(AugConfig(), 6, gen))


def test_training_runs_with_it_and_refuses_cached_features() -> None:
    exp = tiny_experiment()
    aug = AugConfig(image_zoom=0.1, image_shift=0.05, image_flip=True)
    torch.manual_seed(0)
    module = TrainingModel(replace(exp, train=replace(exp.train, aug=aug)))
    out = ClipPass(module, torch.Generator().manual_seed(0)).run(tiny_clip())
    assert torch.isfinite(out["loss"]) and out["loss"] > 0
    with pytest.raises(ValueError, match="cached features"):
        TrainingModel(replace(exp, train=replace(exp.train, aug=aug, freeze_encoder=True)))
