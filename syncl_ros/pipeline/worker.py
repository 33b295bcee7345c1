"""One worker thread with a bounded mailbox: while it is busy, jobs wait in order; when the
mailbox is full the oldest waiting job is dropped (latest wins, bounded memory, counted drops).
One slot gives the lowest latency; more let a replay be processed without drops."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any


class LatestWorker:
    def __init__(
        self,
        handle: Callable[[Any], None],
        on_error: Callable[[BaseException], None],
        name: str = "syncl-worker",
        depth: int = 1,
    ) -> None:
        if depth < 1:
            raise ValueError(f"the mailbox needs at least one slot, got {depth}")
        self._handle = handle
        self._on_error = on_error
        self._cond = threading.Condition()
        self._jobs: deque[Any] = deque()
        self._depth = depth
        self._busy = False
        self._stop = False
        self.replaced = 0  # jobs dropped because newer ones filled the mailbox
        self.done = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Any) -> None:
        with self._cond:
            if len(self._jobs) == self._depth:
                self._jobs.popleft()
                self.replaced += 1
            self._jobs.append(job)
            self._cond.notify()

    def idle(self) -> bool:
        with self._cond:
            return not self._jobs and not self._busy

    def in_flight(self) -> int:
        """Jobs submitted and not yet done: waiting in the mailbox or being handled."""
        with self._cond:
            return len(self._jobs) + int(self._busy)

    def wait_idle(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: not self._jobs and not self._busy, timeout)

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._jobs) or self._stop)
                if self._stop:
                    return
                job, self._busy = self._jobs.popleft(), True
            try:
                self._handle(job)
            except Exception as err:  # a bad frame must never end the worker
                self._on_error(err)
            finally:
                with self._cond:
                    self._busy = False
                    self.done += 1
                    self._cond.notify_all()
