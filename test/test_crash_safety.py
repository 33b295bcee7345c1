"""Crash safety of the long jobs: `syncl synth`, `convert`, `train`, `export` and the engine build
are each SIGKILLed at seeded random moments while they run, then run again to the end.

All five jobs are deterministic, so "complete and valid" is checked against an uninterrupted run of
the same command: the outputs must equal it (bytes, bag messages, clip order and weights of a
resumed training run), open with their readers, and no temporary file may be left beside them or
in TMPDIR. Kill moments are drawn from the active part of each job, measured on the uninterrupted
run: from a little before it first touches its output folder to its end.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from numpy.typing import NDArray

pytestmark = pytest.mark.slow  # processes, datasets or training: see `make test-fast`

ROOT = Path(__file__).resolve().parents[1]
KILLS = 3  # per job
SEED = 20250605
VERSION = "v1.0-trainval"


# -- running and killing ----------------------------------------------------------------


def syncl(*args: object) -> list[str]:
    return [sys.executable, "-m", "syncl_ros.cli", *map(str, args)]


@dataclass(frozen=True)
class Timing:
    """When the uninterrupted run first and last changed its output folder (s after its start)."""

    first_write_s: float
    last_write_s: float

    def kill_delays(self, rng: np.random.Generator) -> NDArray[np.float64]:
        # Not in the imports before (nothing to break there), nor in the interpreter's exit after.
        lo, hi = max(0.0, self.first_write_s - 0.5), self.last_write_s + 0.1
        delays = rng.uniform(lo, hi, KILLS)
        # The first attempt starts from nothing and must be killed even when it runs up to 1.5
        # times as fast as the timed run (the other test worker, or any other load, may have
        # slowed that one): before the timed run's first write and before two thirds of its
        # length. A job that does all its writing at the end (an export: atomic, within 0.1 s)
        # is then killed while it works toward it. Later attempts resume, so they may finish
        # before their kill.
        latest = min(lo, self.last_write_s / 1.5)
        delays[0] = rng.uniform(latest / 1.5, latest)
        return delays


@dataclass(frozen=True)
class Job:
    """One job's command-line environment: its own TMPDIR (checked for leftovers) and log folder."""

    folder: Path

    def env(self) -> dict[str, str]:
        tmp = self.folder / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        return {
            **os.environ,
            "OMP_NUM_THREADS": "1",
            "TMPDIR": str(tmp),
            "SYNCL_CACHE_DIR": str(self.folder / "cache"),
        }

    def launch(self, cmd: Sequence[str], name: str) -> subprocess.Popen[bytes]:
        self.folder.mkdir(parents=True, exist_ok=True)
        with (self.folder / f"{name}.log").open("wb") as log:
            # Its own session: the kill goes to the job's main process only, as an OOM killer's or a
            # user's would, and the session shows whether any worker process outlived it.
            return subprocess.Popen(
                cmd, cwd=ROOT, env=self.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")[-4000:]

    def run(self, cmd: Sequence[str], name: str, watched: Path | None = None) -> Timing:
        """Run to the end; note when `watched` (its entries and theirs) first and last changed."""
        seen, changes = _signature(watched), []
        start = time.monotonic()
        proc = self.launch(cmd, name)
        while proc.poll() is None:
            if (now := _signature(watched)) != seen:
                seen = now
                changes.append(time.monotonic() - start)
            time.sleep(0.02)
        assert proc.returncode == 0, self.log(name)
        assert watched is None or changes, f"{watched} never changed"
        return Timing(changes[0], changes[-1]) if changes else Timing(0.0, 0.0)

    def kill_after(self, cmd: Sequence[str], name: str, delay: float) -> bool:
        """SIGKILL the job `delay` s after its start; False when it finished first."""
        proc = self.launch(cmd, name)
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            _expect_no_survivors(proc.pid)
            return True
        assert proc.returncode == 0, self.log(name)
        return False

    def crash_then_finish(self, cmd: Sequence[str], timing: Timing, rng: np.random.Generator) -> int:
        """Kill `cmd` KILLS times at random moments, then run it to the end; returns the kills that landed."""
        delays = timing.kill_delays(rng)
        kills = sum(self.kill_after(cmd, f"killed{i}", float(d)) for i, d in enumerate(delays))
        self.run(cmd, "final")
        return kills

    def tmp_leftovers(self) -> list[str]:
        # torchinductor_<user> is torch's kernel cache, kept across runs on purpose.
        return sorted(
            p.name for p in (self.folder / "tmp").iterdir() if not p.name.startswith("torchinductor_")
        )


def _signature(folder: Path | None) -> object:
    """Names and modification times two levels deep (a folder's time changes with its entries)."""
    if folder is None or not folder.is_dir():
        return None
    try:
        entries = [*folder.iterdir(), *(p for d in folder.iterdir() if d.is_dir() for p in d.iterdir())]
        return sorted((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in entries)
    except FileNotFoundError:  # an entry vanished while we looked: it changed
        return "changing"


def _group_members(group: int) -> list[int]:
    """Live (not zombie) processes of a process group, from /proc."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def _expect_no_survivors(group: int) -> None:
    """Worker processes must not outlive a killed job: they would write into the rerun's outputs."""
    deadline = time.monotonic() + 10.0
    while _group_members(group):
        if time.monotonic() > deadline:
            os.killpg(group, signal.SIGKILL)
            pytest.fail(f"processes {_group_members(group)} outlived the killed job")
        time.sleep(0.05)


# -- what the outputs hold --------------------------------------------------------------


def tree(root: Path) -> dict[str, str]:
    """Every file under root (hidden ones included) -> sha256 of its bytes."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def leftovers(root: Path) -> list[str]:
    """Temporary or hidden entries under root (no output of these jobs is hidden)."""
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if p.name.startswith(".") or "partial" in p.name
    )


def rng_for(job: str) -> np.random.Generator:
    return np.random.default_rng([SEED, sum(job.encode())])


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("crash")


# -- synth --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    reference: Path  # output of the uninterrupted run
    result: Path  # output of the killed runs and the final one
    kills: int
    job: Job


def small_rig(path: Path) -> Path:
    """The nuScenes rig at a fifth of the resolution: rendering is the synthetic data's cost."""
    rig = yaml.safe_load((ROOT / "config" / "rig_nuscenes.yaml").read_text())
    for cam in rig["cameras"]:
        cam.update({k: cam[k] // 5 for k in ("width", "height")})
        cam.update({k: cam[k] / 5 for k in ("fx", "fy", "cx", "cy")})
    path.write_text(yaml.safe_dump(rig))
    return path


@pytest.fixture(scope="module")
def synth(work: Path) -> Outcome:
    """Two 1.5 s val scenes with every camera sweep, by two worker processes."""
    job = Job(work / "synth")
    rig = small_rig(work / "rig.yaml")
    args = ("--scenes", 2, "--duration", 1.5, "--split", "val", "--workers", 2, "--rig", rig, "--no-progress")
    reference, result = job.folder / "reference", job.folder / "dataset"
    timing = job.run(syncl("synth", reference, *args), "reference", watched=reference)
    kills = job.crash_then_finish(syncl("synth", result, *args), timing, rng_for("synth"))
    return Outcome(reference, result, kills, job)


def test_synth_rerun_after_kills_writes_the_whole_dataset(synth: Outcome) -> None:
    from nuscenes.nuscenes import NuScenes

    assert synth.kills >= 1
    assert tree(synth.result) == tree(synth.reference)  # byte-identical, nothing extra or missing
    assert leftovers(synth.result) == [] and synth.job.tmp_leftovers() == []
    nusc = NuScenes(VERSION, str(synth.result), verbose=False)
    assert len(nusc.scene) == 2
    assert all((synth.result / sd["filename"]).is_file() for sd in nusc.sample_data)


# -- convert ------------------------------------------------------------------------------


def bag_messages(bag: Path) -> list[tuple[str, int, bytes]]:
    from rosbags.rosbag2 import Reader

    with Reader(bag) as reader:
        messages = [(c.topic, t, bytes(raw)) for c, t, raw in reader.messages()]
        assert len(messages) == reader.message_count  # the metadata was written for this storage file
    return messages


def test_convert_rerun_after_kills_writes_the_whole_bag(synth: Outcome) -> None:
    job = Job(synth.job.folder.parent / "convert")
    scene = json.loads((synth.result / VERSION / "scene.json").read_text())[0]["name"]
    args = (synth.result, "--scene", scene, "--no-progress", "--overwrite")
    reference, bags = job.folder / "reference", job.folder / "bags"
    timing = job.run(syncl("convert", *args, "--out", reference / "bag"), "reference", watched=reference)
    kills = job.crash_then_finish(syncl("convert", *args, "--out", bags / "bag"), timing, rng_for("convert"))

    assert kills >= 1
    assert sorted(p.name for p in bags.iterdir()) == ["bag"]  # no partial bag beside it
    assert leftovers(bags) == [] and job.tmp_leftovers() == []
    expected = bag_messages(reference / "bag")
    assert len(expected) > 500 and bag_messages(bags / "bag") == expected


# -- train --------------------------------------------------------------------------------

STEPS = 60
TINY = {  # a model that trains at ~20 steps/s on one core; dropout draws on the global RNG
    "model.embed_dim": 32, "model.num_heads": 2, "model.ffn_dim": 64, "model.num_layers": 2,
    "model.num_queries": 30, "model.num_slots": 8, "model.depth_bins": 8, "model.dense_queries": 10,
    "model.input.height": 64, "model.input.width": 160, "model.dropout": 0.1,
    "train.clip_length": 2, "train.warmup_steps": 5, "train.bf16": False, "train.log_every": 1,
    "train.checkpoint_every": 5, "train.snapshot_every": 10,  # both at every 10th step
}  # fmt: skip


def train_cmd(data: Path, out: Path, cache: Path) -> list[str]:
    sets = [a for k, v in TINY.items() for a in ("--set", f"{k}={v}")]
    return syncl(
        "train", "--config", "tiny", "--dataroot", data, "--split", "val", "--out", out,
        "--feature-cache", cache, "--max-steps", STEPS, "--resume", "--no-progress", *sets,
    )  # fmt: skip


def metrics(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def weights(path: Path) -> dict[str, Any]:
    from syncl_ros.experiment.checkpoint import read_checkpoint

    return dict(read_checkpoint(path)["model"])


def test_train_resumes_after_kills_with_the_uninterrupted_data_order(synth: Outcome) -> None:
    import torch

    job = Job(synth.job.folder.parent / "train")
    reference, run = job.folder / "reference", job.folder / "run"
    cmd = train_cmd(synth.result, reference, job.folder / "features_reference")
    timing = job.run(cmd, "reference", watched=reference)
    cmd = train_cmd(synth.result, run, job.folder / "features")
    kills = job.crash_then_finish(cmd, timing, rng_for("train"))

    assert kills >= 1
    expected, got = metrics(reference), metrics(run)
    assert [r["step"] for r in got] == list(range(1, STEPS + 1))  # each step logged once
    assert [r["clips"] for r in got] == [r["clips"] for r in expected]  # the same data order
    assert [r["loss"] for r in got] == [r["loss"] for r in expected]
    snapshots = sorted(p.name for p in run.glob("step_*.pt"))
    assert snapshots == [f"step_{s:06d}.pt" for s in range(10, STEPS + 1, 10)]
    for name in [*snapshots, "last.pt"]:
        a, b = weights(run / name), weights(reference / name)
        assert all(torch.equal(a[k], b[k]) for k in b), name
    assert leftovers(run) == [] and leftovers(job.folder / "features") == []
    assert job.tmp_leftovers() == []


# -- export and the engine build ----------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint(work: Path) -> Path:
    import torch
    from training_fixtures import tiny_experiment

    from syncl_ros.experiment.checkpoint import save_checkpoint
    from syncl_ros.model.network import TrackerNet

    torch.manual_seed(0)
    exp = tiny_experiment()
    return save_checkpoint(work / "model.pt", TrackerNet(exp.model).eval(), exp, {"weights": "random"})


def test_export_rerun_after_kills_writes_a_verified_export(work: Path, checkpoint: Path) -> None:
    import onnxruntime as ort

    from syncl_ros.inference.manifest import read_manifest

    job = Job(work / "export")
    reference, out = job.folder / "reference", job.folder / "export"
    timing = job.run(
        syncl("export", "--model", checkpoint, "--out", reference), "reference", watched=reference
    )
    kills = job.crash_then_finish(
        syncl("export", "--model", checkpoint, "--out", out), timing, rng_for("export")
    )

    assert kills >= 1
    assert tree(out) == tree(reference)
    manifest = read_manifest(out)  # both graphs match their sha256
    for graph in manifest["graphs"].values():
        ort.InferenceSession(str(out / graph["file"]), providers=["CPUExecutionProvider"])
    assert leftovers(out) == [] and job.tmp_leftovers() == []


def test_engine_build_rerun_after_kills_leaves_a_valid_cache(work: Path, checkpoint: Path) -> None:
    """`syncl build-engine` with a stand-in for TensorRT's builder (see engine_build_job.py)."""
    from engine_build_job import ORIN, stand_in_engine

    from syncl_ros.inference.engine_cache import EngineCache
    from syncl_ros.inference.manifest import read_manifest
    from syncl_ros.inference.tensorrt_backend import GRAPHS, engine_key

    job = Job(work / "engine")
    script = ROOT / "test" / "engine_build_job.py"
    reference, cache = job.folder / "reference", job.folder / "cache_dir"
    timing = job.run([sys.executable, str(script), str(checkpoint), str(reference)], "reference", reference)
    cmd = [sys.executable, str(script), str(checkpoint), str(cache)]
    kills = job.crash_then_finish(cmd, timing, rng_for("engine"))

    assert kills >= 1
    assert tree(cache) == tree(reference)
    (export,) = (cache / "onnx").iterdir()
    engines = EngineCache(cache / "engines", stand_in_engine)
    graphs = read_manifest(export)["graphs"]
    status = {name: engines.check(engine_key(name, e["sha256"], "fp16", ORIN)) for name, e in graphs.items()}
    # the two graphs the node runs are built; the per-layer graphs of early exit only with --layers
    assert {name: status[name] for name in GRAPHS} == dict.fromkeys(GRAPHS)
    assert all(status[name] == "not cached" for name in graphs if name not in GRAPHS), status
    assert leftovers(cache) == [] and job.tmp_leftovers() == []


def test_torchrun_clip_order_resumes_mid_epoch() -> None:
    """Under torchrun the order comes from DistributedSampler epochs (built here without a process
    group): entering it at any step continues an uninterrupted run's batches, across epoch ends."""
    from syncl_ros.training.order import clip_sampler, position

    data, batch, world, steps = range(11), 2, 2, 16

    def batches(rank: int, start: int) -> list[list[int]]:
        epoch, done = position(start, len(data), batch, world)
        out: list[list[int]] = []
        while len(out) < steps - start:
            order = list(clip_sampler(data, 7, epoch, done, batch, world, rank))
            out += [order[i : i + batch] for i in range(0, len(order), batch)]
            epoch, done = epoch + 1, 0
        return out[: steps - start]

    for rank in range(world):
        uninterrupted = batches(rank, 0)
        assert len({tuple(b) for b in uninterrupted}) > 1  # shuffled, not one repeated batch
        for start in range(1, steps):
            assert batches(rank, start) == uninterrupted[start:], (rank, start)


def test_metrics_log_is_cut_back_to_the_resumed_step(tmp_path: Path) -> None:
    from syncl_ros.training.metrics_log import open_metrics_log

    log = tmp_path / "metrics.jsonl"
    log.write_text('{"step": 1}\n{"step": 2}\n{"step": 3}\n{"step": 4, "lo')  # killed mid-line
    with open_metrics_log(log, 2) as f:
        f.write('{"step": 3}\n')
    assert log.read_text() == '{"step": 1}\n{"step": 2}\n{"step": 3}\n'
    with open_metrics_log(log, 0):  # a run that starts over
        pass
    assert log.read_text() == ""
