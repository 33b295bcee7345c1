"""`syncl bench soak`: the real node, `syncl play --faults` and the soak's listener as separate
processes over DDS for a short run with a fixed seed: the node stays up, every injected fault is
accounted for by its counters, and the report is written. Also the fault mutations and the books
on their own."""

import io
import json
import random
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from sensor_msgs.msg import CompressedImage
from training_fixtures import TINY_MODEL

from syncl_ros.cli import main as syncl
from syncl_ros.data.synth.writer import write_dataset
from syncl_ros.experiment import Experiment
from syncl_ros.experiment.checkpoint import save_checkpoint
from syncl_ros.model.network import TrackerNet
from syncl_ros.pipeline.images import ImageDecodeError, compressed_image_size, decode_compressed_image
from syncl_ros.ros.faults import MUTATIONS, FaultInjector, FaultSettings
from syncl_ros.ros.soak import parse_duration
from syncl_ros.ros.soak_accounting import PublishedFrame, checks, fault_rows

pytestmark = pytest.mark.slow  # processes, datasets or training: see `make test-fast`

MS = 1_000_000
ALL = ("CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_BACK")
TOPICS = {f"/{c}/image_rect_compressed": c for c in ALL}


def _jpeg(width: int = 320, height: int = 180) -> CompressedImage:
    pixels = np.random.default_rng(0).integers(0, 255, (height, width, 3), np.uint8)
    return CompressedImage(format="jpeg", data=cv2.imencode(".jpg", pixels)[1].tobytes())


@pytest.mark.parametrize("kind", ["corrupt", "truncated"])
def test_broken_images_are_refused(kind: str) -> None:
    msg = _jpeg()
    msg.data = MUTATIONS[kind](bytes(msg.data), random.Random(1))
    with pytest.raises(ImageDecodeError):
        decode_compressed_image(msg)


def test_wrong_size_is_the_picture_at_half_size() -> None:
    msg = _jpeg()
    msg.data = MUTATIONS["wrong_size"](bytes(msg.data), random.Random(1))
    assert compressed_image_size(msg) == (160, 90)
    assert decode_compressed_image(msg).rgb.shape == (90, 160, 3)


def test_schedule_follows_the_seed() -> None:
    def kinds(seed: int) -> list[str]:
        clock = iter(np.arange(0.0, 200.0, 0.5))
        log = io.StringIO()
        injector = FaultInjector(
            FaultSettings(seed, every_s=2.0), TOPICS, log, loop=True, clock=lambda: next(clock)
        )
        injector.start()
        for _ in range(300):
            injector.rate_factor()
        return [json.loads(line)["kind"] for line in log.getvalue().splitlines()]

    assert kinds(4) == kinds(4) != kinds(5)
    assert {"silence", "burst"} <= set(kinds(4))


def test_durations() -> None:
    assert [parse_duration(t) for t in ("30s", "10m", "1.5h", "45")] == [30.0, 600.0, 5400.0, 45.0]


def test_books_follow_each_image_to_its_frame() -> None:
    frames = [
        PublishedFrame(1.0, 1000 * MS, ALL),
        PublishedFrame(1.1, 1083 * MS, ("CAM_FRONT", "CAM_BACK")),  # left CAM_FRONT_RIGHT out
        PublishedFrame(1.3, 1250 * MS, ALL),
        PublishedFrame(1.4, 1333 * MS, ALL),  # with 1250, every frame that could take an image at 1275
    ]
    faults = [
        {"t": 0.9, "kind": "corrupt", "camera": "CAM_FRONT_RIGHT", "stamp_ns": 1091 * MS},  # left out
        {"t": 0.9, "kind": "truncated", "camera": "CAM_BACK", "stamp_ns": 1200 * MS},  # frame 1167 lost
        {"t": 0.9, "kind": "wrong_size", "camera": "CAM_BACK", "stamp_ns": 1275 * MS},  # used: unnoticed
        {"t": 0.9, "kind": "silence", "camera": "CAM_BACK", "seconds": 1.0},  # a start line only
    ]
    rows, left_out = fault_rows(faults, frames, 25 * MS, 41 * MS)
    by_kind = {r.kind: r for r in rows}
    assert (by_kind["corrupt"].left_out, by_kind["truncated"].not_processed) == (1, 1)
    assert by_kind["wrong_size"].uncounted == 1 and by_kind["silent"].injected == 0
    assert left_out == {("decode_error", "CAM_FRONT_RIGHT"): 1}


