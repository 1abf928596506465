"""A corpus of realistic component documents (tests/toe/corpus/), each run in a fresh copy of a real
Debian root. A document's first comment lines say what to expect::

    # expect: success | failed | success-with-ignored-failure
    # phases: build,validate            (default: build,validate,test)
    # parameters: Name=value,Other=x    (BaseUrl, when declared, points at a local HTTP server)
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from kiln.monitor import ListMonitor
from kiln.sandbox.bwrap import Bind, SandboxOptions
from kiln.toe.config import parse_parameters
from kiln.toe.document import load_document
from kiln.toe.runner import RootfsTarget, run_document
from tests.toe.httpserver import serve

CORPUS = Path(__file__).parent / "corpus"
DOCUMENTS = sorted(CORPUS.glob("*.yaml"))
TEST_CACHE = Path(os.environ.get("KILN_TEST_CACHE", "/var/tmp/kiln-test-cache"))


def header(path: Path) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        key, _, value = line.lstrip("# ").partition(":")
        fields[key.strip()] = value.strip()
    return fields


def test_corpus_is_large_and_valid() -> None:
    assert len(DOCUMENTS) >= 40
    actions = set()
    for path in DOCUMENTS:
        doc = load_document(path)
        assert header(path).get("expect") in ("success", "failed", "success-with-ignored-failure"), path
        actions |= {s.action for p in doc.phases for s in p.steps}
    # The corpus exercises every Linux action that needs no external service.
    assert actions >= {
        "ExecuteBash", "ExecuteBinary", "ExecuteDocument", "Assert", "WebDownload", "UpdateOS", "Reboot",
        "AppendFile", "CopyFile", "CopyFolder", "MoveFile", "MoveFolder", "CreateFile", "CreateFolder",
        "CreateSymlink", "DeleteFile", "DeleteFolder", "ListFiles", "ReadFile", "SetFileEncoding",
        "SetFilePermissions", "SetFolderPermissions", "SetFolderOwner",
    }  # fmt: skip


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with serve() as (url, _hits):
        yield url


@pytest.fixture(scope="module")
def apt_binds() -> list[Bind]:
    """Share downloaded packages and lists between corpus documents (like the build does)."""
    debs = TEST_CACHE / "debs"
    lists = TEST_CACHE / "apt-lists" / "toe-corpus"
    (debs / "partial").mkdir(parents=True, exist_ok=True)
    (lists / "partial").mkdir(parents=True, exist_ok=True)
    return [
        Bind(debs, "/var/cache/apt/archives", readonly=False),
        Bind(lists, "/var/lib/apt/lists", readonly=False),
    ]


@pytest.mark.e2e
@pytest.mark.parametrize("path", DOCUMENTS, ids=[p.stem for p in DOCUMENTS])
def test_corpus_document(path: Path, rootfs: Path, base_url: str, apt_binds: list[Bind]) -> None:
    fields = header(path)
    doc = load_document(path)
    parameters = parse_parameters(fields.get("parameters", ""))
    if any(p.name == "BaseUrl" for p in doc.parameters):
        parameters["BaseUrl"] = base_url
    phases = fields.get("phases", "build,validate,test").split(",")
    monitor = ListMonitor()
    with RootfsTarget(rootfs, SandboxOptions(binds=apt_binds)) as target:
        result = run_document(doc, phases=phases, parameters=parameters, target=target, monitor=monitor)
    output = "\n".join(e.message for e in monitor.events if e.kind == "output")
    assert result.status == fields["expect"], f"{result.failure_message}\n--- output ---\n{output}"
    if result.status == "failed":
        assert result.failure_message and f"document {doc.name}, phase " in result.failure_message
