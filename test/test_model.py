"""The tracker network: box coding, 3D position embedding, query handling, checkpoints."""

import pickle
from dataclasses import replace
from pathlib import Path
from typing import Literal

import numpy as np
import pytest
import torch
from training_fixtures import TINY_MODEL

from syncl_ros.geometry import Transform, optical_to_body, project
from syncl_ros.model.box_coder import BoxCoder
from syncl_ros.model.config import InputConfig, ModelConfig
from syncl_ros.model.inputs import Resize, camera_geometry, prepare_image
from syncl_ros.model.network import TrackerNet
from syncl_ros.model.position import PositionEmbedding3D, lid_depths

SMALL = TINY_MODEL  # a CPU-cheap configuration shared by the model and training tests


@pytest.fixture(autouse=True)
def _seeded() -> None:
    """Random weights drawn from a fixed seed: the nets here are built before any input is seeded,
    and under pytest-xdist the global generator's state depends on which tests ran before."""
    torch.manual_seed(0)


K = np.array([[1266.0, 0.0, 816.0], [0.0, 1266.0, 491.0], [0.0, 0.0, 1.0]])
FRONT = Transform(optical_to_body(0.0), np.array([1.7, 0.0, 1.5]))


def frame_inputs(cfg: ModelConfig, b: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    cams = [
        Transform(optical_to_body(np.deg2rad(a)), np.array([1.0, 0.0, 1.5]))
        for a in (0, -55, 55, 180, 110, -110)
    ]
    _, img2lidar = camera_geometry([K] * 6, cams, [(1600, 900)] * 6, cfg.input)
    images = torch.randn(b, 6, 3, cfg.input.height, cfg.input.width)
    return images, torch.from_numpy(img2lidar).expand(b, -1, -1, -1).contiguous()


def test_box_code_round_trip_and_reference_decoding() -> None:
    coder = BoxCoder()
    boxes = torch.tensor(
        [[10.0, -3.0, 0.8, 4.5, 1.9, 1.6, 2.5, 1.0, -0.5], [-40, 20, -1, 0.6, 0.7, 1.8, -3.0, 0, 0]]
    )
    assert torch.allclose(coder.to_boxes(coder.encode(boxes)), boxes, atol=1e-5)
    ref = coder.normalize(boxes[:, :3])
    code, new_ref = coder.decode(torch.zeros(2, 10), ref)
    assert torch.allclose(code[:, :3], boxes[:, :3], atol=1e-4) and torch.allclose(new_ref, ref, atol=1e-6)


def test_lid_depths_are_increasing_and_span_the_range() -> None:
    d = lid_depths(16, 1.0, 60.0)
    assert d[0] == pytest.approx(1.0) and torch.all(d[1:] > d[:-1]) and d[-1] < 60.0


def test_position_frustum_points_lie_on_camera_rays() -> None:
    cfg = InputConfig(height=128, width=352)
    lidar2img, img2lidar = camera_geometry([K], [FRONT], [(1600, 900)], cfg)
    pe = PositionEmbedding3D(16, 8, (1.0, 60.0), (-51.2, -51.2, -5.0, 51.2, 51.2, 3.0), 16)
    pts = pe.frustum(8, 22).reshape(-1, 4)
    xyz = (torch.from_numpy(img2lidar[0]) @ pts.T).T[:, :3].numpy()
    uv, depth = project(lidar2img[0], xyz)
    assert np.allclose(depth, pts[:, 2].numpy(), rtol=1e-4)
    assert np.allclose(uv, (pts[:, :2] / pts[:, 2:3]).numpy(), atol=1e-2)
    center = xyz[(pts[:, 2] > 9.9).numpy() & (pts[:, 2] < 60).numpy()]
    assert np.all(center[:, 0] > 1.7)  # the front camera looks forward


def test_input_geometry_matches_resize_of_full_image_projection() -> None:
    cfg = InputConfig(height=128, width=352)
    lidar2img, _ = camera_geometry([K], [FRONT], [(1600, 900)], cfg)
    point = np.array([[20.0, 2.0, 1.0]])
    uv_full, _ = project(np.vstack([np.hstack([K @ FRONT.inverse().matrix()[:3]]), [0, 0, 0, 1]]), point)
    resize = Resize.for_input(1600, 900, cfg)
    uv_input, _ = project(lidar2img[0], point)
    assert np.allclose(uv_input, uv_full * resize.scale - [0, resize.crop_top], atol=1e-6)
    img = prepare_image(np.zeros((225, 400, 3), np.uint8), 1600, 900, cfg)
    assert img.shape == (3, 128, 352) and img.dtype == np.float32


def test_decode_shapes_and_detection_count() -> None:
    net = TrackerNet(SMALL).eval()
    images, i2l = frame_inputs(SMALL)
    s, c = SMALL.num_slots, SMALL.embed_dim
    with torch.no_grad():
        out = net(
            images, i2l, torch.zeros(1, s, c), torch.full((1, s, 3), 0.5), torch.zeros(1, s, dtype=torch.bool)
        )
    m = SMALL.num_queries + SMALL.dense_queries + s
    assert out.num_det == SMALL.num_queries + SMALL.dense_queries
    assert out.logits.shape == (SMALL.num_layers, 1, m, 10) and out.codes.shape == (
        SMALL.num_layers,
        1,
        m,
        10,
    )
    assert out.embeddings.shape == (1, m, c) and torch.isfinite(out.codes).all()


def test_free_slots_do_not_influence_other_queries() -> None:
    net = TrackerNet(SMALL).eval()
    images, i2l = frame_inputs(SMALL)
    feats = net.encode(images)
    s, c = SMALL.num_slots, SMALL.embed_dim
    mask = torch.zeros(1, s, dtype=torch.bool)
    mask[0, :2] = True
    emb, ref = torch.randn(1, s, c), torch.rand(1, s, 3)
    with torch.no_grad():
        a = net.decode(feats, i2l, emb, ref, mask)
        emb2 = emb.clone()
        emb2[0, 2:] = torch.randn(s - 2, c) * 10
        b = net.decode(feats, i2l, emb2, ref, mask)
        live = a.num_det + 2
        assert torch.allclose(a.logits[:, :, :live], b.logits[:, :, :live], atol=1e-5)
        emb2[0, 0] += 5.0 * torch.randn(c)  # a live slot influences the detection queries (self-attention)
        c_out = net.decode(feats, i2l, emb2, ref, mask)
        assert not torch.allclose(a.logits[:, :, : a.num_det], c_out.logits[:, :, : a.num_det], atol=1e-5)
        # without self-attention (SynCL's C-decoder) detection queries ignore the tracks
        d1 = net.decode(feats, i2l, emb, ref, mask, self_attention=False)
        d2 = net.decode(feats, i2l, emb2, ref, mask, self_attention=False)
        assert torch.allclose(d1.logits[:, :, : a.num_det], d2.logits[:, :, : a.num_det], atol=1e-5)


def test_every_parameter_gets_a_gradient() -> None:
    net = TrackerNet(SMALL).train()
    images, i2l = frame_inputs(SMALL, b=2)
    feats = net.encode(images)
    s, c = SMALL.num_slots, SMALL.embed_dim
    out = net.decode(
        feats, i2l, torch.randn(2, s, c), torch.rand(2, s, 3), torch.ones(2, s, dtype=torch.bool)
    )
    dense = net.dense(feats)
    loss = (
        out.logits.mean()
        + out.codes.mean()
        + out.embeddings.mean()
        + dense.heatmap.mean()
        + dense.depth.mean()
    )
    loss.backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None]
    assert missing == [] or all(n.startswith("anchors") for n in missing), missing


