"""Fixtures for evidence tests: a private copy of the real Debian 12 root, and the vulnerability
fixtures in tests/fixtures/vuln (real excerpts; sources and licences in its MANIFEST.txt)."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
import typer

from kiln.cli.main import build_app
from kiln.evidence.sbom import ImageIdentity
from kiln.rootfs.debian import ParentRoot
from kiln.sandbox.run import run
from kiln.store import Store

VULN_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "vuln"
DATA = Path(__file__).resolve().parent / "data"

IMAGE = ImageIdentity(
    name="debian-web",
    version="1.2.0/3",
    digest="sha256:" + "ab" * 32,
    created=datetime(2026, 11, 23, 12, 0, tzinfo=UTC),
)

SAMPLE_METADATA = """Metadata-Version: 2.1
Name: Sample_Tool
Version: 1.4.2
License-Expression: Apache-2.0
"""


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    """The real Typer app, driven in-process by typer.testing.CliRunner."""
    return build_app()


@pytest.fixture
def home(store: Store, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh data dir that the CLI uses (KILN_HOME; any KILN_DATABASE_URL dropped)."""
    monkeypatch.delenv("KILN_DATABASE_URL", raising=False)
    monkeypatch.setenv("KILN_HOME", str(store.home))
    return store.home


def copy_root(source: Path, target: Path) -> Path:
    run(["cp", "-a", "--reflink=auto", str(source), str(target)])
    return target


@pytest.fixture(scope="session")
def image_root(bookworm_root: ParentRoot, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A read-only-by-convention copy of the real bookworm root with one Python distribution added."""
    root = copy_root(bookworm_root.rootfs, tmp_path_factory.mktemp("evidence") / "rootfs")
    info = root / "usr/local/lib/python3.11/dist-packages/sample_tool-1.4.2.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(SAMPLE_METADATA)
    return root


@pytest.fixture
def writable_root(bookworm_root: ParentRoot, tmp_path: Path) -> Path:
    """A private copy of the real root a test may change."""
    return copy_root(bookworm_root.rootfs, tmp_path / "rootfs")


@pytest.fixture(scope="session")
def vuln_fixtures() -> Path:
    assert VULN_FIXTURES.is_dir(), f"vulnerability fixtures missing: {VULN_FIXTURES}"
    return VULN_FIXTURES


def removed(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
