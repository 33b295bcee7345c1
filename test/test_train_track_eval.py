"""`syncl train` -> checkpoint -> `syncl track --model` -> results for every sample -> `syncl eval`."""

import json
from pathlib import Path

import pytest
import torch

from syncl_ros.classes import TRACKING_CLASSES
from syncl_ros.cli import main
from syncl_ros.data.frames import NuScenesFrames
from syncl_ros.tools.curve import curve_name, read_curve, update_curve
from syncl_ros.tools.tune_tracker import grid, settings, sweep

pytestmark = pytest.mark.slow  # processes, datasets or training: see `make test-fast`


def payload_model(path: Path) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = torch.load(path, weights_only=True)["model"]
    return state


def test_train_track_eval_round_trip(synth_val_root: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    common = ["--dataroot", str(synth_val_root), "--split", "val", "--no-progress"]
    assert (
        main(
            [
                "train",
                "--config",
                "tiny",
                *common,
                "--out",
                str(run),
                "--max-steps",
                "2",
                "--set",
                "train.log_every=1",
                "--set",
                "train.snapshot_every=2",
            ]
        )
        == 0
    )
    ckpt = run / "last.pt"
    payload = torch.load(ckpt, weights_only=True)  # loads without unpickling code
    assert payload["metadata"]["step"] == 2 and payload["experiment"]["name"] == "tiny"
    log = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2] and all(r["loss"] > 0 for r in log)

    # resume continues the step count from the checkpoint
    assert (
        main(["train", "--config", "tiny", *common, "--out", str(run), "--max-steps", "3", "--resume"]) == 0
    )
    assert torch.load(ckpt, weights_only=True)["metadata"]["step"] == 3
    assert sorted(p.name for p in run.glob("step_*.pt")) == ["step_000002.pt"]  # weights-only snapshot

    # --init starts a new run from these weights: step 0, fresh schedule, earlier training recorded
    warm = tmp_path / "warm"
    assert main(["train", *common, "--out", str(warm), "--max-steps", "1", "--init", str(ckpt)]) == 0
    warm_meta = torch.load(warm / "last.pt", weights_only=True)["metadata"]
    assert warm_meta["step"] == 1 and warm_meta["init_from"]["step"] == 3

    released = tmp_path / "released.pt"
    assert main(["release", str(ckpt), str(released), "--note", "data=test split"]) == 0
    shipped = torch.load(released, weights_only=True)
    assert set(shipped) == {"format", "experiment", "metadata", "model"}  # no optimizer, no train-only layers
    assert shipped["metadata"]["data"] == "test split" and shipped["metadata"]["step"] == 3
    assert released.stat().st_size < ckpt.stat().st_size
    for name, tensor in shipped["model"].items():
        assert torch.equal(tensor, payload_model(ckpt)[name]), name
    assert main(["release", str(tmp_path / "missing.pt"), str(tmp_path / "x.pt")]) == 2

    # tuned tracker settings and the graph switches travel with the weights; nothing else may
    # change at release
    tuned = tmp_path / "tuned.pt"
    switch = "model.track_seed_memory=false"
    assert main(["release", str(ckpt), str(tuned), "--set", "tracker.birth_score=0.3", "--set", switch]) == 0
    tuned_payload = torch.load(tuned, weights_only=True)
    assert tuned_payload["experiment"]["tracker"]["birth_score"] == 0.3
    assert tuned_payload["experiment"]["model"]["track_seed_memory"] is False
    assert tuned_payload["metadata"]["tracker_overrides"] == ["tracker.birth_score=0.3"]
    assert tuned_payload["metadata"]["model_overrides"] == [switch]
    assert shipped["experiment"]["model"]["track_seed_memory"] is True
    assert shipped["experiment"]["tracker"]["birth_score"] == 0.4  # the config's, untouched
    assert main(["release", str(ckpt), str(tmp_path / "y.pt"), "--set", "model.embed_dim=64"]) == 2
    assert main(["release", str(ckpt), str(tmp_path / "z.pt"), "--set", "tracker.birth_score=2"]) == 2
    assert not (tmp_path / "y.pt").exists() and not (tmp_path / "z.pt").exists()

    results = tmp_path / "results.json"
    # an untrained model scores below the default thresholds; open them so that boxes reach the metrics
    loose = [
        "--set",
        "tracker.birth_score=0.0",
        "--set",
        "tracker.update_score=0.0",
        "--set",
        "tracker.output_score=0.0",
    ]
    assert (
        main(
            [
                "track",
                str(synth_val_root),
                "--split",
                "val",
                "--model",
                str(released),
                "--out",
                str(results),
                "--no-progress",
                *loose,
            ]
        )
        == 0
    )
    submitted = json.loads(results.read_text())
    frames = NuScenesFrames(synth_val_root, "v1.0-trainval", split="val")
    assert set(submitted["results"]) == set(frames.sample_tokens())
    boxes = [b for per_sample in submitted["results"].values() for b in per_sample]
    assert boxes and all(len(b["size"]) == 3 and b["tracking_id"].isdigit() for b in boxes)

    out = tmp_path / "eval"
    assert (
        main(
            [
                "eval",
                str(results),
                "--dataroot",
                str(synth_val_root),
                "--split",
                "val",
                "--out",
                str(out),
                "--no-plots",
            ]
        )
        == 0
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["overall"]["amota"] <= 1.0 and metrics["overall"]["gt"] > 0
    assert set(metrics["per_class"]) == set(TRACKING_CLASSES)

    # tracking by detection with the same network: every sample gets an entry
    greedy = tmp_path / "greedy.json"
    args = ["track", str(synth_val_root), "--split", "val", "--model", str(released), "--out", str(greedy)]
    assert main([*args, "--tracker", "greedy", "--no-progress"]) == 0
    assert set(json.loads(greedy.read_text())["results"]) == set(frames.sample_tokens())

    # the learning curve scores each snapshot once; an untrained one reports nothing, so AMOTA 0
    curve = update_curve(run, synth_val_root, "v1.0-trainval", "val")
    assert [(r["step"], r["boxes"], r["amota"]) for r in curve] == [(2, 0, 0.0)]
    assert update_curve(run, synth_val_root, "v1.0-trainval", "val") == curve
    assert len(read_curve(run, curve_name(synth_val_root))) == 1

    # threshold tuning: every setting scored, the best one named as release arguments
    rows = sweep(released, synth_val_root, "v1.0-trainval", "val", [settings(0.0), settings(0.99)])
    assert [r["settings"] for r in rows] == [settings(0.0), settings(0.99)]
    assert rows[0]["boxes"] > 0 and rows[1]["boxes"] == 0 and rows[1]["amota"] == 0.0
    expected = ["tracker.birth_score=0.3", "tracker.update_score=0.3", "tracker.output_score=0.2"]
    assert settings(0.3) == expected
    assert grid(["tracker.method=greedy", "tracker.greedy.max_age=2,5"]) == [
        ["tracker.method=greedy", "tracker.greedy.max_age=2"],
        ["tracker.method=greedy", "tracker.greedy.max_age=5"],
    ]
    with pytest.raises(ValueError, match=r"tracker\.KEY"):
        grid(["train.lr=1,2"])


def test_a_non_finite_step_is_skipped_and_counted(
    synth_val_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from syncl_ros.training.clip_pass import TrainingModel
    from syncl_ros.training.data import FrameSample

    real_forward = TrainingModel.forward
    calls = {"n": 0}

    def forward_with_one_nan(
        self: TrainingModel, clip: list[FrameSample], generator: torch.Generator
    ) -> dict[str, torch.Tensor]:
        out = real_forward(self, clip, generator)
        calls["n"] += 1
        if calls["n"] == 2:
            out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(TrainingModel, "forward", forward_with_one_nan)
    run = tmp_path / "run"
    args = ["train", "--dataroot", str(synth_val_root), "--split", "val", "--out", str(run)]
    assert main([*args, "--max-steps", "3", "--no-progress", "--set", "train.log_every=1"]) == 0
    payload = torch.load(run / "last.pt", weights_only=True)
    assert payload["metadata"]["skipped_steps"] == 1
    assert all(torch.isfinite(t).all() for t in payload["model"].values() if t.is_floating_point())
    assert "step 2: non-finite loss or gradient, update skipped" in capsys.readouterr().out
    log = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["skipped_steps"] for r in log] == [0.0, 1.0, 1.0]
