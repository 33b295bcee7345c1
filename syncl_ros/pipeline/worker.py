"""One worker thread with a one-slot mailbox: while it is busy, a newer job
replaces the waiting one (latest wins, bounded memory, counted drops)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class LatestWorker:
    def __init__(
        self,
        handle: Callable[[Any], None],
        on_error: Callable[[BaseException], None],
        name: str = "syncl-worker",
    ) -> None:
        self._handle = handle
        self._on_error = on_error
        self._cond = threading.Condition()
        self._job: Any = None
        self._has_job = False
        self._busy = False
        self._stop = False
        self.replaced = 0  # jobs dropped because a newer one arrived first
        self.done = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Any) -> None:
        with self._cond:
            if self._has_job:
                self.replaced += 1
            self._job, self._has_job = job, True
            self._cond.notify()

    def idle(self) -> bool:
        with self._cond:
            return not self._has_job and not self._busy

    def wait_idle(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: not self._has_job and not self._busy, timeout)

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._has_job or self._stop)
                if self._stop:
                    return
                job, self._job, self._has_job, self._busy = self._job, None, False, True
            try:
                self._handle(job)
            except Exception as err:  # a bad frame must never end the worker
                self._on_error(err)
            finally:
                with self._cond:
                    self._busy = False
                    self.done += 1
                    self._cond.notify_all()
