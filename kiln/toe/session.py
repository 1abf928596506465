"""One ``kiln toe run``: validate every document, then run them in turn and write the AWSTOE log folder."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

from kiln.errors import Issue, KilnError, ValidationFailed
from kiln.monitor import FanOut, MaskingMonitor, Monitor
from kiln.secrets import Masker
from kiln.toe.config import RunSettings
from kiln.toe.document import Document, check_parameters, parameter_errors
from kiln.toe.logs import Execution, LogFolderMonitor, create_folder, write_documents, write_results
from kiln.toe.nesting import load_checked
from kiln.toe.results import FAILED
from kiln.toe.runner import RunOptions, Target, run_document

EXECUTION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def load_all(settings: RunSettings) -> list[Document]:
    """Every document validated, and required parameters checked, before anything runs."""
    issues: list[Issue] = []
    documents: list[Document] = []
    for run in settings.documents:
        try:
            doc = load_checked(run.path)
        except ValidationFailed as exc:
            issues.extend(exc.issues)
            continue
        for _, message in parameter_errors(doc, run.parameters):
            issues.append(Issue(str(run.path), None, None, "parameters", message))
        documents.append(doc)
    if issues:
        raise ValidationFailed(issues)
    return documents


def unknown_parameters(documents: list[Document], settings: RunSettings) -> list[str]:
    """Names given that a document does not declare (awstoe ignores them; we say so)."""
    return [
        message
        for doc, run in zip(documents, settings.documents, strict=True)
        for message in check_parameters(doc, run.parameters)
        if "unknown parameter" in message
    ]


def execute(
    settings: RunSettings,
    target: Target,
    monitor: Monitor,
    options: RunOptions | None = None,
    masker: Masker | None = None,
) -> Execution:
    """Run each document's selected phases in turn (a failed document stops the run); ``masker``
    hides secret values in everything written or shown."""
    masker = masker or Masker()
    if not EXECUTION_ID.match(settings.execution_id):
        raise KilnError(
            f"invalid execution id {settings.execution_id!r}",
            hint="use letters, digits, '.', '_' and '-' (it becomes part of the log folder name)",
        )
    documents = load_all(settings)
    for doc in documents:
        for warning in doc.warnings:
            monitor.warning(str(warning))
    for message in unknown_parameters(documents, settings):
        monitor.warning(f"{message} (ignored)")
    started = time.time()
    folder = create_folder(
        settings.log_directory, settings.execution_id, datetime.fromtimestamp(started, UTC)
    )
    write_documents(folder, documents)
    execution = Execution(settings.execution_id, folder, started, masker=masker)
    log_monitor = LogFolderMonitor(folder)
    both = MaskingMonitor(FanOut([monitor, log_monitor]), masker)
    try:
        for doc, run in zip(documents, settings.documents, strict=True):
            result = run_document(
                doc, phases=settings.phases, parameters=run.parameters, target=target, monitor=both,
                label=doc.name, options=options,
            )  # fmt: skip
            execution.documents.append(result)
            if result.status == FAILED:
                break
    finally:
        execution.end = time.time()
        write_results(execution)
        log_monitor.close()
    return execution