def test_a_bad_images_reason_is_shown_but_the_frame_totals_decide() -> None:
    # The corrupt CAM_FRONT_RIGHT image came after its frame went out: the node left the camera out
    # as `missing`. The books guessed decode_error; the camera's total still balances.
    frames = [PublishedFrame(1.1, 1083 * MS, ("CAM_FRONT", "CAM_BACK"))]
    left_out = {("decode_error", "CAM_FRONT_RIGHT"): 1}
    pipeline = {"counts.frames.processed": "1", "counts.frames.without.missing.CAM_FRONT_RIGHT": "1"}
    books = {c.what: c for c in checks([], frames, left_out, pipeline, {}, ALL, "CAM_FRONT")}
    reason = books["injected decode_error images left out, CAM_FRONT_RIGHT"]
    assert not reason.ok and not reason.gating
    assert books["frames published without CAM_FRONT_RIGHT = frames.without.*.CAM_FRONT_RIGHT"].ok
    # Had the node not counted the absence at all, the total would fail.
    del pipeline["counts.frames.without.missing.CAM_FRONT_RIGHT"]
    books = {c.what: c for c in checks([], frames, left_out, pipeline, {}, ALL, "CAM_FRONT")}
    total = books["frames published without CAM_FRONT_RIGHT = frames.without.*.CAM_FRONT_RIGHT"]
    assert not total.ok and total.gating


@pytest.fixture(scope="module")
def soak_inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("soak")
    # 6 s: an injected time jump waits until 5 s into the bag
    write_dataset(root / "data", scenes=1, seed=11, split="val", duration_s=6.0, workers=1, progress=False)
    name = json.loads((root / "data" / "v1.0-trainval" / "scene.json").read_text())[0]["name"]
    assert (
        syncl(["convert", str(root / "data"), "--scene", name, "--out", str(root / "bag"), "--no-progress"])
        == 0
    )
    torch.manual_seed(0)
    exp = Experiment("soak", model=TINY_MODEL)
    return {"model": save_checkpoint(root / "m.pt", TrackerNet(TINY_MODEL), exp, {}), "bag": root / "bag"}


def test_soak_node_stays_up_and_counts_every_fault(soak_inputs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["bench", "soak", "--model", str(soak_inputs["model"]), "--bag", str(soak_inputs["bag"])]
    args += [
        "--duration",
        "25s",
        "--seed",
        "3",
        "--fault-every",
        "1",
        "--backend",
        "torch",
        "--out",
        str(out),
    ]
    syncl(args)
    summary = json.loads((out / "soak.json").read_text())
    assert (out / "soak.md").read_text().startswith("syncl bench soak:")
    assert summary["node_alive"] and summary["frames"] > 50
    faults = {r["kind"]: r for r in summary["faults"]}
    images = ("corrupt", "truncated", "wrong_size", "silent")
    assert (
        sum(faults[k]["injected"] for k in images) >= 5 and sum(r["injected"] for r in faults.values()) >= 15
    )
    assert all(faults[k]["used"] == 0 for k in images if k != "silent"), "a bad image the node did not notice"
    assert sum(faults[k]["left_out"] for k in images) > 0
    failed = [c for c in summary["checks"] if not c["ok"] and c["gating"]]
    assert failed == [], failed  # every frame and every injected fault accounted for
