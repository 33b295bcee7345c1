"""Tracking evaluation against the official devkit on a tiny generated val split.

Ground truth submitted as results must score perfectly; each kind of damage
(position noise, swapped ids, dropped tracks) must move its own metric the
expected way; bad inputs must give a clear error, never a traceback.
"""

from __future__ import annotations

import argparse
import copy
import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from syncl_ros.classes import TRACKING_CLASSES
from syncl_ros.eval import cli
from syncl_ros.eval.tracking import (
    EvalError,
    evaluate_tracking,
    ground_truth_results,
)

VERSION = "v1.0-trainval"
SPLIT = "val"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# The score fixture: scores a results dict under a name; returns (metrics, out_dir).
Score = Callable[[dict[str, Any], str], tuple[dict[str, Any], Path]]


@pytest.fixture(scope="session")
def dataroot(synth_val_root: Path) -> Path:
    """The shared synthetic val split (conftest.py): 2 scenes with official val names."""
    return synth_val_root


@pytest.fixture(scope="session")
def nusc(dataroot: Path) -> Any:
    from nuscenes import NuScenes

    return NuScenes(version=VERSION, dataroot=str(dataroot), verbose=False)


@pytest.fixture(scope="session")
def gt_results(nusc: Any) -> dict[str, Any]:
    return ground_truth_results(nusc, SPLIT)


@pytest.fixture(scope="session")
def score(dataroot: Path, tmp_path_factory: pytest.TempPathFactory) -> Score:
    """Write a results dict to disk and score it; returns (metrics, out_dir)."""

    def run(results: dict[str, Any], name: str) -> tuple[dict[str, Any], Path]:
        work = tmp_path_factory.mktemp(name)
        path = work / "results.json"
        path.write_text(json.dumps(results))
        out = work / "eval"
        return evaluate_tracking(path, dataroot, VERSION, SPLIT, out), out

    return run


@pytest.fixture(scope="session")
def gt_scored(score: Score, gt_results: dict[str, Any]) -> tuple[dict[str, Any], Path]:
    return score(gt_results, "gt")


def _scene_order(nusc: Any) -> list[list[str]]:
    """Sample tokens per scene, in time order."""
    scenes = []
    for scene in nusc.scene:
        tokens, token = [], scene["first_sample_token"]
        while token:
            tokens.append(token)
            token = nusc.get("sample", token)["next"]
        scenes.append(tokens)
    return scenes


# ---------------------------------------------------------------- oracle


def test_ground_truth_scores_perfectly(gt_scored: tuple[dict[str, Any], Path]) -> None:
    metrics, _ = gt_scored
    overall = metrics["overall"]
    assert overall["tp"] > 0, "the generated split must hold scored objects"
    assert overall["amota"] == pytest.approx(1.0)
    assert overall["mota"] == pytest.approx(1.0)
    assert overall["recall"] == pytest.approx(1.0)
    assert overall["amotp"] == pytest.approx(0.0, abs=1e-3)
    assert (overall["ids"], overall["frag"], overall["fp"], overall["fn"]) == (0, 0, 0, 0)
    scored = {c: m for c, m in metrics["per_class"].items() if m["amota"] is not None}
    assert scored, "at least one class has ground truth"
    assert all(m["amota"] == pytest.approx(1.0) for m in scored.values())


def test_metrics_files_written(gt_scored: tuple[dict[str, Any], Path]) -> None:
    metrics, out = gt_scored
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk == metrics
    devkit = json.loads((out / "metrics_summary.json").read_text())
    assert devkit["amota"] == pytest.approx(metrics["overall"]["amota"])
    assert (out / "metrics_details.json").is_file()
    assert set(metrics["per_class"]) == set(TRACKING_CLASSES)
    for key in ("amota", "amotp", "mota", "motp", "recall", "ids", "frag", "tp", "fp", "fn", "mt", "ml"):
        assert key in metrics["overall"]
    assert not list(out.glob(".metrics.json*")), "no temp file left behind"
    assert (out / "metrics.json").stat().st_mode & 0o044, "readable by others, like any output"


# ---------------------------------------------------------- perturbations


def test_position_noise_worsens_amotp_and_mota(
    score: Score, gt_results: dict[str, Any], gt_scored: tuple[dict[str, Any], Path]
) -> None:
    rng = np.random.default_rng(0)
    noisy = copy.deepcopy(gt_results)
    for boxes in noisy["results"].values():
        for box in boxes:
            box["translation"][0] += float(rng.normal(0.0, 1.0))
            box["translation"][1] += float(rng.normal(0.0, 1.0))
    metrics, _ = score(noisy, "noise")
    perfect = gt_scored[0]["overall"]
    assert metrics["overall"]["amotp"] > perfect["amotp"] + 0.3
    assert metrics["overall"]["motp"] > perfect["motp"] + 0.3
    assert metrics["overall"]["mota"] < perfect["mota"]
    assert metrics["overall"]["amota"] < perfect["amota"]


