"""SynCL training: the clip loss learns, each part is switchable, train-only layers stay out of inference,
and a two-process DDP step keeps the replicas identical."""

import os
import socket
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from training_fixtures import TINY_MODEL, tiny_clip, tiny_experiment

from syncl_ros.experiment import Experiment
from syncl_ros.experiment.train_config import AidsConfig, SynCLConfig
from syncl_ros.geometry import Transform
from syncl_ros.inference.torch_backend import to_decoder_outputs
from syncl_ros.model.config import ModelConfig
from syncl_ros.model.network import DecoderTensors
from syncl_ros.tracking.interface import TrackSlots
from syncl_ros.tracking.query_tracker import QueryTracker
from syncl_ros.training.clip_pass import COUNTS, ClipPass, SlotMemory, TrainingModel
from syncl_ros.training.syncl.matching import DecoderTargets


def run_steps(module: TrainingModel, steps: int, lr: float = 2e-3) -> list[float]:
    clip = tiny_clip()
    opt = torch.optim.AdamW(module.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(steps):
        out = module(clip, gen)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(float(out["loss"].detach()))
    return losses


CLAIMING = replace(TINY_MODEL, track_reanchor_m=50.0, track_seed_content=True, track_claims_seed=True)


@pytest.mark.slow
@pytest.mark.parametrize("model", [TINY_MODEL, CLAIMING], ids=["propagated", "claiming"])
def test_short_training_lowers_the_loss(model: ModelConfig) -> None:
    torch.manual_seed(0)
    losses = run_steps(TrainingModel(tiny_experiment(model=model)), 25)
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:3]) / 3, losses


@pytest.mark.parametrize(
    ("syncl", "aids", "expected"),
    [
        (SynCLConfig(), AidsConfig(denoising=True), {"s", "c", "contrastive", "dense", "dn"}),
        (SynCLConfig(contrastive=False), AidsConfig(), {"s", "c", "dense"}),
        (SynCLConfig(hybrid_matching=False, contrastive=False), AidsConfig(dense_weight=0.0), {"s"}),
    ],
)
def test_each_part_is_switchable(syncl: SynCLConfig, aids: AidsConfig, expected: set[str]) -> None:
    torch.manual_seed(0)
    module = TrainingModel(_all_born(tiny_experiment(syncl, aids)))
    out = module(tiny_clip(), torch.Generator().manual_seed(0))
    assert set(out) - {"loss", *COUNTS} == expected
    assert torch.isfinite(out["loss"])


def test_contrastive_trains_the_projector_which_inference_never_uses() -> None:
    torch.manual_seed(0)
    module = TrainingModel(_all_born(tiny_experiment(aids=AidsConfig())))
    out = module(tiny_clip(), torch.Generator().manual_seed(0))
    out["contrastive"].backward()
    projector = module.train_only["projector"]
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in projector.parameters())
    assert not any(name.startswith("train_only") for name, _ in module.net.named_parameters())


def _ddp_worker(rank: int, world: int, port: int, result: "mp.Queue[list[float]]") -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(0)  # identical initial replicas, as torchrun's broadcast would also ensure
    module = TrainingModel(tiny_experiment())
    model = torch.nn.parallel.DistributedDataParallel(module, find_unused_parameters=True)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    out = model(tiny_clip(seed=rank), torch.Generator().manual_seed(rank))  # different data per rank
    opt.zero_grad()
    out["loss"].backward()
    opt.step()
    flat = torch.cat([p.detach().flatten() for p in module.parameters()])
    result.put([rank, float(flat.sum()), float(flat.abs().sum())])
    dist.destroy_process_group()


@pytest.mark.slow
def test_two_process_ddp_step_keeps_replicas_identical() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    queue: mp.Queue[list[float]] = ctx.Queue()
    procs = [ctx.Process(target=_ddp_worker, args=(r, 2, port, queue)) for r in range(2)]
    for p in procs:
        p.start()
    results = sorted(queue.get(timeout=240) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    (_, sum0, abs0), (_, sum1, abs1) = results
    assert sum0 == pytest.approx(sum1, rel=1e-6) and abs0 == pytest.approx(abs1, rel=1e-6)


@pytest.mark.slow
def test_bfloat16_autocast_gives_finite_float32_losses_and_gradients() -> None:
    torch.manual_seed(0)
    module = TrainingModel(tiny_experiment(aids=AidsConfig(denoising=True, coaux=True)))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = module(tiny_clip(), torch.Generator().manual_seed(0))
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in out.values()), out
    out["loss"].backward()
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_saturated_heatmap_gives_a_finite_loss_in_bfloat16() -> None:
    """A confident center (sigmoid == 1 in bfloat16) once made log(1 - p) * 0 = NaN."""
    from syncl_ros.training.dense import heatmap_focal_loss

    target = torch.zeros(1, 1, 2, 4, 4)
    target[0, 0, 0, 1, 1] = 1.0
    target[0, 0, 0, 1, 2] = 0.6  # near a center: penalty-reduced negative
    logits = torch.full_like(target, -30.0)
    logits[0, 0, 0, 1, 1:3] = 30.0
    loss = heatmap_focal_loss(logits.bfloat16(), target)
    assert torch.isfinite(loss) and loss > 0  # the saturated negative still costs something


