"""Depth distribution head and depth-aware position embedding; switches off = the shipped behaviour."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from test_model import FRONT, frame_inputs
from training_fixtures import TINY_MODEL, K

from syncl_ros.experiment.checkpoint import load_across_switches, load_model
from syncl_ros.geometry import project
from syncl_ros.model.backbone import STRIDE
from syncl_ros.model.config import ModelConfig
from syncl_ros.model.depth_position import expected_depth
from syncl_ros.model.inputs import camera_geometry
from syncl_ros.model.network import TrackerNet
from syncl_ros.pipeline.bench import rig_img2lidar

GOLDEN = Path(__file__).parent / "data" / "shipped_decode_001fc39.npz"
# the release the golden file was recorded with, kept among the finished runs' weights
PREVIOUS_RELEASE = Path(__file__).parents[1] / "checkpoints" / "t5_plain_s1" / "weights.pt"
DEPTH_PE = replace(TINY_MODEL, depth_distribution=True, position_embedding="depth")


def _slots(cfg: ModelConfig, b: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    s = cfg.num_slots
    return torch.zeros(b, s, cfg.embed_dim), torch.full((b, s, 3), 0.5), torch.zeros(b, s)


def test_the_previous_release_decodes_as_before_the_switches() -> None:
    """Outputs recorded with the code of commit 001fc39 (before the depth switches) for the weights
    shipped then (their sha256 is in the file) and the same inputs."""
    net, exp, _ = load_model(PREVIOUS_RELEASE)  # strict: no key was added to a model with the switches off
    cfg = exp.model
    assert cfg.position_embedding == "frustum" and not cfg.depth_distribution
    rng = np.random.default_rng(0)  # drawn in the order the golden file's script drew them
    images = rng.standard_normal((1, 6, 3, cfg.input.height, cfg.input.width), dtype=np.float32)
    s, c = cfg.num_slots, cfg.embed_dim
    emb = rng.standard_normal((1, s, c), dtype=np.float32)
    refs = rng.uniform(0.3, 0.7, (1, s, 3)).astype(np.float32)
    mask = np.zeros((1, s), np.float32)
    mask[0, :3] = 1.0
    golden = np.load(GOLDEN)
    # one thread, which reproduces the golden values here: two threads split the reductions
    # differently and, on a core with AMX, moved two near-zero box codes by 2.3e-5
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            feats = net.encode(torch.from_numpy(images))
            i2l = torch.from_numpy(rig_img2lidar(cfg)[None])
            slots = (torch.from_numpy(emb), torch.from_numpy(refs), torch.from_numpy(mask))
            out = net.decode(feats, i2l, *slots)
            dense = net.dense(feats)
    finally:
        torch.set_num_threads(threads)
    assert dense.depth_logits is None
    # float32 rounding differs by CPU (SIMD width, summation order): a few ulps of each value, as
    # on box centres of 34 m that differ by 1.5e-5 on one machine; any change of the model is far larger
    for name, got in (("logits", out.logits[-1]), ("codes", out.codes[-1]), ("depth", dense.depth)):
        np.testing.assert_allclose(got.numpy(), golden[name], rtol=1e-5, atol=1e-5, err_msg=name)


def test_the_depth_head_alone_changes_no_decoded_output() -> None:
    torch.manual_seed(0)
    plain = TrackerNet(TINY_MODEL).eval()
    with_head = TrackerNet(replace(TINY_MODEL, depth_distribution=True)).eval()
    changed = load_across_switches(with_head, plain.state_dict())
    assert {k.split(".")[0] for k in changed["fresh"]} == {"depth_dist_head"} and changed["dropped"] == []
    images, i2l = frame_inputs(TINY_MODEL)
    with torch.no_grad():
        a = plain(images, i2l, *_slots(TINY_MODEL))
        b = with_head(images, i2l, *_slots(TINY_MODEL))
        logits = with_head.dense(with_head.encode(images)).depth_logits
    assert torch.equal(a.logits, b.logits) and torch.equal(a.codes, b.codes)
    assert logits is not None and logits.shape == (1, 6, TINY_MODEL.depth_bins, 4, 10)


def test_weights_fit_across_switches_and_nothing_else() -> None:
    frustum = TrackerNet(TINY_MODEL).state_dict()
    depth_net = TrackerNet(DEPTH_PE)
    changed = load_across_switches(depth_net, frustum)
    assert {k.split(".")[0] for k in changed["fresh"]} == {"depth_dist_head", "depth_position"}
    assert {k.split(".")[0] for k in changed["dropped"]} == {"position"}
    broken = {k: v for k, v in frustum.items() if not k.startswith("cls_heads.0.")}
    with pytest.raises(ValueError, match=r"cls_heads\.0"):
        load_across_switches(depth_net, broken)
    with pytest.raises(ValueError, match="dense_heads"):
        replace(DEPTH_PE, dense_heads=False)


def test_expected_depth_is_the_mean_over_the_bins() -> None:
    depths = torch.tensor([2.0, 5.0, 10.0])
    logits = torch.full((1, 1, 3, 1, 2), -1e4)
    logits[0, 0, 1, 0, 0] = 0.0  # all mass on 5 m
    logits[0, 0, :, 0, 1] = 0.0  # uniform
    np.testing.assert_allclose(expected_depth(logits, depths)[0, 0, 0, 0].numpy(), [5.0, 17.0 / 3], rtol=1e-6)


def test_depth_embedding_points_lie_at_the_predicted_depth_on_each_cells_ray() -> None:
    net = TrackerNet(DEPTH_PE).eval()
    _, i2l = frame_inputs(DEPTH_PE)
    h, w = DEPTH_PE.input.height // STRIDE, DEPTH_PE.input.width // STRIDE
    depth = torch.rand(1, 6, 1, h, w) * 40 + 2
    xyz = net.depth_position.points(i2l, depth)  # (1, 6, h, w, 3)
    l2i = np.linalg.inv(i2l[0].numpy().astype(np.float64))
    for cam in (0, 3):
        uv, d = project(l2i[cam], xyz[0, cam].reshape(-1, 3).numpy())
        np.testing.assert_allclose(d, depth[0, cam, 0].reshape(-1).numpy(), rtol=1e-4)
        v, u = np.meshgrid((np.arange(h) + 0.5) * STRIDE, (np.arange(w) + 0.5) * STRIDE, indexing="ij")
        np.testing.assert_allclose(uv, np.stack([u.ravel(), v.ravel()], 1), atol=1e-2)


def test_the_depth_embedding_follows_the_predicted_depth() -> None:
    torch.manual_seed(0)
    net = TrackerNet(DEPTH_PE).eval()
    images, i2l = frame_inputs(DEPTH_PE)
    with torch.no_grad():
        feats = net.encode(images)
        dense = net.dense(feats)
        assert dense.depth_logits is not None
        _, pos = net.memory(feats, i2l, dense)
        near_logits = dense.depth_logits.clone()
        near_logits[:, 0] = -1e4  # camera 0: every cell at the first bin (1 m)
        near_logits[:, 0, 0] = 0.0
        near = replace(dense, depth_logits=near_logits)
        _, pos_near = net.memory(feats, i2l, near)
        out = net.decode(feats, i2l, *_slots(DEPTH_PE), dense=dense)
        out_near = net.decode(feats, i2l, *_slots(DEPTH_PE), dense=near)
    cells = pos.shape[1] // 6
    assert not torch.allclose(pos[:, :cells], pos_near[:, :cells], atol=1e-4)  # camera 0 moved
    assert torch.equal(pos[:, cells:], pos_near[:, cells:])  # the other cameras did not
    # and the decoder sees it (at random initialization attention is near uniform: a small change)
    assert (out.embeddings - out_near.embeddings).abs().max() > 1e-6
    # Without a distribution the embedding reads the center depth head instead.
    head_only = TrackerNet(replace(DEPTH_PE, depth_distribution=False)).eval()
    with torch.no_grad():
        d = head_only.dense(head_only.encode(images))
        assert torch.equal(head_only.pixel_depth(d), d.depth)


def test_depth_embedding_geometry_with_input_resize() -> None:
    """The embedding's cell rays use network-input pixels: a point projected by lidar2img lands there."""
    cfg = DEPTH_PE
    l2i, i2l = camera_geometry([K], [FRONT], [(1600, 900)], cfg.input)
    net = TrackerNet(cfg)
    depth = torch.full((1, 1, 1, 4, 10), 12.0)
    xyz = net.depth_position.points(torch.from_numpy(i2l)[None], depth)[0, 0]
    uv, d = project(l2i[0], xyz.reshape(-1, 3).numpy())
    assert np.allclose(d, 12.0, atol=1e-3) and uv[:, 0].min() == pytest.approx(8.0, abs=1e-2)
