"""One event stream for progress: the terminal (Rich), the JSON-lines build log, later the API.

Producers call ``monitor.emit(Event(...))`` or use ``monitor.stage(...)``, a context manager that
emits start/end events with the elapsed time (nesting is expressed by the fields set).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import IO, Any, Literal, Protocol

from rich.console import Console
from rich.markup import escape

# "progress": how far a long operation is (``data``: ``done`` and ``total``); sinks that print lines
# ignore it, the live display draws it.
EventKind = Literal["start", "end", "output", "info", "warning", "error", "progress"]


@dataclass
class Event:
    """A progress event. ``scope`` says what started/ended: build, stage, component, phase, step."""

    kind: EventKind
    scope: str = ""
    message: str = ""
    build: str | None = None
    component: str | None = None
    phase: str | None = None
    step: str | None = None
    status: str | None = None
    exit_code: int | None = None
    duration: float | None = None
    data: dict[str, Any] = field(default_factory=dict)
    time: float = field(default_factory=time.time)

    def to_json(self) -> str:
        record = {k: v for k, v in asdict(self).items() if v not in (None, "", {})}
        return json.dumps(record, sort_keys=True, default=str)


class Monitor:
    """Base monitor: ignores everything. Subclasses override ``emit``."""

    def emit(self, event: Event) -> None:
        """Receive one event."""

    def close(self) -> None:
        """Flush and release resources."""

    def info(self, message: str, **fields: Any) -> None:
        self.emit(Event("info", message=message, **fields))

    def warning(self, message: str, **fields: Any) -> None:
        self.emit(Event("warning", message=message, **fields))

    def progress(self, scope: str, message: str) -> Callable[[int, int], None]:
        """A callback reporting ``(done, total)`` of ``message`` as progress events (any thread)."""
        return lambda done, total: self.emit(
            Event("progress", scope=scope, message=message, data={"done": done, "total": total})
        )

    @contextmanager
    def stage(self, scope: str, message: str, **fields: Any) -> Iterator[dict[str, Any]]:
        """Emit start/end around a block; the yielded dict's items land in the end event's data."""
        start = time.monotonic()
        self.emit(Event("start", scope=scope, message=message, **fields))
        result: dict[str, Any] = {}
        try:
            yield result
        except BaseException as exc:
            self.emit(
                Event(
                    "end",
                    scope=scope,
                    message=message,
                    status="failed",
                    duration=time.monotonic() - start,
                    data={"error": str(exc) or type(exc).__name__, **result},
                    **fields,
                )
            )
            raise
        status = str(result.pop("status", "success"))
        self.emit(
            Event(
                "end",
                scope=scope,
                message=message,
                status=status,
                duration=time.monotonic() - start,
                data=result,
                **fields,
            )
        )


class FanOut(Monitor):
    """Sends each event to several monitors."""

    def __init__(self, monitors: Sequence[Monitor]) -> None:
        self.monitors = list(monitors)

    def emit(self, event: Event) -> None:
        for m in self.monitors:
            m.emit(event)

    def close(self) -> None:
        for m in self.monitors:
            m.close()


class Redactor(Protocol):
    """Hides values in text (``kiln.secrets.Masker``)."""

    def mask(self, text: str) -> str: ...

    def mask_data(self, data: Any) -> Any: ...


class MaskingMonitor(Monitor):
    """Masks secret values in every event before any sink sees it: put it in front of the sinks
    (terminal, build log, AWSTOE log folder) so none can be reached unmasked."""

    def __init__(self, inner: Monitor, redactor: Redactor) -> None:
        self.inner = inner
        self.redactor = redactor

    def emit(self, event: Event) -> None:
        self.inner.emit(
            replace(
                event, message=self.redactor.mask(event.message), data=self.redactor.mask_data(event.data)
            )
        )

    def close(self) -> None:
        self.inner.close()


class JsonLinesMonitor(Monitor):
    """Appends every event but progress ticks as one JSON line (the build log file)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fh: IO[str] = open(path, "a", encoding="utf-8")
        self._lock = threading.Lock()

    def emit(self, event: Event) -> None:
        if event.kind == "progress":  # transient (bytes so far): the record keeps stages, not ticks
            return
        with self._lock:
            self._fh.write(event.to_json() + "\n")
            self._fh.flush()

    def close(self) -> None:
        self._fh.close()


class ListMonitor(Monitor):
    """Keeps events in memory (tests, API)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)


class ConsoleMonitor(Monitor):
    """Human progress on the terminal: nested start/end lines with timings, step output when verbose."""

    def __init__(self, console: Console | None = None, *, verbose: bool = False) -> None:
        self.console = console or Console(stderr=True, highlight=False, soft_wrap=True)
        self.verbose = verbose
        self._depth = 0

    def _indent(self) -> str:
        return "  " * self._depth

    def emit(self, event: Event) -> None:
        c = self.console
        if event.kind == "progress":
            return
        if event.kind == "start":
            c.print(f"{self._indent()}[bold]‣[/] {escape(event.message)}", markup=True)
            self._depth += 1
        elif event.kind == "end":
            self._depth = max(0, self._depth - 1)
            took = f" ({event.duration:.1f}s)" if event.duration is not None else ""
            colour = "green" if event.status in ("success", "cached", "skipped") else "red"
            c.print(
                f"{self._indent()}[{colour}]{event.status or 'done'}[/] {escape(event.message)}{took}",
                markup=True,
            )
        elif event.kind == "output":
            if self.verbose:
                c.print(f"{self._indent()}[dim]│ {escape(event.message)}[/]", markup=True, soft_wrap=True)
        elif event.kind == "warning":
            c.print(f"{self._indent()}[yellow]warning:[/] {escape(event.message)}", markup=True)
        elif event.kind == "error":
            c.print(f"{self._indent()}[red]error:[/] {escape(event.message)}", markup=True)
        else:
            c.print(f"{self._indent()}{escape(event.message)}", markup=False)