def _with(exp: Experiment, **tracker_or_train: Any) -> Experiment:
    tracker = {k: v for k, v in tracker_or_train.items() if hasattr(exp.tracker, k)}
    train = {k: v for k, v in tracker_or_train.items() if k not in tracker}
    return replace(exp, tracker=replace(exp.tracker, **tracker), train=replace(exp.train, **train))


def _all_born(exp: Experiment) -> Experiment:
    """Every detection may start a track (more slots than detection queries, no thresholds), so
    that an untrained network's matched detections become tracks and their objects persistent."""
    model = replace(exp.model, num_slots=48)
    tracker = replace(exp.tracker, birth_score=0.0, update_score=0.0)
    return replace(exp, model=model, tracker=tracker)


def test_c_decoder_has_no_loss_on_a_frame_without_tracks() -> None:
    """On a clip's first frame every object is new-born: nothing for the C-decoder to match."""
    torch.manual_seed(0)
    module = TrainingModel(tiny_experiment(aids=AidsConfig()))
    out = module(tiny_clip()[:1], torch.Generator().manual_seed(0))
    assert "c" not in out and float(out["contrastive"]) == 0.0
    assert torch.isfinite(out["loss"])


@pytest.mark.parametrize("random_exit", [0.0, 1.0], ids=["full_depth", "exit_after_layer_1"])
def test_training_tracks_by_the_runtime_rules(random_exit: float) -> None:
    """Training's slots (mask, reference points, carried embeddings) are exactly those of the
    inference path (QueryTracker on the network's outputs): births, motion, coasting, memory.
    With ``train.random_exit`` 1 and early exit allowed after layer 1 of 2, every frame's tracker
    takes layer 1's outputs, as a runtime that stops there."""
    torch.manual_seed(0)
    exp = _with(
        tiny_experiment(aids=AidsConfig()),
        birth_score=0.015,
        update_score=0.015,
        track_drop=0.0,
        random_exit=random_exit,
    )
    exp = replace(exp, tracker=replace(exp.tracker, early_exit=replace(exp.tracker.early_exit, min_layers=1)))
    module = TrainingModel(exp).eval()
    clip = tiny_clip()
    run = ClipPass(module, torch.Generator().manual_seed(0))
    run.run(clip)
    net, tracker = module.net, QueryTracker(exp.tracker, exp.model, seed=0)
    births = 0
    with torch.no_grad():
        for sample, record in zip(clip, run.records, strict=True):
            slots = tracker.prepare(sample.timestamp_ns, Transform.from_matrix(sample.model_to_world.numpy()))
            np.testing.assert_array_equal(slots.mask, record.live)
            np.testing.assert_allclose(slots.refs, record.refs, atol=1e-6)
            emb, refs, mask = (torch.from_numpy(a)[None] for a in (slots.embeddings, slots.refs, slots.mask))
            assert sample.images is not None
            out = net.decode(net.encode(sample.images[None]), sample.img2lidar[None], emb, refs, mask)
            tracker.update(to_decoder_outputs(out.exit_after(0) if random_exit else out, net))
            births += len(tracker.last_changes.birth_rows)
            assert len(tracker.last_changes.birth_rows) == record.births
    assert births > 0 and run.records[-1].live.sum() > 0, "the clip must exercise births and carried tracks"