def test_checkpoint_round_trip_and_refusals(tmp_path: Path) -> None:
    from syncl_ros.experiment import Experiment
    from syncl_ros.experiment.checkpoint import load_model, save_checkpoint

    net = TrackerNet(SMALL)
    exp = Experiment(name="small", model=SMALL)
    path = save_checkpoint(tmp_path / "m.pt", net, exp, {"step": 3, "note": "unit"})
    loaded, exp2, meta = load_model(path)
    assert meta == {"step": 3, "note": "unit"} and exp2 == exp and not loaded.training
    for k, v in net.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable"):
        load_model(tmp_path / "bad.pt")
    (tmp_path / "evil.pt").write_bytes(pickle.dumps(Transform.identity()))
    with pytest.raises(ValueError):
        load_model(tmp_path / "evil.pt")
    assert not list(tmp_path.glob("*.partial"))


def test_tracks_reanchor_to_the_nearest_heatmap_seed_within_the_gate() -> None:
    net = TrackerNet(replace(SMALL, track_reanchor_m=3.0)).eval()
    coder = net.coder
    seeds = coder.normalize(torch.tensor([[[10.0, 0.0, 0.0], [20.0, 5.0, 1.0], [-30.0, 0.0, 0.0]]]))
    tracks = coder.normalize(torch.tensor([[[11.0, 1.0, 0.5], [20.0, 7.5, 0.0], [0.0, 0.0, 0.0]]]))
    moved = coder.denormalize(net.reanchor(tracks, seeds)[0])[0]
    assert torch.allclose(moved[0], torch.tensor([10.0, 0.0, 0.0]), atol=1e-4)  # 1.4 m: takes the seed
    assert torch.allclose(moved[1], torch.tensor([20.0, 5.0, 1.0]), atol=1e-4)  # 2.5 m: inside the gate
    assert torch.allclose(moved[2], torch.tensor([0.0, 0.0, 0.0]), atol=1e-4)  # 10 m from any seed: stays
    off = TrackerNet(SMALL).eval()
    assert torch.equal(off.reanchor(tracks, seeds)[0], tracks)  # gate 0: the propagated point


