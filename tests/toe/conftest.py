"""Fixtures for the component engine: writable Debian roots (overlay on the cached parent) and helpers."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kiln.monitor import ListMonitor
from kiln.rootfs.debian import ParentRoot
from kiln.toe.actions import Action, ActionContext, Outputs
from kiln.toe.document import Document, load_document
from kiln.toe.results import DocumentResult
from kiln.toe.runner import RootfsTarget, run_document


@pytest.fixture
def rootfs(bookworm_root: ParentRoot, tmp_path: Path) -> Iterator[Path]:
    """A writable Debian 12 root: an overlay on the cached parent (which is never modified)."""
    upper, work, merged = tmp_path / "upper", tmp_path / "work", tmp_path / "root"
    for d in (upper, work, merged):
        d.mkdir()
    opts = f"lowerdir={bookworm_root.rootfs},upperdir={upper},workdir={work}"
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, str(merged)], check=True)
    try:
        yield merged
    finally:
        subprocess.run(["umount", "-l", str(merged)], check=True)
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture
def tiny_root(tmp_path: Path) -> Path:
    """A root with only a few directories: for file actions that never start a process."""
    root = tmp_path / "tiny"
    for d in ("etc", "tmp", "var/tmp", "usr/bin"):
        (root / d).mkdir(parents=True)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\nweb:x:1234:1300::/srv:/bin/false\n")
    (root / "etc/group").write_text("root:x:0:\nwebgrp:x:1300:\nstaff:x:50:\n")
    return root


WriteDoc = Callable[[str], Document]


@pytest.fixture
def write_doc(tmp_path: Path) -> WriteDoc:
    counter = iter(range(1_000_000))

    def write(text: str) -> Document:
        path = tmp_path / f"doc{next(counter)}.yaml"
        path.write_text(text)
        return load_document(path)

    return write


def run(
    doc: Document,
    root: Path,
    *,
    phases: tuple[str, ...] = ("build", "validate", "test"),
    parameters: dict[str, str] | None = None,
    monitor: ListMonitor | None = None,
) -> DocumentResult:
    with RootfsTarget(root) as target:
        return run_document(
            doc, phases=phases, parameters=parameters or {}, target=target, monitor=monitor or ListMonitor()
        )


def action_context(root: Path, lines: list[str] | None = None) -> ActionContext:
    """A context for calling an action directly (file actions never start a process)."""
    sink = lines if lines is not None else []
    return ActionContext(
        target=RootfsTarget(root), document="test", phase="build", step="Step", timeout=30.0,
        output=sink.append,
    )  # fmt: skip


def call(root: Path, action: str, inputs: Any, lines: list[str] | None = None) -> Outputs:
    """Validate ``inputs`` with the action's model and run it on ``root``."""
    cls = Action.registry[action]
    instance = cls()
    return instance.run(action_context(root, lines), instance.parse(inputs))