def test_exit_after_gives_a_shallower_layers_outputs() -> None:
    torch.manual_seed(0)
    net = TrainingModel(tiny_experiment()).net.eval()
    sample, s = tiny_clip()[0], TINY_MODEL.num_slots
    assert sample.images is not None
    with torch.no_grad():
        out = net.decode(
            net.encode(sample.images[None]),
            sample.img2lidar[None],
            torch.zeros(1, s, TINY_MODEL.embed_dim),
            torch.full((1, s, 3), 0.5),
            torch.zeros(1, s, dtype=torch.bool),
        )
    assert len(out.layer_embeddings) == TINY_MODEL.num_layers
    torch.testing.assert_close(out.layer_embeddings[-1], out.embeddings)
    first = out.exit_after(0)
    assert first.logits.shape[0] == 1 and first.num_det == out.num_det
    torch.testing.assert_close(first.codes[-1], out.codes[0])
    torch.testing.assert_close(first.embeddings, out.layer_embeddings[0])
    assert not torch.equal(first.embeddings, out.embeddings)
    last = to_decoder_outputs(out.exit_after(TINY_MODEL.num_layers - 1), net)
    np.testing.assert_array_equal(last.scores, to_decoder_outputs(out, net).scores)


def test_no_births_below_the_birth_score_in_training() -> None:
    """Today's runtime gives a track only to a detection scoring >= birth_score; so does training
    (an untrained network scores about 0.01 everywhere)."""
    torch.manual_seed(0)
    run = ClipPass(TrainingModel(tiny_experiment()), torch.Generator().manual_seed(0))
    run.run(tiny_clip())
    assert all(r.births == 0 and not r.live.any() for r in run.records)


def _output(num_det: int, slots: int, dim: int, centers: dict[int, tuple[float, float]]) -> DecoderTensors:
    """A one-layer decoder output: rows in `centers` confident at those centers, the rest silent."""
    rows = num_det + slots
    logits = torch.full((1, 1, rows, 10), -6.0)
    codes = torch.zeros(1, 1, rows, 10)
    codes[..., 3:6] = 0.5
    codes[..., 7] = 1.0
    for row, (x, y) in centers.items():
        logits[0, 0, row, 0] = 4.0
        codes[0, 0, row, :2] = torch.tensor([x, y])
    refs = torch.full((1, 1, rows, 3), 0.5)
    return DecoderTensors(logits, codes, refs, torch.randn(1, rows, dim), num_det)


def test_births_follow_their_object_false_tracks_none_and_coasting_slots_stay() -> None:
    exp = _with(tiny_experiment(), fp_ratio=0.0, track_drop=0.0)
    run = ClipPass(TrainingModel(exp), torch.Generator().manual_seed(0))
    nd, s, dim = 30 + 10, exp.model.num_slots, exp.model.embed_dim
    clip = tiny_clip()  # car id 0 at (10, 2), pedestrian id 1 at (15, -3), gone in the last frame
    memory = SlotMemory.empty(s, dim, torch.device("cpu"))
    slots = run.tracker.prepare(clip[0].timestamp_ns, Transform.from_matrix(clip[0].model_to_world.numpy()))
    out = _output(nd, s, dim, {3: (10.0, 2.0), 7: (15.0, -3.0), 9: (30.0, 30.0)})
    targets = DecoderTargets(
        torch.tensor([3, 7]), torch.tensor([0, 1]), torch.zeros(2), torch.full((s,), -1), 2
    )
    memory, record = run._update_tracks(out, targets, clip[0], slots, memory)
    assert record.births == 3
    born = {
        int(r): int(k)
        for r, k in zip(
            run.tracker.last_changes.birth_rows, run.tracker.last_changes.birth_slots, strict=True
        )
    }
    assert memory.follow[born[3]] == 0 and memory.follow[born[7]] == 1 and memory.follow[born[9]] == -1
    torch.testing.assert_close(memory.emb[born[7]], out.embeddings[0, 7])
    # Next frame nothing is confident: every track coasts, keeps its embedding and its object.
    slots = run.tracker.prepare(clip[1].timestamp_ns, Transform.from_matrix(clip[1].model_to_world.numpy()))
    quiet = _output(nd, s, dim, {})
    none = DecoderTargets(*(torch.empty(0, dtype=torch.long),) * 2, torch.zeros(0), torch.full((s,), -1), 0)
    before = memory.emb.clone()
    memory, record = run._update_tracks(quiet, none, clip[1], slots, memory)
    assert record.live.sum() == 3 and run.tracker.num_live == 3
    torch.testing.assert_close(memory.emb, before)
    assert memory.follow[born[7]] == 1