def test_reanchored_track_rows_decode_from_the_seed() -> None:
    cfg = replace(SMALL, track_reanchor_m=3.0)
    net = TrackerNet(cfg).eval()
    images, i2l = frame_inputs(cfg)
    feats = net.encode(images)
    s, c = cfg.num_slots, cfg.embed_dim
    mask = torch.zeros(1, s, dtype=torch.bool)
    mask[0, :3] = True
    emb = torch.randn(1, s, c)
    with torch.no_grad():
        _, seeds = net._dense_queries(feats, i2l)
        near = torch.full((1, s, 3), 0.5)
        near[0, :3] = seeds[0, :3]
        shifted = [near.clone(), near.clone()]
        shifted[0][0, :3, 0] += 0.1 / 102.4  # 10 cm either side of the seeds
        shifted[1][0, :3, 0] -= 0.1 / 102.4
        a, b = (net.decode(feats, i2l, emb, r, mask) for r in shifted)
    rows = slice(a.num_det, a.num_det + 3)
    # Wherever near its seed the propagated point was, a live track decodes from the seed.
    assert torch.allclose(a.codes[:, :, rows], b.codes[:, :, rows], atol=1e-5)
    assert torch.allclose(a.refs[0, :, rows], b.refs[0, :, rows], atol=1e-6)


def _isolated_seed(net: TrackerNet, seeds: torch.Tensor) -> int:
    """The heatmap seed (of batch row 0) farthest from its nearest neighbour: a track 0.5 m from it
    re-anchors to it and to no other (random weights can seed several cells within a metre)."""
    xy = net.coder.denormalize(seeds[0])[:, :2]
    dist = torch.cdist(xy, xy) + torch.eye(len(xy)) * 1e9
    nearest, k = dist.min(dim=1).values.max(dim=0)
    assert float(nearest) > 1.0, "no seed lies more than 1 m from every other"
    return int(k)


def test_a_fresh_track_query_at_its_seed_decodes_as_that_seed_detection() -> None:
    # track_update starts at zero: a re-anchored track is then its seed's detection query,
    # which the detector already localizes and scores; training adds what it must keep.
    cfg = replace(SMALL, track_reanchor_m=3.0, track_seed_content=True)
    net = TrackerNet(cfg).eval()
    images, i2l = frame_inputs(cfg)
    feats = net.encode(images)
    s, c = cfg.num_slots, cfg.embed_dim
    mask = torch.zeros(1, s, dtype=torch.bool)
    mask[0, 0] = True
    with torch.no_grad():
        _, seeds = net._dense_queries(feats, i2l)
        k = _isolated_seed(net, seeds)
        ref = torch.full((1, s, 3), 0.5)
        ref[0, 0] = seeds[0, k] + torch.tensor([0.5 / 102.4, 0.0, 0.0])
        out = net.decode(feats, i2l, torch.randn(1, s, c), ref, mask)
    seed_row = cfg.num_queries + k
    assert torch.allclose(out.codes[:, 0, out.num_det], out.codes[:, 0, seed_row], atol=1e-5)
    assert torch.allclose(out.logits[:, 0, out.num_det], out.logits[:, 0, seed_row], atol=1e-5)


