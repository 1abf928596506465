"""``cve.found``: after a vulnerability-database import, one event per (active image, CVE) newly affecting it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kiln.catalog import Catalog, PackageRecord
from kiln.events import model
from kiln.events.cve import import_with_events
from kiln.events.stream import page
from kiln.monitor import ListMonitor
from kiln.store import Store


def tracker(entries: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A Debian Security Tracker JSON document (SYNTHETIC ids in the reserved CVE-1999-9xxxx range)."""
    return {
        package: {
            vuln: {
                "releases": {
                    "bookworm": {
                        "status": status,
                        "urgency": "high",
                        "repositories": {},
                        **({"fixed_version": fixed} if fixed else {}),
                    }
                }
            }
            for vuln, (status, fixed) in vulns.items()
        }
        for package, vulns in entries.items()
    }


def write(path: Path, doc: dict[str, Any]) -> str:
    path.write_text(json.dumps(doc))
    return str(path)


def test_import_emits_one_event_per_newly_affected_active_image(
    catalog: Catalog, record_image: Callable[..., str], tmp_path: Path
) -> None:
    store = Store.open_at(tmp_path / "home", tmp_path / "cache", catalog.url)
    ssl = PackageRecord(
        name="libssl3",
        version="3.0.11-1~deb12u2",
        architecture="amd64",
        source="openssl",
        source_version="3.0.11-1~deb12u2",
    )
    record_image("web", "1.0.0", packages=[ssl])
    record_image(
        "api",
        "2.0.0",
        packages=[
            ssl.model_copy(update={"source_version": "3.0.14-1~deb12u1", "version": "3.0.14-1~deb12u1"})
        ],
    )
    record_image("alpine", "1.0.0", parent="oci:alpine:3.20", packages=[ssl])  # not a Debian root
    first = tracker(
        {"openssl": {"CVE-1999-91000": ("open", None), "CVE-1999-91001": ("resolved", "3.0.2-1")}}
    )
    _, found = import_with_events(store, catalog, write(tmp_path / "t1.json", first), ListMonitor())
    # The first import shows what affects the images already: web and api have the open CVE.
    assert sorted(e.subject or "" for e in found) == [
        "images/api@2.0.0/1/CVE-1999-91000",
        "images/web@1.0.0/1/CVE-1999-91000",
    ]
    second = tracker(
        {
            "openssl": {
                "CVE-1999-91000": ("open", None),
                "CVE-1999-91001": ("resolved", "3.0.2-1"),
                "CVE-1999-91002": ("resolved", "3.0.13-1~deb12u1"),
            }
        }
    )
    _, found = import_with_events(store, catalog, write(tmp_path / "t2.json", second), ListMonitor())
    [event] = found  # api has 3.0.14: already fixed there; the older CVEs were known before
    assert event.type == model.CVE_FOUND
    assert event.data == {
        "image": "web@1.0.0/1",
        "vuln_id": "CVE-1999-91002",
        "package": "openssl",
        "installed": "3.0.11-1~deb12u2",
        "fixed": "3.0.13-1~deb12u1",
        "severity": "high",
        "status": "fixable",
    }
    _, again = import_with_events(store, catalog, write(tmp_path / "t3.json", second), ListMonitor())
    assert again == []
    recorded = [e for _, e in page(catalog, types=["cve.found"])]
    assert [e.id for e in recorded][-1] == event.id and len(recorded) == 3
