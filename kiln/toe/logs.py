"""The AWSTOE log folder: ``TOE_<YYYY-MM-DD_HH-MM-SS>_UTC-0_<executionId>/`` with ``document.yaml``,
``application.log`` (timestamped debug lines), ``console.log`` (step output), ``detailedoutput.json``
and ``chaining.json``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from kiln.monitor import Event, Monitor
from kiln.secrets import Masker
from kiln.toe.document import Document
from kiln.toe.results import FAILED, DocumentResult, combine, timestamp


def folder_name(execution_id: str, when: datetime) -> str:
    return f"TOE_{when.strftime('%Y-%m-%d_%H-%M-%S')}_UTC-0_{execution_id}"


class LogFolderMonitor(Monitor):
    """Writes ``application.log`` (every event) and ``console.log`` (output lines and step results)."""

    def __init__(self, folder: Path) -> None:
        self._app: IO[str] = open(folder / "application.log", "a", encoding="utf-8")
        self._console: IO[str] = open(folder / "console.log", "a", encoding="utf-8")
        self._lock = threading.Lock()

    def emit(self, event: Event) -> None:
        when = datetime.fromtimestamp(event.time, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        where = "/".join(p for p in (event.component, event.phase, event.step) if p)
        detail = ""
        if event.exit_code is not None:
            detail += f" exitCode={event.exit_code}"
        if event.duration is not None:
            detail += f" duration={event.duration:.3f}s"
        status = f" status={event.status}" if event.status else ""
        with self._lock:
            self._app.write(f"{when} {event.kind.upper():7} [{where}] {event.message}{status}{detail}\n")
            if event.data:
                self._app.write(f"{when} DEBUG   [{where}] {json.dumps(event.data, default=str)}\n")
            if event.kind == "output":
                self._console.write(event.message + "\n")
            elif event.kind == "start" and event.scope == "step":
                self._console.write(f"[{where}] starting\n")
            elif event.kind == "end" and event.scope == "step":
                self._console.write(f"[{where}] {event.status}{detail}\n")
                failure = event.data.get("failure") if event.data else None
                if failure:
                    self._console.write(f"{failure}\n")
            elif event.kind in ("warning", "error"):
                self._console.write(f"{event.kind}: {event.message}\n")

    def close(self) -> None:
        with self._lock:
            self._app.close()
            self._console.close()


@dataclass
class Execution:
    """One ``kiln toe run``: its id, folder and the results of every document."""

    execution_id: str
    folder: Path
    start: float
    documents: list[DocumentResult] = field(default_factory=list)
    end: float | None = None
    masker: Masker = field(default_factory=Masker)  # secret values in step inputs/outputs/failures

    @property
    def status(self) -> str:
        return combine([d.status for d in self.documents]) if self.documents else "success"

    @property
    def failure_message(self) -> str:
        message = next((d.failure_message or "" for d in self.documents if d.status == FAILED), "")
        return self.masker.mask(message)

    def counts(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for doc in self.documents:
            for key, value in doc.counts().items():
                total[key] = total.get(key, 0) + value
        return total

    def summary(self) -> dict[str, Any]:
        """The JSON awstoe prints when a run ends."""
        counts = self.counts()
        return {
            "executionId": self.execution_id,
            "status": self.status,
            "failedStepCount": counts.get("failedStepCount", 0),
            "executedStepCount": counts.get("executedStepCount", 0),
            "ignoredFailedStepCount": counts.get("ignoredFailedStepCount", 0),
            "failureMessage": self.failure_message,
            "logUrl": str(self.folder),
        }

    def detailed(self) -> dict[str, Any]:
        return {
            **self.summary(),
            "startTime": timestamp(self.start),
            "endTime": timestamp(self.end),
            "documents": self.masker.mask_data([d.detailed() for d in self.documents]),
        }


def create_folder(log_directory: Path, execution_id: str, when: datetime) -> Path:
    folder = log_directory.absolute() / folder_name(execution_id, when)
    folder.mkdir(parents=True, exist_ok=False)
    return folder


def write_documents(folder: Path, documents: Sequence[Document]) -> None:
    """``document.yaml``: the input documents (several are separated by ``---``)."""
    parts = [f"# source: {doc.path} ({doc.digest})\n{doc.text.rstrip()}\n" for doc in documents]
    (folder / "document.yaml").write_text("---\n".join(parts), encoding="utf-8")


def write_results(execution: Execution) -> None:
    """``detailedoutput.json`` and ``chaining.json`` (written atomically)."""
    _write_json(execution.folder / "detailedoutput.json", execution.detailed())
    chaining = {
        "executionId": execution.execution_id,
        "documents": execution.masker.mask_data(
            [
                {"name": d.name, "filePath": d.path, "resolutions": d.chaining, "state": d.chain}
                for d in execution.documents
            ]
        ),
    }
    _write_json(execution.folder / "chaining.json", chaining)


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)