def test_the_nearest_live_track_claims_a_seed_and_the_others_keep_their_point() -> None:
    net = TrackerNet(replace(SMALL, track_reanchor_m=3.0, track_claims_seed=True)).eval()
    coder = net.coder
    seeds = coder.normalize(torch.tensor([[[10.0, 0.0, 0.0], [20.0, 5.0, 1.0], [-30.0, 0.0, 0.0]]]))
    tracks = coder.normalize(
        torch.tensor([[[11.0, 1.0, 0.0], [10.5, 0.0, 0.0], [20.0, 6.0, 0.0], [-30.0, 0.5, 0.0]]])
    )
    live = torch.tensor([[True, True, True, False]])
    idx, holds, claimed = net.claim_seeds(tracks, seeds, live)
    assert idx[0, :3].tolist() == [0, 0, 1]
    # 1.4 m and 0.5 m from seed 0: the nearer track holds it; a free slot claims nothing.
    assert holds[0].tolist() == [False, True, True, False]
    assert claimed[0].tolist() == [True, True, False]


def test_a_fresh_claiming_track_leaves_the_detector_output_unchanged() -> None:
    # With a zero memory update the track row replaces its seed's detection row: every other
    # row decodes as with no track at all, the track decodes as the seed did, and the hidden
    # seed row cannot score (so it can neither give birth nor be taught anything).
    cfg = replace(SMALL, track_reanchor_m=3.0, track_seed_content=True, track_claims_seed=True)
    net = TrackerNet(cfg).eval()
    images, i2l = frame_inputs(cfg)
    feats = net.encode(images)
    s, c = cfg.num_slots, cfg.embed_dim
    emb = torch.randn(1, s, c)
    with torch.no_grad():
        _, seeds = net._dense_queries(feats, i2l)
        k = _isolated_seed(net, seeds)
        ref = torch.full((1, s, 3), 0.5)
        ref[0, 0] = seeds[0, k] + torch.tensor([0.5 / 102.4, 0.0, 0.0])
        alone = net.decode(feats, i2l, emb, ref, torch.zeros(1, s, dtype=torch.bool))
        live = torch.zeros(1, s, dtype=torch.bool)
        live[0, 0] = True
        tracked = net.decode(feats, i2l, emb, ref, live)
    seed_row, track_row = cfg.num_queries + k, tracked.num_det
    others = [r for r in range(tracked.num_det) if r != seed_row]
    assert torch.allclose(tracked.codes[:, 0, others], alone.codes[:, 0, others], atol=1e-5)
    assert torch.allclose(tracked.logits[:, 0, others], alone.logits[:, 0, others], atol=1e-5)
    assert torch.allclose(tracked.codes[:, 0, track_row], alone.codes[:, 0, seed_row], atol=1e-5)
    assert torch.allclose(tracked.logits[:, 0, track_row], alone.logits[:, 0, seed_row], atol=1e-5)
    assert bool((tracked.logits[:, 0, seed_row] <= -1e3).all())


