"""The node's worker thread: jobs wait in order in a bounded mailbox, the oldest is dropped when it
is full, and a failing job never ends the thread."""

import threading
from typing import Any

import pytest

from syncl_ros.pipeline.worker import LatestWorker


def held_worker(depth: int) -> tuple[LatestWorker, list[Any], threading.Event, threading.Event]:
    """A worker whose first job blocks until released, so that the next ones must wait."""
    done: list[Any] = []
    entered, gate = threading.Event(), threading.Event()

    def handle(job: Any) -> None:
        entered.set()
        gate.wait(30.0)
        if job == "bad":
            raise ValueError(job)
        done.append(job)

    return LatestWorker(handle, lambda err: done.append(repr(err)), depth=depth), done, entered, gate


@pytest.mark.parametrize(("depth", "kept"), [(1, [4]), (2, [3, 4]), (8, [1, 2, 3, 4])])
def test_waiting_jobs_run_in_order_and_the_oldest_is_dropped(depth: int, kept: list[int]) -> None:
    worker, done, entered, gate = held_worker(depth)
    worker.submit(0)
    assert entered.wait(30.0)
    for job in range(1, 5):
        worker.submit(job)
    assert not worker.idle()
    gate.set()
    assert worker.wait_idle(30.0)
    worker.stop()
    assert done == [0, *kept] and worker.replaced == 4 - len(kept) and worker.done == 1 + len(kept)


def test_jobs_in_flight_count_the_one_running_and_those_waiting() -> None:
    worker, _, entered, gate = held_worker(2)
    assert worker.in_flight() == 0
    worker.submit(0)
    assert entered.wait(30.0)
    worker.submit(1)
    worker.submit(2)
    assert worker.in_flight() == 3
    worker.submit(3)  # replaces 1
    assert worker.in_flight() == 3
    gate.set()
    assert worker.wait_idle(30.0)
    worker.stop()
    assert worker.in_flight() == 0


def test_a_failing_job_is_reported_and_the_next_one_runs() -> None:
    worker, done, _, gate = held_worker(1)
    gate.set()
    worker.submit("bad")
    assert worker.wait_idle(30.0)
    worker.submit("good")
    assert worker.wait_idle(30.0)
    worker.stop()
    assert done == ["ValueError('bad')", "good"]


def test_a_mailbox_needs_a_slot() -> None:
    with pytest.raises(ValueError, match="at least one slot"):
        LatestWorker(lambda job: None, lambda err: None, depth=0)