def _ego_xy(nusc: Any, sample_token: str) -> NDArray[np.float64]:
    sample_data = nusc.get("sample_data", nusc.get("sample", sample_token)["data"]["LIDAR_TOP"])
    return np.array(nusc.get("ego_pose", sample_data["ego_pose_token"])["translation"][:2])


def _swappable(nusc: Any, results: dict[str, Any], frames: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Boxes present in every given frame and well inside the scored range (<= 30 m from the
    ego; the devkit ignores boxes beyond 40-50 m), by class, as seen in the first frame."""
    by_frame = [
        {
            b["tracking_id"]: b
            for b in results[token]
            if np.hypot(*(np.array(b["translation"][:2]) - _ego_xy(nusc, token))) < 30.0
        }
        for token in frames
    ]
    common = set(by_frame[0]).intersection(*by_frame[1:])
    by_class: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for track_id in sorted(common):
        by_class[by_frame[0][track_id]["tracking_name"]].append(by_frame[0][track_id])
    return by_class


def _swap_pair(nusc: Any, results: dict[str, Any]) -> tuple[list[str], str, str]:
    """Two same-class tracks, scored and well apart in a mid-scene frame and the next;
    returns the scene's samples from that frame on and the two ids."""
    for samples in _scene_order(nusc):
        for k in range(1, len(samples) - 1):
            for boxes in _swappable(nusc, results, samples[k : k + 2]).values():
                for i, a in enumerate(boxes):
                    for b in boxes[i + 1 :]:
                        # Farther apart than the 2 m match gate, so the swap cannot be absorbed.
                        if np.hypot(*np.subtract(a["translation"][:2], b["translation"][:2])) > 4.0:
                            return samples[k:], a["tracking_id"], b["tracking_id"]
    raise AssertionError("the generated split has no two same-class objects to swap")


def test_swapped_ids_raise_ids(
    nusc: Any, score: Score, gt_results: dict[str, Any], gt_scored: tuple[dict[str, Any], Path]
) -> None:
    swapped = copy.deepcopy(gt_results)
    later, first, second = _swap_pair(nusc, swapped["results"])
    for token in later:
        for box in swapped["results"][token]:
            if box["tracking_id"] in (first, second):
                box["tracking_id"] = second if box["tracking_id"] == first else first
    metrics, _ = score(swapped, "swap")
    assert gt_scored[0]["overall"]["ids"] == 0
    assert metrics["overall"]["ids"] == 2  # each of the two objects changes hypothesis once
    assert metrics["overall"]["mota"] < 1.0
    # Positions are untouched: every box still matches, only the identities are wrong.
    assert metrics["overall"]["recall"] == pytest.approx(1.0)


@pytest.fixture(scope="session")
def dropped_scored(score: Score, gt_results: dict[str, Any]) -> tuple[dict[str, Any], Path]:
    """The ground truth with every third track left out, scored."""
    # Whole tracks are dropped: gaps inside a track would be filled back in by
    # the devkit's interpolation and cost nothing.
    ids = sorted({b["tracking_id"] for boxes in gt_results["results"].values() for b in boxes})
    dropped = set(ids[::3])
    thinned = copy.deepcopy(gt_results)
    for token, boxes in thinned["results"].items():
        thinned["results"][token] = [b for b in boxes if b["tracking_id"] not in dropped]
    return score(thinned, "drop")


def test_dropped_tracks_lower_recall(
    dropped_scored: tuple[dict[str, Any], Path], gt_scored: tuple[dict[str, Any], Path]
) -> None:
    metrics, _ = dropped_scored
    perfect = gt_scored[0]["overall"]
    assert metrics["overall"]["recall"] < perfect["recall"]
    assert metrics["overall"]["fn"] > 0
    assert metrics["overall"]["fp"] == 0
    assert metrics["overall"]["amota"] < perfect["amota"]


# ------------------------------------------------------------- bad inputs


def test_missing_sample_is_a_clear_error(dataroot: Path, gt_results: dict[str, Any], tmp_path: Path) -> None:
    partial = copy.deepcopy(gt_results)
    del partial["results"][sorted(partial["results"])[0]]
    path = tmp_path / "partial.json"
    path.write_text(json.dumps(partial))
    with pytest.raises(EvalError, match=r"miss 1 of the \d+ samples of split 'val'"):
        evaluate_tracking(path, dataroot, VERSION, SPLIT, tmp_path / "out")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": "v1.0-mini"}, "not found"),
        ({"split": "mini_val"}, "belongs to a v1.0-mini dataset"),
        ({"split": "train"}, "holds no scene of split 'train'"),
        ({"split": "nonsense"}, "unknown split"),
        ({"results": "absent.json"}, "results file not found"),
    ],
)
def test_bad_inputs_are_clear_errors(
    dataroot: Path, gt_results: dict[str, Any], tmp_path: Path, change: dict[str, str], message: str
) -> None:
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt_results))
    kwargs: dict[str, Any] = {"results_path": path, "dataroot": dataroot, "version": VERSION, "split": SPLIT}
    if "results" in change:
        kwargs["results_path"] = tmp_path / change.pop("results")
    kwargs.update(change)
    with pytest.raises(EvalError, match=message):
        evaluate_tracking(out_dir=tmp_path / "out", **kwargs)


