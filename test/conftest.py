import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Shared test helpers (e.g. training_fixtures) live next to the tests.
sys.path.insert(0, str(Path(__file__).parent))

# Under pytest-xdist (`make test`: two workers) each worker's nodes, players and recorders talk on
# a ROS domain of their own, so that two DDS tests running at once never see each other's topics.
# Set before any test creates a ROS context; child processes inherit it. 210+ stays clear of the
# domains test_ros_player draws (1-200) and within Fast DDS's port range (0-232).
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
if _WORKER.startswith("gw"):
    os.environ["ROS_DOMAIN_ID"] = str(210 + int(_WORKER[2:]))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that needs the synthetic dataset below is slow: building it takes most of a minute."""
    for item in items:
        if "synth_val_root" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def synth_val_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic val split shared by the tests: 2 scenes of 2.5 s (5 key frames each)."""
    from syncl_ros.data.synth.writer import write_dataset

    root = tmp_path_factory.mktemp("synth_val")
    write_dataset(root, scenes=2, seed=7, split="val", duration_s=2.5, workers=2, progress=False)
    return root


@pytest.fixture(scope="session")
def val_nusc(synth_val_root: Path) -> Any:
    """The devkit's view of the shared synthetic val split."""
    from nuscenes import NuScenes

    return NuScenes(version="v1.0-trainval", dataroot=str(synth_val_root), verbose=False)


@pytest.fixture(scope="session")
def val_samples(synth_val_root: Path) -> list[str]:
    from syncl_ros.eval.tracking import split_sample_tokens

    return split_sample_tokens(synth_val_root, "v1.0-trainval", "val")


@pytest.fixture(scope="session")
def val_truth(val_nusc: Any) -> dict[str, list[dict[str, Any]]]:
    """The split's ground truth as tracking results (every scored box, score 1)."""
    from syncl_ros.eval.tracking import ground_truth_results

    results: dict[str, list[dict[str, Any]]] = ground_truth_results(val_nusc, "val")["results"]
    return results


# The one honest skip: the "TensorRT is missing" path cannot run where TensorRT is installed.
# In CI (CI=true) every other skip fails the run, so that a missing rclpy or a broken import of
# our own can never pass as "skipped".
ALLOWED_CI_SKIPS = ("TensorRT is installed here",)


def _ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _fail_skip_in_ci(report: pytest.TestReport | pytest.CollectReport) -> None:
    if not (_ci() and report.skipped) or hasattr(report, "wasxfail"):
        return
    reason = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if not any(allowed in reason for allowed in ALLOWED_CI_SKIPS):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI (CI=true), which counts as a failure: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    _fail_skip_in_ci(outcome.get_result())  # type: ignore[attr-defined]


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    outcome = yield
    _fail_skip_in_ci(outcome.get_result())  # type: ignore[attr-defined]
