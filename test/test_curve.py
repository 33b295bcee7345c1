"""Learning-curve bookkeeping: one file per scoring set and tracker, and the best run by its last score."""

from pathlib import Path

import pytest

from syncl_ros.tools.curve import best_run, curve_name


def test_curve_files_are_named_by_scoring_set_and_tracker() -> None:
    assert curve_name(Path("data/synth_dev")) == "curve_synth_dev_queries.jsonl"
    assert curve_name(Path("data/synth_val"), "greedy") == "curve_synth_val_greedy.jsonl"


def test_best_run_judges_the_last_snapshot() -> None:
    a, b, c = Path("a"), Path("b"), Path("c")
    curves = {
        a: [{"step": 1, "amota": 0.5}, {"step": 2, "amota": 0.1}],  # best early, worse at the end
        b: [{"step": 1, "amota": 0.2}, {"step": 2, "amota": 0.3}],
        c: [],  # not scored yet
    }
    assert best_run(curves) == b
    with pytest.raises(ValueError, match="no run"):
        best_run({c: []})


def test_cli_needs_a_run_to_score(capsys: pytest.CaptureFixture[str]) -> None:
    from syncl_ros.tools.curve import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--dataroot", "data/synth_dev"])
    assert exit_info.value.code == 2
    assert "give run folders, --greedy RUN, or both" in capsys.readouterr().err