@pytest.mark.parametrize("seed_memory", [True, False])
def test_without_seed_memory_a_track_at_its_seed_decodes_as_that_seed_and_a_seedless_one_reads_its_memory(
    seed_memory: bool,
) -> None:
    cfg = replace(
        SMALL,
        track_reanchor_m=3.0,
        track_seed_content=True,
        track_claims_seed=True,
        track_seed_memory=seed_memory,
    )
    net = TrackerNet(cfg).eval()
    with torch.no_grad():
        for p in net.track_update.parameters():
            p.normal_(0.0, 0.5)  # a trained memory update, not the zero it starts from
    images, i2l = frame_inputs(cfg)
    feats = net.encode(images)
    s, c = cfg.num_slots, cfg.embed_dim
    live = torch.zeros(1, s, dtype=torch.bool)
    live[0, :2] = True
    with torch.no_grad():
        _, seeds = net._dense_queries(feats, i2l)
        ref = torch.full((1, s, 3), 0.5)
        ref[0, 0] = seeds[0, 4] + torch.tensor([0.5 / 102.4, 0.0, 0.0])
        ref[0, 1] = torch.tensor([0.0, 0.0, 0.5])  # 51 m from the ego: no seed within 3 m
        emb = torch.randn(1, s, c)
        alone = net.decode(feats, i2l, emb, ref, live & (torch.arange(s) == 1))  # the seedless track only
        a, b = (net.decode(feats, i2l, e, ref, live) for e in (emb, emb + torch.randn_like(emb)))
    idx, holds, _ = net.claim_seeds(ref, seeds, live)
    assert holds[0, :2].tolist() == [True, False]
    row, seed_row = a.num_det, cfg.num_queries + int(idx[0, 0])  # the nearest seed (several lie within 1 m)
    at_seed = torch.allclose(a.codes[:, 0, row], alone.codes[:, 0, seed_row], atol=1e-5)
    assert at_seed is not seed_memory
    assert not torch.allclose(a.codes[:, 0, row + 1], b.codes[:, 0, row + 1], atol=1e-3)  # the seedless track


def test_a_masked_camera_cannot_change_the_decoded_frame() -> None:
    # A frame without one camera's image: whatever that camera's slot holds (zeros, garbage),
    # no query reads its tokens and no heatmap seed comes from it.
    cfg = replace(SMALL, track_reanchor_m=3.0, track_seed_content=True, track_claims_seed=True)
    net = TrackerNet(cfg).eval()
    images, i2l = frame_inputs(cfg)
    s, c = cfg.num_slots, cfg.embed_dim
    emb, ref = torch.randn(1, s, c), torch.rand(1, s, 3)
    live = torch.zeros(1, s, dtype=torch.bool)
    live[0, :4] = True
    used = torch.ones(1, 6)
    used[0, 2] = 0.0
    other = images.clone()
    other[0, 2] = torch.randn_like(other[0, 2]) * 3.0
    with torch.no_grad():
        a, b = (net.decode(net.encode(x), i2l, emb, ref, live, camera_mask=used) for x in (images, other))
        full = [net.decode(net.encode(x), i2l, emb, ref, live) for x in (images, other)]
    assert torch.allclose(a.logits, b.logits, atol=1e-5)
    assert torch.allclose(a.codes, b.codes, atol=1e-5)
    assert not torch.allclose(full[0].logits, full[1].logits, atol=1e-3)  # unmasked, it does change them


def test_asymmetric_attention_blocks_exactly_the_track_to_detection_pairs() -> None:
    bias = TrackerNet.track_rows_blind(num_det=5, num_slots=3, num_rows=10, device=torch.device("cpu"))[0]
    blocked = {(int(q), int(k)) for q, k in (bias < 0).nonzero()}
    assert blocked == {(q, k) for q in range(5, 8) for k in range(5)}  # rows 8-9 (extra) stay open


@pytest.mark.parametrize("attention", ["full", "asymmetric"])
def test_asymmetric_track_rows_do_not_read_the_detection_rows(
    attention: Literal["full", "asymmetric"],
) -> None:
    cfg = replace(SMALL, track_attention=attention)
    net = TrackerNet(cfg).eval()
    images, i2l = frame_inputs(cfg)
    feats = net.encode(images)
    s, c = cfg.num_slots, cfg.embed_dim
    live = torch.zeros(1, s, dtype=torch.bool)
    live[0, :3] = True
    emb, ref = torch.randn(1, s, c), torch.rand(1, s, 3)
    with torch.no_grad():
        before = net.decode(feats, i2l, emb, ref, live)
        net.det_content.weight.add_(torch.randn_like(net.det_content.weight))  # other detection queries
        after = net.decode(feats, i2l, emb, ref, live)
    tracks = slice(before.num_det, before.num_det + 3)
    same = torch.allclose(before.codes[:, :, tracks], after.codes[:, :, tracks], atol=1e-5)
    assert same == (attention == "asymmetric")
    assert not torch.allclose(before.codes[:, :, : before.num_det], after.codes[:, :, : after.num_det])