def test_unknown_tracking_name_is_a_clear_error(
    dataroot: Path, gt_results: dict[str, Any], tmp_path: Path
) -> None:
    bad = copy.deepcopy(gt_results)
    box = next(b for boxes in bad["results"].values() for b in boxes)
    box["tracking_name"] = "traffic_cone"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(EvalError, match="tracking_name 'traffic_cone'"):
        evaluate_tracking(path, dataroot, VERSION, SPLIT, tmp_path / "out")


def test_empty_submission_is_a_clear_error(
    dataroot: Path, gt_results: dict[str, Any], tmp_path: Path
) -> None:
    empty = {"meta": gt_results["meta"], "results": {token: [] for token in gt_results["results"]}}
    path = tmp_path / "empty.json"
    path.write_text(json.dumps(empty))
    with pytest.raises(EvalError, match="no box at all"):
        evaluate_tracking(path, dataroot, VERSION, SPLIT, tmp_path / "out")


# -------------------------------------------------------------------- CLI


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="syncl eval")
    cli.configure_parser(parser)
    return parser.parse_args(argv)


def _assert_png(path: Path, min_bytes: int = 20_000) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path.name} is not a PNG"
    assert len(data) > min_bytes, f"{path.name} is suspiciously small ({len(data)} bytes)"
    import matplotlib.image

    image = matplotlib.image.imread(path)
    assert image.shape[0] > 300 and image.shape[1] > 500
    assert float(image[..., :3].std()) > 0.05, f"{path.name} looks blank"


