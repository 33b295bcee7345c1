"""SynCL training: the clip loss learns, each part is switchable, train-only layers stay out of inference,
and a two-process DDP step keeps the replicas identical."""

import os
import socket
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from training_fixtures import tiny_clip, tiny_experiment

from syncl_ros.training.clip_loss import ClipRun, Slots, TrainModule
from syncl_ros.training.config import AidsConfig, SynCLConfig


def run_steps(module: TrainModule, steps: int, lr: float = 2e-3) -> list[float]:
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


def test_short_training_lowers_the_loss() -> None:
    torch.manual_seed(0)
    losses = run_steps(TrainModule(tiny_experiment()), 25)
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
    out = TrainModule(tiny_experiment(syncl, aids))(tiny_clip(), torch.Generator().manual_seed(0))
    assert set(out) - {"loss"} == expected
    assert torch.isfinite(out["loss"])


def test_contrastive_trains_the_projector_which_inference_never_uses() -> None:
    torch.manual_seed(0)
    module = TrainModule(tiny_experiment(aids=AidsConfig()))
    out = module(tiny_clip(), torch.Generator().manual_seed(0))
    out["contrastive"].backward()
    projector = module.train_only["projector"]
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in projector.parameters())
    assert not any(name.startswith("train_only") for name, _ in module.net.named_parameters())


def _ddp_worker(rank: int, world: int, port: int, result: "mp.Queue[list[float]]") -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(0)  # identical initial replicas, as torchrun's broadcast would also ensure
    module = TrainModule(tiny_experiment())
    model = torch.nn.parallel.DistributedDataParallel(module, find_unused_parameters=True)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    out = model(tiny_clip(seed=rank), torch.Generator().manual_seed(rank))  # different data per rank
    opt.zero_grad()
    out["loss"].backward()
    opt.step()
    flat = torch.cat([p.detach().flatten() for p in module.parameters()])
    result.put([rank, float(flat.sum()), float(flat.abs().sum())])
    dist.destroy_process_group()


def test_two_process_ddp_step_keeps_replicas_identical() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    queue: mp.Queue = ctx.Queue()
    procs = [ctx.Process(target=_ddp_worker, args=(r, 2, port, queue)) for r in range(2)]
    for p in procs:
        p.start()
    results = sorted(queue.get(timeout=240) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    (_, sum0, abs0), (_, sum1, abs1) = results
    assert sum0 == pytest.approx(sum1, rel=1e-6) and abs0 == pytest.approx(abs1, rel=1e-6)


def test_bfloat16_autocast_gives_finite_float32_losses_and_gradients() -> None:
    torch.manual_seed(0)
    module = TrainModule(tiny_experiment(aids=AidsConfig(denoising=True, coaux=True)))
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


def test_track_gate_hands_a_lost_object_back_to_the_detection_queries() -> None:
    frame = tiny_clip()[0]  # car (id 0) at (10, 2), pedestrian (id 1) at (15, -3)
    slots = Slots.empty(8, 32, torch.device("cpu"))
    slots.instance[:3] = torch.tensor([0, 1, 5])  # id 5 is not in the frame
    slots.box[0, :2] = [11.0, 2.0]  # 1 m off the car
    slots.box[1, :2] = [15.0, 1.0]  # 4 m off the pedestrian
    for gate, expected in ((0.0, [0, 1, 5]), (2.0, [0, -1, 5]), (0.5, [-1, -1, 5])):
        exp = tiny_experiment()
        exp = replace(exp, train=replace(exp.train, track_gate_m=gate))
        run = ClipRun(TrainModule(exp), torch.Generator())
        assert run._followed(slots, frame)[:3] == expected
        assert run._followed(slots, frame)[3:] == [-1] * 5
    assert np.all(slots.instance[:3].numpy() == [0, 1, 5]), "the slots themselves are not changed"