def test_false_tracks_and_drops_change_the_runtime_tracker_too() -> None:
    exp = _with(tiny_experiment(), fp_ratio=1.0, track_drop=0.0)
    run = ClipPass(TrainingModel(exp), torch.Generator().manual_seed(0))
    nd, s, dim = 40, exp.model.num_slots, exp.model.embed_dim
    clip = tiny_clip()
    slots = run.tracker.prepare(clip[0].timestamp_ns, Transform.from_matrix(clip[0].model_to_world.numpy()))
    out = _output(nd, s, dim, {3: (10.0, 2.0)})
    targets = DecoderTargets(torch.tensor([3]), torch.tensor([0]), torch.zeros(1), torch.full((s,), -1), 1)
    memory, record = run._update_tracks(
        out, targets, clip[0], slots, SlotMemory.empty(s, dim, torch.device("cpu"))
    )
    assert record.births == 1 and record.false_tracks == 1 and run.tracker.num_live == 2
    assert sorted(memory.follow[run.tracker.live_slots].tolist()) == [-1, 0]
    run.tracker.end(run.tracker.live_slots)
    assert run.tracker.num_live == 0


def test_a_reattached_track_keeps_its_object_and_takes_the_detections_features() -> None:
    exp = _with(tiny_experiment(), fp_ratio=0.0, track_drop=0.0, reattach_distance_m=4.0)
    run = ClipPass(TrainingModel(exp), torch.Generator().manual_seed(0))
    nd, s, dim = 40, exp.model.num_slots, exp.model.embed_dim
    clip = tiny_clip()  # car id 0 at (10, 2)
    pose = [Transform.from_matrix(f.model_to_world.numpy()) for f in clip[:2]]
    slots = run.tracker.prepare(clip[0].timestamp_ns, pose[0])
    targets = DecoderTargets(torch.tensor([3]), torch.tensor([0]), torch.zeros(1), torch.full((s,), -1), 1)
    memory, _ = run._update_tracks(
        _output(nd, s, dim, {3: (10.0, 2.0)}),
        targets,
        clip[0],
        slots,
        SlotMemory.empty(s, dim, torch.device("cpu")),
    )
    (slot,) = run.tracker.live_slots
    # Next frame the track's own row is silent and a detection query finds the car 2 m on.
    slots = run.tracker.prepare(clip[1].timestamp_ns, pose[1])
    x, y = run.tracker.live_tracks()[0].box[:2]  # where the track is expected in this frame
    out = _output(nd, s, dim, {5: (float(x) + 2.0, float(y))})
    none = DecoderTargets(*(torch.empty(0, dtype=torch.long),) * 2, torch.zeros(0), torch.full((s,), -1), 0)
    memory, record = run._update_tracks(out, none, clip[1], slots, memory)
    assert record.births == 0 and run.tracker.reattached == 1 and run.tracker.num_live == 1
    torch.testing.assert_close(memory.emb[slot], out.embeddings[0, 5])
    assert memory.follow[slot] == 0


def test_track_gate_judges_the_decoded_box() -> None:
    """A slot whose decoded center is farther than the gate from its object loses it for good."""
    frame = tiny_clip()[0]  # car (id 0) at (10, 2), pedestrian (id 1) at (15, -3)
    exp = tiny_experiment()
    nd, s, dim = 40, exp.model.num_slots, exp.model.embed_dim
    out = _output(nd, s, dim, {nd + 0: (11.0, 2.0), nd + 1: (15.0, 1.0), nd + 2: (0.0, 0.0)})
    live = np.zeros(s, dtype=bool)
    live[:4] = True
    follow = np.array([0, 1, 5, -1] + [-1] * (s - 4))  # id 5 is not in the frame
    for gate, expected, lost in ((0.0, [0, 1, 5], 0), (2.0, [0, -1, 5], 1), (0.5, [-1, -1, 5], 2)):
        run = ClipPass(TrainingModel(_with(exp, track_gate_m=gate)), torch.Generator())
        got, n = run._follow(out, frame, live, follow)
        assert got[:3].tolist() == expected and n == lost
        assert (got[3:] == -1).all()
    assert follow[:3].tolist() == [0, 1, 5], "the caller's array is not changed"


def test_bfloat16_only_where_the_cpu_has_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from syncl_ros.training.trainer import use_bf16

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    assert not use_bf16(True, cpu) and use_bf16(True, cuda) and not use_bf16(False, cuda)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    assert use_bf16(True, cpu) and not use_bf16(False, cpu)


