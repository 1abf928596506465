"""The lifecycle transitions table, and that every change records who, when and why."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import timedelta

import pytest

from kiln.catalog import Catalog
from kiln.errors import UsageError
from kiln.lifecycle.states import STATES, IllegalTransition, change_state, history
from kiln.store import Store
from tests.lifecycle.conftest import NOW, record

# (from, to, allowed): Image Builder's rules. Back to active from deprecated or disabled is allowed;
# retired is final; a change to the state an image already has is refused.
TABLE = [
    ("active", "active", False),
    ("active", "deprecated", True),
    ("active", "disabled", True),
    ("active", "retired", True),
    ("deprecated", "active", True),
    ("deprecated", "deprecated", False),
    ("deprecated", "disabled", True),
    ("deprecated", "retired", True),
    ("disabled", "active", True),
    ("disabled", "deprecated", True),
    ("disabled", "disabled", False),
    ("disabled", "retired", True),
    ("retired", "active", False),
    ("retired", "deprecated", False),
    ("retired", "disabled", False),
    ("retired", "retired", False),
]


def test_table_covers_every_pair() -> None:
    assert {(a, b) for a, b, _ in TABLE} == {(a, b) for a in STATES for b in STATES}


@pytest.mark.parametrize(("start", "to", "allowed"), TABLE, ids=[f"{a}->{b}" for a, b, _ in TABLE])
def test_transition(any_catalog: Catalog, start: str, to: str, allowed: bool) -> None:
    ref = record(any_catalog, "web", state=start)
    if allowed:
        change = change_state(any_catalog, ref, to, actor="alice", reason="because", now=NOW)  # type: ignore[arg-type]
        assert (change.from_state, change.to_state) == (start, to)
        assert any_catalog.get_image(ref).state == to
        assert [(c.from_state, c.to_state, c.actor, c.reason, c.at) for c in history(any_catalog, ref)] == [
            (start, to, "alice", "because", NOW)
        ]
        return
    with pytest.raises(IllegalTransition) as refused:
        change_state(any_catalog, ref, to, actor="alice", reason="because")  # type: ignore[arg-type]
    expected = (
        "already" if start == to else ("retired" if start == "retired" else f"cannot go from {start} to {to}")
    )
    assert expected in refused.value.message
    assert any_catalog.get_image(ref).state == start
    assert history(any_catalog, ref) == []


def test_history_is_in_order_and_names_the_actor(any_catalog: Catalog) -> None:
    ref = record(any_catalog, "web")
    change_state(any_catalog, ref, "deprecated", actor="alice", reason="1.1 is out", now=NOW)
    change_state(
        any_catalog, ref, "active", actor="token:ci", reason="1.1 was pulled", now=NOW + timedelta(hours=1)
    )
    change_state(any_catalog, ref, "disabled", actor="bob", reason="CVE-2026-1", now=NOW + timedelta(hours=2))
    assert [(c.from_state, c.to_state, c.actor, c.reason) for c in history(any_catalog, ref)] == [
        ("active", "deprecated", "alice", "1.1 is out"),
        ("deprecated", "active", "token:ci", "1.1 was pulled"),
        ("active", "disabled", "bob", "CVE-2026-1"),
    ]


def test_a_reason_is_required_and_a_stale_plan_is_refused(any_catalog: Catalog) -> None:
    ref = record(any_catalog, "web")
    with pytest.raises(UsageError, match="a reason is required"):
        change_state(any_catalog, ref, "deprecated", actor="alice", reason="  ")
    change_state(any_catalog, ref, "deprecated", actor="alice", reason="x")
    with pytest.raises(IllegalTransition, match="is deprecated, not active as planned"):
        change_state(any_catalog, ref, "disabled", actor="alice", reason="x", expect="active")
    assert any_catalog.get_image(ref).state == "deprecated"


def test_concurrent_changes_from_one_state_happen_once(any_catalog: Catalog, catalog_url: str) -> None:
    """Eight writers (each its own connection pool, like separate processes) try active → deprecated at
    once: exactly one succeeds, the others are told it is already deprecated; one history row."""
    ref = record(any_catalog, "web")
    barrier = threading.Barrier(8)
    results: list[str] = []

    def attempt(n: int) -> None:
        with Catalog(catalog_url) as mine:
            barrier.wait()
            try:
                change_state(mine, ref, "deprecated", actor=f"writer-{n}", reason="race")
                results.append("changed")
            except IllegalTransition as exc:
                results.append(exc.message)

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["changed"] + [f"{ref} is already deprecated"] * 7
    assert len(history(any_catalog, ref)) == 1


def _kiln(home: Store, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KILN_HOME": str(home.home), "KILN_CACHE_DIR": str(home.cache), "COLUMNS": "200"}
    env.pop("KILN_DATABASE_URL", None)
    return subprocess.run([sys.executable, "-m", "kiln.cli.main", *args], capture_output=True, text=True,
                          env=env, timeout=120, check=False)  # fmt: skip


def test_cli_changes_states_and_shows_history(home: Store, catalog: Catalog) -> None:
    ref = record(catalog, "web")
    done = _kiln(home, "images", "deprecate", ref, "--reason", "superseded by 1.0.1")
    assert done.returncode == 0, done.stderr
    assert f"{ref}: active → deprecated" in done.stdout
    done = _kiln(home, "images", "disable", ref, "--reason", "CVE-2026-0001")
    assert done.returncode == 0, done.stderr
    done = _kiln(home, "images", "history", ref, "--json")
    data = __import__("json").loads(done.stdout)
    assert data["state"] == "disabled"
    assert [(c["from_state"], c["to_state"], c["reason"]) for c in data["changes"]] == [
        ("active", "deprecated", "superseded by 1.0.1"),
        ("deprecated", "disabled", "CVE-2026-0001"),
    ]
    assert all(c["actor"] for c in data["changes"])
    # retire asks first: no answer (stdin closed) retires nothing
    done = _kiln(home, "images", "retire", ref, "--reason", "old")
    assert done.returncode == 1 and catalog.get_image(ref).state == "disabled"
    assert _kiln(home, "images", "retire", ref, "--reason", "old", "--yes").returncode == 0
    done = _kiln(home, "images", "activate", ref, "--reason", "oops")
    assert done.returncode == 1
    assert "is retired: its artifacts are deleted, so it cannot become active" in done.stderr
    assert "Traceback" not in done.stderr
