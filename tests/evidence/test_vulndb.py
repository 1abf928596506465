"""Feed imports into the SQLite vulnerability database: real fixtures, atomicity, status."""

from __future__ import annotations

import gzip
import json
import shutil
import zipfile
from pathlib import Path

import pytest

from kiln.evidence.feeds import FeedError, detect_kind
from kiln.evidence.feeds import osv as osv_feed
from kiln.evidence.vulndb import VulnDb, VulnDbError
from kiln.evidence.vulnimport import import_feed
from kiln.monitor import ListMonitor
from kiln.store import Store
from tests.loopback import http_server

TRACKER = "debian-security-tracker-json/vunnel-debian.json"
APPARMOR = "debian-security-tracker-json/osvdev-debian_security_tracker_mock.json"


def test_tracker_import_real_fixture(store: Store, vuln_fixtures: Path) -> None:
    info = import_feed(store, str(vuln_fixtures / TRACKER), ListMonitor())
    assert info.name == "debian-tracker"
    db = VulnDb.open(store)
    sope = db.lookup("bookworm", ["sope"])
    assert [(r.vuln_id, r.status, r.fixed) for r in sope] == [("CVE-2025-53603", "fixed", "5.8.0-1+deb12u1")]
    chromium = db.lookup("bookworm", ["chromium", "chromium-browser"])
    assert [(r.package, r.vuln_id) for r in chromium] == [
        ("chromium", "CVE-2022-0456")
    ]  # empty releases: none
    assert db.lookup("stretch", ["prototypejs"])[0].fixed in ("1.6.0.2-1", "0")


def test_tracker_import_gzip_and_status(store: Store, vuln_fixtures: Path, tmp_path: Path) -> None:
    gz = tmp_path / "json.gz"
    gz.write_bytes(gzip.compress((vuln_fixtures / APPARMOR).read_bytes()))
    import_feed(store, str(gz), ListMonitor())
    records = {r.vuln_id: r for r in VulnDb.open(store).lookup("bookworm", ["apparmor"])}
    assert "CVE-2014-1424" not in records  # fixed_version "0": never affected, never looked up
    assert records["CVE-2016-1585"].status == "open"
    (status,) = VulnDb.open(store).sources()
    assert status.records > 0 and status.location == str(gz) and status.imported_at > 0


def test_osv_dir_zip_and_single(store: Store, vuln_fixtures: Path, tmp_path: Path) -> None:
    archive = tmp_path / "all.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(vuln_fixtures / "osv-debian/DSA-3029-1.json", "DSA-3029-1.json")
    for location in (vuln_fixtures / "osv-debian", archive, vuln_fixtures / "osv-debian/DSA-3029-1.json"):
        assert detect_kind(location) == "osv-debian"
        info = import_feed(store, str(location), ListMonitor())
        assert (info.name, info.records, info.vulnerabilities) == ("osv-debian", 1, 1)
    (rec,) = VulnDb.open(store).lookup("wheezy", ["nginx"])
    assert (rec.vuln_id, rec.status, rec.fixed, rec.note) == (
        "CVE-2014-3616",
        "fixed",
        "1.2.1-2.2+wheezy3",
        "via DSA-3029-1",
    )


def test_osv_ids_and_open_ranges() -> None:
    record = {
        "id": "DEBIAN-CVE-2016-1585",
        "affected": [
            {
                "package": {"ecosystem": "Debian:12", "name": "apparmor"},
                "ecosystem_specific": {"urgency": "low"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}],
            },
            {"package": {"ecosystem": "Ubuntu:22.04", "name": "apparmor"}},
        ],
    }
    (rec,) = osv_feed.parse(record, "x")
    assert (rec.release, rec.vuln_id, rec.status, rec.urgency) == ("bookworm", "CVE-2016-1585", "open", "low")
    assert list(osv_feed.parse({"id": "DSA-1-1", "affected": []}, "x")) == []


def test_failed_import_keeps_old_data(store: Store, vuln_fixtures: Path, tmp_path: Path) -> None:
    import_feed(store, str(vuln_fixtures / TRACKER), ListMonitor())
    before = VulnDb.open(store).sources()
    broken = tmp_path / "broken.json"
    data = json.loads((vuln_fixtures / TRACKER).read_text())
    data["zzz-bad"] = ["not", "an", "object"]  # fails after many rows were inserted
    broken.write_text(json.dumps(data))
    with pytest.raises(FeedError, match="zzz-bad"):
        import_feed(store, str(broken), ListMonitor(), kind="debian-tracker")
    assert VulnDb.open(store).sources() == before
    assert VulnDb.open(store).lookup("bookworm", ["sope"])
    truncated = tmp_path / "truncated.json"
    truncated.write_text((vuln_fixtures / TRACKER).read_text()[:500])
    with pytest.raises(FeedError, match="not valid JSON"):
        import_feed(store, str(truncated), ListMonitor(), kind="debian-tracker")
    assert VulnDb.open(store).sources() == before
    assert not list((store.home / "tmp").iterdir())


def test_empty_feed_and_empty_db(store: Store, tmp_path: Path) -> None:
    with pytest.raises(VulnDbError, match="empty"):
        VulnDb.open(store).lookup("bookworm", ["glibc"])
    empty = tmp_path / "empty.json"
    empty.write_text("{}")
    with pytest.raises(VulnDbError, match="no vulnerability records"):
        import_feed(store, str(empty), ListMonitor())
    with pytest.raises(FeedError, match="no such file"):
        import_feed(store, str(tmp_path / "missing.json"), ListMonitor())


def test_import_from_url(store: Store, vuln_fixtures: Path, tmp_path: Path) -> None:
    import http.server

    shutil.copy(vuln_fixtures / TRACKER, tmp_path / "json")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    with http_server(lambda *a: Quiet(*a, directory=str(tmp_path))) as port:
        url = f"http://127.0.0.1:{port}/json"
        info = import_feed(store, url, ListMonitor())
        assert info.location == url and info.records == 25
        with pytest.raises(FeedError, match="cannot download"):
            import_feed(store, url + "-missing", ListMonitor())
