"""Recall by camera: ground truth finds everything, and removing the boxes of the objects only
one camera sees costs that camera's column and no other."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from nuscenes import NuScenes

from syncl_ros.eval.by_camera import Visibility, format_rows, main, recall_by_camera, visibility
from syncl_ros.eval.tracking import ground_truth_results, split_sample_tokens
from syncl_ros.rig import CAMERA_CHANNELS

VERSION, SPLIT = "v1.0-trainval", "val"


@pytest.fixture(scope="module")
def nusc(synth_val_root: Path) -> NuScenes:
    return NuScenes(VERSION, str(synth_val_root), verbose=False)


@pytest.fixture(scope="module")
def seen(nusc: NuScenes, synth_val_root: Path) -> Visibility:
    return visibility(nusc, split_sample_tokens(synth_val_root, VERSION, SPLIT))


def test_ground_truth_finds_every_object_of_every_camera(nusc: NuScenes, seen: Visibility) -> None:
    recall = recall_by_camera(seen, ground_truth_results(nusc, SPLIT)["results"])
    assert sum(len(o) for cams in seen.values() for o in cams.values()) > 20
    assert all(recall[c] == 1.0 for c in CAMERA_CHANNELS if not np.isnan(recall[c])), recall


def test_objects_only_the_back_camera_sees_cost_its_column_only(nusc: NuScenes, seen: Visibility) -> None:
    results = copy.deepcopy(ground_truth_results(nusc, SPLIT)["results"])
    removed = 0
    for token, cameras in seen.items():
        back_only = [c for name, c in cameras["CAM_BACK"] if not _seen_elsewhere(name, c, cameras)]
        kept = [b for b in results[token] if not any(_at(b, c) for c in back_only)]
        removed += len(results[token]) - len(kept)
        results[token] = kept
    assert removed > 0
    recall = recall_by_camera(seen, results)
    assert recall["CAM_BACK"] < 1.0
    assert all(recall[c] == 1.0 for c in CAMERA_CHANNELS if c != "CAM_BACK" and not np.isnan(recall[c]))


def _seen_elsewhere(
    name: str, center: NDArray[np.float64], cameras: dict[str, list[tuple[str, NDArray[np.float64]]]]
) -> bool:
    return any(
        n == name and np.allclose(c, center)
        for ch, objs in cameras.items()
        if ch != "CAM_BACK"
        for n, c in objs
    )


def _at(box: dict[str, Any], center: NDArray[np.float64]) -> bool:
    return bool(np.allclose(box["translation"][:2], center))


def test_the_table_and_the_command(
    synth_val_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert format_rows({"x": dict.fromkeys(CAMERA_CHANNELS, 0.5)}).splitlines()[2].count("0.500") == 6
    assert main([str(tmp_path / "none.json"), "--dataroot", str(synth_val_root)]) == 2
    assert "not found" in capsys.readouterr().err
