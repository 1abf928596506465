"""Shared fixtures. Expensive things (the Debian parent, the .deb cache) are built once and cached
across sessions under KILN_TEST_CACHE (default /var/tmp/kiln-test-cache), keyed by their inputs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from kiln.monitor import ListMonitor
from kiln.rootfs.debian import DebianParent, ParentRoot, ensure_parent
from kiln.store import Store

TEST_CACHE = Path(os.environ.get("KILN_TEST_CACHE", "/var/tmp/kiln-test-cache"))
BOOKWORM = DebianParent(distribution="debian", suite="bookworm", mirror="http://deb.debian.org/debian")


@pytest.fixture(scope="session", autouse=True)
def _shared_cache() -> Iterator[None]:
    """Every test's data dir shares one cache directory (parents, .debs, layers are keyed)."""
    old = os.environ.get("KILN_CACHE_DIR")
    os.environ["KILN_CACHE_DIR"] = str(TEST_CACHE)
    yield
    if old is None:
        os.environ.pop("KILN_CACHE_DIR", None)
    else:
        os.environ["KILN_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """One private PostgreSQL server for the whole session (tests/catalog/postgres.py): every test
    directory that needs one (catalog, executors, events, pipelines, registry) creates its databases in it."""
    from tests.catalog.postgres import find_tool, postgres_server

    if not (find_tool("initdb") and find_tool("pg_ctl")):
        pytest.skip("PostgreSQL server binaries not installed (Debian package postgresql; make deps)")
    with postgres_server() as url:
        yield url


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """A fresh data directory (its own catalog, blobs, images) sharing the session cache."""
    return Store.open(tmp_path / "kiln-home")


@pytest.fixture(scope="session")
def bookworm_root(_shared_cache: None, tmp_path_factory: pytest.TempPathFactory) -> ParentRoot:
    """A real Debian 12 minbase root made by mmdebstrap, cached across sessions. Do not modify it:
    copy it or put an overlay on top."""
    store = Store.open(tmp_path_factory.mktemp("parent-home"))
    return ensure_parent(BOOKWORM, store, ListMonitor())


def pytest_sessionstart(session: pytest.Session) -> None:
    from tests.sourcetree import unignored_untracked

    session.config.stash[_UNTRACKED] = unignored_untracked()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if the tests left files in the source tree (outside .venv/ and ignored caches)."""
    from tests.sourcetree import unignored_untracked

    before = session.config.stash.get(_UNTRACKED, None)
    after = unignored_untracked()
    if before is None or after is None:
        return
    new = sorted(after - before)
    if new:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        message = "the tests wrote into the source tree: " + ", ".join(new[:20])
        if reporter is not None:
            reporter.write_line(message, red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_UNTRACKED = pytest.StashKey[set[str] | None]()