def _withheld_car(reattach_m: float) -> tuple[ClipPass, SlotMemory, TrackSlots, int]:
    """A car track born on frame 0 (row 3), coasting on frame 1, kept out of the decoder on frame 2."""
    exp = _with(
        tiny_experiment(), fp_ratio=0.0, track_drop=0.0, decode_coasting=False, reattach_distance_m=reattach_m
    )
    run = ClipPass(TrainingModel(exp), torch.Generator().manual_seed(0))
    nd, s, dim = 40, exp.model.num_slots, exp.model.embed_dim
    clip = tiny_clip()  # car id 0 at (10, 2) on every frame
    memory = SlotMemory.empty(s, dim, torch.device("cpu"))
    one = DecoderTargets(torch.tensor([3]), torch.tensor([0]), torch.zeros(1), torch.full((s,), -1), 1)
    none = DecoderTargets(*(torch.empty(0, dtype=torch.long),) * 2, torch.zeros(0), torch.full((s,), -1), 0)
    for frame, out, targets in ((0, {3: (10.0, 2.0)}, one), (1, {}, none)):
        pose = Transform.from_matrix(clip[frame].model_to_world.numpy())
        slots = run.tracker.prepare(clip[frame].timestamp_ns, pose)
        memory, _ = run._update_tracks(_output(nd, s, dim, out), targets, clip[frame], slots, memory)
    slots = run.tracker.prepare(clip[2].timestamp_ns, Transform.from_matrix(clip[2].model_to_world.numpy()))
    (slot,) = run.tracker.live_slots
    assert not slots.mask[slot] and run.tracker.withheld[slot] and memory.follow[slot] == 0
    return run, memory, slots, int(slot)


def test_a_withheld_track_keeps_its_object_whose_detection_row_is_taught_to_fire() -> None:
    """With ``tracker.decode_coasting`` false a coasting track is not decoded: training keeps its
    object for it, makes that object a target of the detection queries, and the track reattaches
    to the detection row that fires for it."""
    run, memory, slots, slot = _withheld_car(reattach_m=6.0)
    frame, nd, s, dim = tiny_clip()[2], 40, slots.mask.shape[0], memory.emb.shape[1]
    x, y = run.tracker.live_tracks()[0].box[:2]  # where the withheld track is expected
    out = _output(nd, s, dim, {5: (10.0, 2.0)})
    assert np.hypot(x - 10.0, y - 2.0) < 6.0, "the car must lie within the reattachment distance"
    follow, _ = run._follow(out, frame, slots.mask, memory.follow)
    kept = run._kept_by_withheld(memory.follow, follow)
    assert follow[slot] == -1 and kept[slot] == 0
    gt_code = run.net.coder.encode(frame.boxes)
    targets = run._assign(out, None, 0, frame, follow, gt_code).s
    assert 0 in targets.det_gt_idx.tolist(), "the withheld track's car is a detection target"
    tracked = run._assign(out, None, 0, frame, kept, gt_code).s
    assert 0 not in tracked.det_gt_idx.tolist(), "a decoded track's car is not"
    memory, record = run._update_tracks(out, targets, frame, slots, replace(memory, follow=kept))
    assert run.tracker.reattached == 1 and record.births == 0
    assert memory.follow[slot] == 0
    torch.testing.assert_close(memory.emb[slot], out.embeddings[0, 5])


def test_a_withheld_track_loses_its_object_to_a_new_track() -> None:
    """Without reattachment, a detection of the withheld track's car (beyond the duplicate distance)
    gives birth: the new track follows the car, the withheld one nothing."""
    run, memory, slots, slot = _withheld_car(reattach_m=0.0)
    frame, nd, s, dim = tiny_clip()[2], 40, slots.mask.shape[0], memory.emb.shape[1]
    x, y = run.tracker.live_tracks()[0].box[:2]  # coasted without velocity: behind the car
    assert np.hypot(x - 10.0, y - 2.0) > run.exp.tracker.duplicate_distance_m
    out = _output(nd, s, dim, {5: (10.0, 2.0)})
    follow, _ = run._follow(out, frame, slots.mask, memory.follow)
    kept = run._kept_by_withheld(memory.follow, follow)
    targets = run._assign(out, None, 0, frame, follow, run.net.coder.encode(frame.boxes)).s
    memory, record = run._update_tracks(out, targets, frame, slots, replace(memory, follow=kept))
    (born,) = run.tracker.last_changes.birth_slots
    assert record.births == 1 and memory.follow[born] == 0 and memory.follow[slot] == -1
