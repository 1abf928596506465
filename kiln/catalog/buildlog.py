"""Reading a JSON-lines build log (records of :class:`kiln.monitor.Event`) back for people."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kiln.errors import KilnError

OK_STATUSES = frozenset({"success", "succeeded", "cached", "skipped", "ok", "passed"})


@dataclass(frozen=True)
class LogLine:
    """One record of the log, or a line that is not a record (``record`` is None)."""

    number: int
    raw: str
    record: dict[str, Any] | None


def read_log(path: Path) -> Iterator[LogLine]:
    """The log's lines in order; a torn last line (the build was killed mid-write) is kept as raw."""
    if not path.is_file():
        raise KilnError(
            f"build log {path} does not exist",
            hint="the data directory may have been cleaned, or the build never started writing its log",
        )
    with open(path, encoding="utf-8", errors="replace") as fh:
        for number, raw in enumerate(fh, 1):
            text = raw.rstrip("\n")
            if not text.strip():
                continue
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                value = None
            yield LogLine(number, text, value if isinstance(value, dict) else None)


def where(record: dict[str, Any]) -> str:
    """``component/phase/step`` as far as the record says."""
    return "/".join(str(record[k]) for k in ("component", "phase", "step") if record.get(k))


def clock(record: dict[str, Any]) -> str:
    stamp = record.get("time")
    if not isinstance(stamp, int | float):
        return " " * 12
    return datetime.fromtimestamp(stamp, UTC).strftime("%H:%M:%S.%f")[:-3]


def describe(record: dict[str, Any]) -> tuple[str, str]:
    """(marker, text) for one record: marker is ``start``, ``ok``, ``fail``, ``output``, ``warning``,
    ``error`` or ``info``; text is the message with status, exit code and duration."""
    kind = record.get("kind", "info")
    message = str(record.get("message", ""))
    if kind == "end":
        status = str(record.get("status") or "done")
        parts = [f"{status}: {message}" if message else status]
        if record.get("exit_code") not in (None, 0):
            parts.append(f"exit code {record['exit_code']}")
        if isinstance(record.get("duration"), int | float):
            parts.append(f"{record['duration']:.1f}s")
        error = (record.get("data") or {}).get("error")
        if error and status not in OK_STATUSES:
            parts.append(str(error))
        return ("ok" if status in OK_STATUSES else "fail"), " · ".join(parts)
    if kind in ("start", "output", "warning", "error"):
        return kind, message
    return "info", message