@pytest.fixture(scope="session")
def cli_run(
    dataroot: Path, gt_results: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> tuple[int, Path]:
    work = tmp_path_factory.mktemp("cli")
    results = work / "results.json"
    results.write_text(json.dumps(gt_results))
    out = work / "out"
    argv = [
        str(results),
        "--dataroot",
        str(dataroot),
        "--version",
        VERSION,
        "--split",
        SPLIT,
        "--out",
        str(out),
    ]
    return cli.main(_parse(argv)), out


def test_cli_writes_metrics_and_pictures(cli_run: tuple[int, Path], nusc: Any) -> None:
    code, out = cli_run
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["overall"]["amota"] == pytest.approx(1.0)
    assert (out / "metrics_summary.json").is_file() and (out / "metrics_details.json").is_file()
    _assert_png(out / cli.AMOTA_PNG)
    # Default scene: the first scene of the split present in the dataset.
    bevs = sorted(out.glob("bev_*.png"))
    assert [p.name for p in bevs] == [f"bev_{_first_split_scene(nusc)}.png"]
    _assert_png(bevs[0], min_bytes=50_000)


def _first_split_scene(nusc: Any) -> str:
    from nuscenes.utils.splits import create_splits_scenes

    present = {s["name"] for s in nusc.scene}
    scenes: list[str] = create_splits_scenes()[SPLIT]
    return next(n for n in scenes if n in present)


def test_cli_prints_table(
    dataroot: Path, gt_results: dict[str, Any], tmp_path: Path, nusc: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "results.json"
    results.write_text(json.dumps(gt_results))
    scene = sorted(s["name"] for s in nusc.scene)[-1]
    argv = [str(results), "--dataroot", str(dataroot), "--out", str(tmp_path / "o"), "--scene", scene]
    assert cli.main(_parse(argv)) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if line.startswith("class"))
    assert header.split()[:6] == ["class", "AMOTA", "AMOTP", "MOTA", "MOTP", "RECALL"]
    overall = next(line for line in lines if line.startswith("overall")).split()
    assert overall[1] == "1.000" and overall[6] == "0"  # AMOTA, IDS
    assert (tmp_path / "o" / f"bev_{scene}.png").is_file()


def test_cli_scores_each_scene_on_its_own(
    dataroot: Path, gt_results: dict[str, Any], nusc: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The ground truth of one scene and nothing in the other: each scene's own figures show it."""
    kept, emptied = sorted(nusc.scene, key=lambda s: s["name"])
    results = copy.deepcopy(gt_results)
    emptied_samples = set(_scene_order(nusc)[nusc.scene.index(emptied)])
    for token in emptied_samples:
        results["results"][token] = []
    path = tmp_path / "r.json"
    path.write_text(json.dumps(results))
    out = tmp_path / "o"
    argv = [str(path), "--dataroot", str(dataroot), "--out", str(out), "--no-plots", "--per-scene"]
    assert cli.main(_parse(argv)) == 0
    per_scene = json.loads((out / "metrics.json").read_text())["per_scene"]
    assert list(per_scene) == [kept["name"], emptied["name"]]
    assert per_scene[kept["name"]]["amota"] == pytest.approx(1.0) and per_scene[kept["name"]]["fn"] == 0
    assert per_scene[emptied["name"]]["recall"] == 0.0 and per_scene[emptied["name"]]["tp"] == 0
    printed = capsys.readouterr().out.splitlines()
    assert next(line for line in printed if line.startswith(kept["name"])).split()[1] == "1.000"
    assert any(line.startswith("scene AMOTA: median") for line in printed)


def test_cli_missing_sample_exits_non_zero_without_traceback(
    dataroot: Path, gt_results: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    partial = copy.deepcopy(gt_results)
    del partial["results"][sorted(partial["results"])[-1]]
    results = tmp_path / "partial.json"
    results.write_text(json.dumps(partial))
    code = cli.main(_parse([str(results), "--dataroot", str(dataroot), "--out", str(tmp_path / "o")]))
    err = capsys.readouterr().err
    assert code != 0
    assert "syncl eval: error: results miss 1 of the" in err
    assert "Traceback" not in err
    assert not (tmp_path / "o").exists(), "nothing is written for rejected inputs"


def test_cli_unknown_scene_fails_before_scoring(
    dataroot: Path, tmp_path: Path, gt_results: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "r.json"
    results.write_text(json.dumps(gt_results))
    argv = [str(results), "--dataroot", str(dataroot), "--out", str(tmp_path / "o"), "--scene", "scene-0001"]
    assert cli.main(_parse(argv)) == 1
    assert "not in split 'val'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_syncl_command_runs_eval(
    dataroot: Path, gt_results: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from syncl_ros import cli as syncl_cli

    results = tmp_path / "r.json"
    results.write_text(json.dumps(gt_results))
    out = tmp_path / "o"
    argv = ["eval", str(results), "--dataroot", str(dataroot), "--out", str(out), "--no-plots"]
    assert syncl_cli.main(argv) == 0
    assert json.loads((out / "metrics.json").read_text())["overall"]["amota"] == pytest.approx(1.0)
    assert not list(out.glob("*.png"))
    assert "overall" in capsys.readouterr().out


# ------------------------------------------------------ side-by-side table


def test_side_by_side_table_of_eval_folders(
    gt_scored: tuple[dict[str, Any], Path], dropped_scored: tuple[dict[str, Any], Path], tmp_path: Path
) -> None:
    from syncl_ros.tools import side_by_side

    (gt, gt_dir), (drop, drop_dir) = gt_scored, dropped_scored
    md = tmp_path / "table.md"
    argv = [f"two seeds={gt_dir},{drop_dir}", f"one run={drop_dir}", "--markdown", str(md)]
    assert side_by_side.main(argv) == 0
    rows = md.read_text().splitlines()
    assert rows[0].startswith("| run | AMOTA | AMOTP | recall | MOTA | IDS | TP | FP |")
    assert len(rows) == 2 + 3 + 1, "header, rule, two runs and their mean, one single run"
    mean_amota = (gt["overall"]["amota"] + drop["overall"]["amota"]) / 2
    lo, hi = sorted([drop["overall"]["amota"], gt["overall"]["amota"]])
    assert rows[4].startswith(f"| **two seeds, mean (range)** | **{mean_amota:.3f} ({lo:.3f}–{hi:.3f})** |")
    mean_tp = (gt["overall"]["tp"] + drop["overall"]["tp"]) / 2
    assert f"| {mean_tp:.0f} |" in rows[4]
    assert rows[5].startswith(f"| one run | {drop['overall']['amota']:.3f} |")


def test_side_by_side_rejects_bad_arguments(
    gt_scored: tuple[dict[str, Any], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from syncl_ros.tools import side_by_side

    assert side_by_side.main([str(gt_scored[1])]) == 2
    assert "expected LABEL=DIR" in capsys.readouterr().err
    assert side_by_side.main([f"x={tmp_path / 'nowhere'}"]) == 2
    assert "no metrics.json" in capsys.readouterr().err
