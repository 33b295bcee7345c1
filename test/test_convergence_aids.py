"""Convergence aids: dense heatmap/depth targets, Co-DETR-style one-to-many dense boxes,
queries seeded from dense predictions, and query denoising."""

import numpy as np
import torch
from training_fixtures import TINY_MODEL, tiny_clip, tiny_experiment

from syncl_ros.experiment.train_config import AidsConfig
from syncl_ros.model.backbone import STRIDE
from syncl_ros.model.box_coder import BoxCoder
from syncl_ros.model.decoder import MASKED
from syncl_ros.model.network import DenseOutput, TrackerNet
from syncl_ros.training.clip_pass import TrainingModel
from syncl_ros.training.coaux import aux_targets
from syncl_ros.training.data import FrameSample
from syncl_ros.training.denoising import make_denoising
from syncl_ros.training.dense import dense_targets

CAR_AHEAD = torch.tensor([[20.0, 0.0, 0.8, 4.5, 1.9, 1.6, 0.0, 0.0, 0.0]])
FARTHER = torch.tensor([[35.0, 0.0, 0.8, 4.5, 1.9, 1.6, 0.0, 0.0, 0.0]])


def projected_cell(sample: FrameSample, box: torch.Tensor) -> tuple[float, float, float]:
    p = sample.lidar2img[0].double() @ torch.tensor([*box[:3].tolist(), 1.0], dtype=torch.float64)
    return float(p[0] / p[2] / STRIDE), float(p[1] / p[2] / STRIDE), float(p[2])


def test_heatmap_peaks_at_the_projected_center_and_depth_is_the_center_depth() -> None:
    sample = tiny_clip()[0]
    h, w = TINY_MODEL.input.height // STRIDE, TINY_MODEL.input.width // STRIDE
    heat, depth, mask = dense_targets(CAR_AHEAD, torch.tensor([0]), sample.lidar2img, h, w, 10)
    u, v, d = projected_cell(sample, CAR_AHEAD[0])
    assert heat[0, 0, int(v), int(u)] == 1.0 and heat[0, 0].sum() > 1.0  # Gaussian around a peak of 1
    assert heat[0, 1:].sum() == 0 and heat[3].sum() == 0  # other classes, and the back camera, stay empty
    assert mask[0].sum() == 1 and abs(float(depth[0, int(v), int(u)]) - d) < 1e-4
    # a nearer object in the same cell owns the depth target
    both = torch.cat([FARTHER, CAR_AHEAD])
    _, depth2, _ = dense_targets(both, torch.tensor([0, 0]), sample.lidar2img, h, w, 10)
    assert abs(float(depth2[0, int(v), int(u)]) - d) < 1e-4


def test_coaux_targets_are_one_to_many_and_decode_to_the_center() -> None:
    sample = tiny_clip()[0]
    h, w = TINY_MODEL.input.height // STRIDE, TINY_MODEL.input.width // STRIDE
    labels, codes = aux_targets(CAR_AHEAD, torch.tensor([0]), sample.lidar2img, h, w, 10)
    positive = labels[0] == 0
    assert positive.sum() >= 4 and (labels[1:] == 10).all()
    u, v, d = projected_cell(sample, CAR_AHEAD[0])
    ii, jj = positive.nonzero(as_tuple=True)
    assert torch.allclose(
        jj + 0.5 + codes[0, ii, jj, 0], torch.full_like(jj, u, dtype=torch.float), atol=1e-4
    )
    assert torch.allclose(
        ii + 0.5 + codes[0, ii, jj, 1], torch.full_like(ii, v, dtype=torch.float), atol=1e-4
    )
    assert torch.allclose(codes[0, ii, jj, 2].exp(), torch.full_like(codes[0, ii, jj, 2], d), rtol=1e-4)


def test_dense_queries_start_at_the_lifted_heatmap_peak() -> None:
    net = TrackerNet(TINY_MODEL).eval()
    sample = tiny_clip()[0]
    u, v, d = projected_cell(sample, CAR_AHEAD[0])
    h, w = TINY_MODEL.input.height // STRIDE, TINY_MODEL.input.width // STRIDE
    heat = torch.full((1, 6, 10, h, w), -10.0)
    heat[0, 0, 0, int(v), int(u)] = 5.0
    depth = torch.full((1, 6, 1, h, w), 10.0)
    depth[0, 0, 0, int(v), int(u)] = d
    net.dense = lambda feats: DenseOutput(heat, depth)  # type: ignore[method-assign]
    feats = torch.randn(1, 6, TINY_MODEL.embed_dim, h, w)
    _, refs = net._dense_queries(feats, sample.img2lidar[None])
    xyz = BoxCoder(TINY_MODEL.pc_range).denormalize(refs[0, 0]).double()
    # the query sits on the peak cell's center ray, at the predicted depth
    p = sample.lidar2img[0].double() @ torch.cat([xyz, torch.ones(1, dtype=torch.float64)])
    assert abs(float(p[2]) - d) < 1e-3
    assert abs(float(p[0] / p[2]) - (int(u) + 0.5) * STRIDE) < 1e-2
    assert abs(float(p[1] / p[2]) - (int(v) + 0.5) * STRIDE) < 1e-2


def test_denoising_queries_are_hidden_from_matching_queries_and_each_other() -> None:
    boxes = torch.cat([CAR_AHEAD, FARTHER])
    gen = torch.Generator().manual_seed(0)
    dn = make_denoising(boxes, torch.tensor([0, 1]), torch.nn.Embedding(10, 8), BoxCoder(), 5, 3, 0.4, gen)
    assert dn is not None and dn.content.shape == (1, 6, 8) and dn.bias.shape == (1, 11, 11)
    bias = dn.bias[0]
    assert (bias[:5, 5:] == MASKED).all()  # matching rows never see noised answers
    assert (bias[5:, :5] == 0).all()  # denoising rows may look at the matching queries
    for g in range(3):
        rows = slice(5 + 2 * g, 7 + 2 * g)
        assert (bias[rows, rows] == 0).all()
        others = [c for c in range(5, 11) if not 5 + 2 * g <= c < 7 + 2 * g]
        assert (bias[rows][:, others] == MASKED).all()
    centers = BoxCoder().denormalize(dn.refs[0])
    offsets = (centers - boxes.repeat(3, 1)[:, :3]).abs()
    assert (offsets <= 0.4 * boxes.repeat(3, 1)[:, 3:6] / 2 + 1e-4).all() and offsets.sum() > 0
    assert torch.equal(dn.labels, torch.tensor([0, 1] * 3))


def test_coaux_switch_adds_its_loss_and_trains_its_head() -> None:
    torch.manual_seed(0)
    module = TrainingModel(tiny_experiment(aids=AidsConfig(coaux=True)))
    out = module(tiny_clip(), torch.Generator().manual_seed(0))
    assert "coaux" in out and torch.isfinite(out["coaux"])
    out["coaux"].backward()
    head = module.train_only["aux_box_head"]
    assert all(p.grad is not None for p in head.parameters())
    assert np.isfinite(float(out["loss"].detach()))
