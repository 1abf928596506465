"""Work the daemon hands off its tick loop (a run's release, a vulnerability feed's import): at most
``limit`` jobs at once, each in a thread; the loop collects the results with :meth:`Background.done`.

The threads are daemon threads: a daemon told twice to stop exits without waiting for them (what
they leave behind is made whole by the next daemon, see docs/pipelines.md)."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """A finished job: its result, or the exception it raised."""

    key: str
    result: T | None
    error: BaseException | None


class Background(Generic[T]):
    def __init__(self, limit: int, on_done: Callable[[], None] | None = None, name: str = "kiln-job") -> None:
        self.limit = max(limit, 1)
        self.on_done = on_done or (lambda: None)
        self.name = name
        self._lock = threading.Condition()
        self._waiting: deque[tuple[str, Callable[[], T]]] = deque()
        self._active: set[str] = set()
        self._threads = 0
        self._finished: list[Outcome[T]] = []

    def submit(self, key: str, job: Callable[[], T]) -> None:
        with self._lock:
            self._waiting.append((key, job))
            self._active.add(key)
            if self._threads < self.limit:
                self._threads += 1
                threading.Thread(target=self._work, name=f"{self.name}-{key[:12]}", daemon=True).start()

    def _work(self) -> None:
        while True:
            with self._lock:
                if not self._waiting:
                    self._threads -= 1
                    self._lock.notify_all()
                    return
                key, job = self._waiting.popleft()
            try:
                outcome: Outcome[T] = Outcome(key, job(), None)
            except BaseException as exc:  # whatever it was, the loop records it
                outcome = Outcome(key, None, exc)
            with self._lock:
                if key in self._active:  # not forgotten meanwhile
                    self._finished.append(outcome)
                self._lock.notify_all()
            self.on_done()

    def pending(self) -> set[str]:
        """Keys submitted and not yet collected by :meth:`done`."""
        with self._lock:
            return set(self._active)

    def busy(self) -> bool:
        """Whether a thread is still at work (also on a job forgotten meanwhile)."""
        with self._lock:
            return self._threads > 0

    def done(self) -> list[Outcome[T]]:
        """The jobs finished since the last call (each is returned once)."""
        with self._lock:
            finished, self._finished = self._finished, []
            for outcome in finished:
                self._active.discard(outcome.key)
            return finished

    def put_back(self, outcomes: list[Outcome[T]]) -> None:
        """Return results :meth:`done` gave out but the caller could not record (the next call
        gives them again)."""
        with self._lock:
            self._finished[:0] = outcomes
            self._active.update(o.key for o in outcomes)

    def forget(self, key: str) -> None:
        """Stop following ``key``: a job not started yet never starts; a running one's result is
        dropped when it ends."""
        with self._lock:
            self._waiting = deque(item for item in self._waiting if item[0] != key)
            self._active.discard(key)

    def wait(self, timeout: float) -> bool:
        """Until every submitted job has finished (results not yet collected); False on timeout."""
        with self._lock:
            return self._lock.wait_for(lambda: not self._waiting and self._threads == 0, timeout)
