"""Fleet questions: label syntax, labels, and every ``kiln images list`` filter alone and combined
(library on SQLite and PostgreSQL; the CLI on SQLite), plus migration 0006 from 0003 with data in it."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import event, text
from typer.testing import CliRunner

from kiln.catalog import Catalog, PackageRecord
from kiln.catalog import fleet as fleet_module
from kiln.catalog.engine import make_engine
from kiln.catalog.fleet import FleetQuery, PackageSpec, query_catalog
from kiln.catalog.labels import LabelError, image_labels, parse_assignment, remove_labels, set_labels
from kiln.catalog.migrate import current_revision, downgrade, head_revision, schema_drift, upgrade
from kiln.cli.main import build_app
from kiln.errors import NotFound, UsageError
from kiln.evidence.vulndb import Record, SourceInfo, VulnDb
from kiln.store import Store
from tests.catalog.conftest import new_image

OLD, NEW = "3.0.11-1~deb12u2", "3.0.15-1~deb12u1"
FIXED = "3.0.13-1~deb12u1"
ALLOW = {"scan": {"allow": [{"cve": "CVE-2024-0001", "reason": "not reachable", "expires": "2099-01-01"}]}}


def openssl(version: str) -> list[PackageRecord]:
    return [
        PackageRecord(name="openssl", version=version, architecture="amd64"),
        PackageRecord(name="libssl3", version=version, architecture="amd64", source="openssl",
                      source_version=version),
        PackageRecord(name="bash", version="5.2.15-2+b7", architecture="amd64"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("team=payments", ("team", "payments")),
        ("example.com/tier=gold", ("example.com/tier", "gold")),
        ("a=", ("a", "")),
        ("Env_1.x=Prod-2", ("Env_1.x", "Prod-2")),
        ("k=" + "v" * 63, ("k", "v" * 63)),
    ],
)
def test_valid_labels(text: str, expected: tuple[str, str]) -> None:
    assert parse_assignment(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("team", "expected KEY=VALUE"),
        ("=x", "name part '' is not valid"),
        ("-team=x", "name part '-team' is not valid"),
        ("team-=x", "name part 'team-' is not valid"),
        ("k" * 64 + "=x", "is not valid"),
        ("Example.com/tier=x", "is not a DNS subdomain"),
        ("exa_mple.com/tier=x", "is not a DNS subdomain"),
        ("/tier=x", "is not a DNS subdomain"),
        ("a/b/c=x", "is not a DNS subdomain"),
        ("team=pay ments", "invalid value 'pay ments'"),
        ("team=-x", "invalid value '-x'"),
        ("team=" + "v" * 64, "invalid value"),
        ("team=a=b", "invalid value 'a=b'"),
    ],
)
def test_invalid_labels(text: str, message: str) -> None:
    with pytest.raises(LabelError, match=message) as raised:
        parse_assignment(text)
    assert raised.value.exit_code == 2


@pytest.mark.parametrize(
    ("spec", "version", "accepted"),
    [
        ("openssl<3.0.15-1~deb12u1", OLD, True),
        ("openssl<3.0.15-1~deb12u1", NEW, False),
        ("openssl<3.0.9", OLD, False),  # lexically "3.0.11" < "3.0.9"; Debian: 11 > 9
        ("openssl<<3.0.15", NEW, False),  # 3.0.15 < 3.0.15-1~deb12u1
        ("openssl>=3.0.15~rc1", NEW, True),  # '~' sorts before the end
        ("openssl<1:0.1", NEW, True),  # an epoch wins over everything
        ("openssl=3.0.11-1~deb12u2", OLD, True),
        ("openssl>>3.0.11-1~deb12u2", OLD, False),
        ("openssl", "anything", True),
    ],
)
def test_package_spec_uses_debian_ordering(spec: str, version: str, accepted: bool) -> None:
    assert PackageSpec.parse(spec).accepts(version) is accepted


@pytest.fixture
def fleet(catalog: Catalog, record_image: Callable[..., str]) -> dict[str, str]:
    """web 1.0.0/1 (old openssl, allow-lists CVE-2024-0001), web 1.0.0/2 (new), app 2.0.0/1 built on
    web 1.0.0/1 (old openssl), an Ubuntu image (old openssl), a deprecated tool image."""
    record_image("web", packages=openssl(OLD), lock=ALLOW)
    record_image("web", packages=openssl(NEW))
    web1 = catalog.get_image("web@1.0.0/1")
    record_image("app", "2.0.0", parent="web@1.0.0/1", parent_digest=web1.digest, packages=openssl(OLD))
    record_image("noble", parent="ubuntu:noble", parent_digest=None, packages=openssl(OLD))
    record_image("tool", packages=[])
    with catalog.session(write=True) as s, s.begin():
        s.execute(text("UPDATE images SET state = 'deprecated' WHERE name = 'tool'"))
    set_labels(catalog, "web@1.0.0/1", {"team": "payments", "tier": "gold"})
    set_labels(catalog, "web@1.0.0/2", {"team": "payments"})
    set_labels(catalog, "app", {"team": "shop"})
    return {"web1": web1.digest}


@pytest.fixture
def vulndb(tmp_path: Path) -> VulnDb:
    db = VulnDb(tmp_path / "vulndb.sqlite")
    db.replace_source(
        SourceInfo("debian-tracker", "debian-tracker", "test", "sha256:0", 0.0, 0, 0),
        [
            Record("bookworm", "openssl", "CVE-2024-0001", "fixed", FIXED, "high"),
            Record("bullseye", "openssl", "CVE-2024-0001", "fixed", "1.1.1w-0+deb11u2", "high"),
            Record("bookworm", "openssl", "CVE-2024-0002", "open", None, "low"),
            Record("bullseye", "openssl", "CVE-2024-0003", "fixed", "9.9.9-1", "high"),
            Record("bookworm", "bash", "CVE-2024-0004", "fixed", "0"),  # never affected
        ],
    )
    return db


def refs(catalog: Catalog, db: VulnDb | None = None, **query: object) -> list[str]:
    return [m.image.ref for m in query_catalog(catalog, FleetQuery.model_validate(query), db)]


def test_label_state_and_parent_filters(catalog: Catalog, fleet: dict[str, str]) -> None:
    assert refs(catalog, labels={"team": "payments"}) == ["web@1.0.0/1", "web@1.0.0/2"]
    assert refs(catalog, labels={"team": "payments", "tier": "gold"}) == ["web@1.0.0/1"]
    assert refs(catalog, labels={"team": "nobody"}) == []
    assert refs(catalog, state="deprecated") == ["tool@1.0.0/1"]
    assert len(refs(catalog, state="active")) == 4
    assert refs(catalog, parent="web@1.0.0/1") == ["app@2.0.0/1"]
    assert refs(catalog, parent="kiln:web") == ["app@2.0.0/1"]
    assert refs(catalog, parent="web@1.0.0/2") == []
    assert refs(catalog, parent=fleet["web1"]) == ["app@2.0.0/1"]
    assert refs(catalog, parent="ubuntu:noble") == ["noble@1.0.0/1"]
    assert refs(catalog, parent="debian:bookworm") == ["tool@1.0.0/1", "web@1.0.0/1", "web@1.0.0/2"]
    matches = query_catalog(catalog, FleetQuery(labels={"team": "shop"}))
    assert [(m.image.ref, m.labels) for m in matches] == [("app@2.0.0/1", {"team": "shop"})]


def test_package_filter(catalog: Catalog, fleet: dict[str, str]) -> None:
    older = query_catalog(catalog, FleetQuery(package=PackageSpec.parse(f"openssl<{NEW}")))
    assert [m.image.ref for m in older] == ["app@2.0.0/1", "noble@1.0.0/1", "web@1.0.0/1"]
    assert {p.name for p in older[0].packages} == {"openssl", "libssl3"}  # binary and source match
    assert refs(catalog, package=PackageSpec.parse(f"libssl3>={NEW}")) == ["web@1.0.0/2"]
    assert refs(catalog, package=PackageSpec.parse("openssl<3.0.9")) == []
    assert len(refs(catalog, package=PackageSpec.parse("bash"))) == 4
    assert refs(catalog, package=PackageSpec.parse("nginx")) == []


def test_cve_filter_is_what_scan_reports(catalog: Catalog, fleet: dict[str, str], vulndb: VulnDb) -> None:
    found = query_catalog(catalog, FleetQuery(cve="CVE-2024-0001"), vulndb, date(2026, 12, 2))
    # web 1.0.0/2 has the fix; the Ubuntu image is not matched against Debian's data; app is found
    # through its parent's release.
    assert [m.image.ref for m in found] == ["app@2.0.0/1", "web@1.0.0/1"]
    hit = found[1].findings[0]
    assert (hit.package, hit.installed, hit.fixed, hit.status, hit.severity, hit.release) == (
        "openssl", OLD, FIXED, "fixable", "high", "bookworm",
    )  # fmt: skip
    assert hit.allowed is not None and hit.allowed.reason == "not reachable"  # listed and marked, like scan
    assert found[0].findings[0].allowed is None
    assert refs(catalog, vulndb, cve="CVE-2024-0002") == ["app@2.0.0/1", "web@1.0.0/1", "web@1.0.0/2"]
    assert refs(catalog, vulndb, cve="CVE-2024-0003") == []  # only bullseye is affected
    assert refs(catalog, vulndb, cve="CVE-2024-0004") == []  # fixed version 0: never affected
    assert refs(catalog, vulndb, cve="CVE-2024-9999") == []


def test_filters_combine(catalog: Catalog, fleet: dict[str, str], vulndb: VulnDb) -> None:
    assert refs(catalog, vulndb, cve="CVE-2024-0002", labels={"team": "payments"}, state="active",
                package=PackageSpec.parse(f"openssl>={NEW}")) == ["web@1.0.0/2"]  # fmt: skip
    assert refs(catalog, vulndb, cve="CVE-2024-0001", parent="web") == ["app@2.0.0/1"]
    assert refs(catalog, vulndb, cve="CVE-2024-0001", state="deprecated") == []
    assert refs(catalog, name="web", labels={"team": "payments"}) == ["web@1.0.0/1", "web@1.0.0/2"]


def test_package_rows_read_only_for_images_the_other_filters_leave(
    catalog: Catalog, fleet: dict[str, str], vulndb: VulnDb
) -> None:
    """--package and --cve with a label query the package rows of the labelled images only, not the
    whole catalog's (bench/catalog.py: 17 s for 10 matches out of 100,000 versions before)."""
    seen: list[str] = []

    def record(conn: object, cursor: object, statement: str, *args: object) -> None:
        if "FROM image_packages" in statement:
            seen.append(" ".join(statement.split()))

    event.listen(catalog.engine, "before_cursor_execute", record)
    try:
        every = refs(catalog, vulndb, package=PackageSpec.parse("openssl"), cve="CVE-2024-0002")
        alone = list(seen)
        seen.clear()
        shop = refs(catalog, vulndb, package=PackageSpec.parse("openssl"), cve="CVE-2024-0002",
                    labels={"team": "shop"})  # fmt: skip
    finally:
        event.remove(catalog.engine, "before_cursor_execute", record)
    assert shop == ["app@2.0.0/1"] and len(every) > 1 and "app@2.0.0/1" in every
    restricted = "image_packages.image_id IN (SELECT images.id FROM images WHERE images.id IN (SELECT"
    assert len(seen) == len(alone) == 2  # the package filter's query and the CVE filter's
    assert all(restricted in sql for sql in seen) and not any(restricted in sql for sql in alone)


def test_cve_filter_reads_parents_in_chunks(
    catalog: Catalog, fleet: dict[str, str], vulndb: VulnDb, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The affected images' parents are read a chunk of ids at a time (one IN list of 100,000 ids
    exceeded PostgreSQL's 65,535 parameters in bench/catalog.py); a chunk of 1 gives the same answer."""
    whole = refs(catalog, vulndb, cve="CVE-2024-0002")
    monkeypatch.setattr(fleet_module, "CHUNK", 1)
    assert (
        refs(catalog, vulndb, cve="CVE-2024-0002") == whole == ["app@2.0.0/1", "web@1.0.0/1", "web@1.0.0/2"]
    )


def test_labels_set_overwrite_remove(catalog: Catalog, fleet: dict[str, str]) -> None:
    _, now = set_labels(catalog, "web@1.0.0/1", {"tier": "silver", "owner": "ana"})
    assert now == {"owner": "ana", "team": "payments", "tier": "silver"}
    _, now = remove_labels(catalog, "web@1.0.0/1", ["tier", "owner"])
    assert now == {"team": "payments"} == image_labels(catalog, "web@1.0.0/1")
    with pytest.raises(NotFound, match="has no label tier") as missing:
        remove_labels(catalog, "web@1.0.0/1", ["tier"])
    assert missing.value.hint == "its labels: team"
    with pytest.raises(LabelError):
        set_labels(catalog, "web@1.0.0/1", {"bad key": "x"})
    with pytest.raises(NotFound):
        set_labels(catalog, "nope", {"a": "b"})


def test_cli_filters_labels_and_json(store: Store, vulndb: VulnDb, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KILN_DATABASE_URL", raising=False)
    home = store.home
    (home / "vulndb.sqlite").write_bytes(vulndb.path.read_bytes())
    with Catalog.open(store.database_url) as catalog:
        for version, lock in ((OLD, ALLOW), (NEW, None)):
            build = catalog.start_build(recipe_name="web", recipe_version="1.0.0", recipe_path="r",
                                        log_path=str(home / "l"))  # fmt: skip
            catalog.finish_build(build, new_image("web", packages=openssl(version), lock=lock))
    app = build_app()

    def run(*args: str, code: int = 0) -> str:
        result = CliRunner().invoke(app, [*args, "--data-dir", str(home)])
        if code == 0:
            assert result.exit_code == 0, result.output
            return result.output
        assert getattr(result.exception, "exit_code", None) == code, result.output
        return str(result.exception)

    assert "web@1.0.0/1 labels: team=payments, tier=gold" in run("images", "label", "web@1.0.0/1",
                                                                 "team=payments", "tier=gold")  # fmt: skip
    shown = json.loads(run("images", "show", "web@1.0.0/1", "--json"))
    assert shown["labels"] == {"team": "payments", "tier": "gold"}
    assert "team=payments, tier=gold" in run("images", "show", "web@1.0.0/1")
    listed = json.loads(run("images", "list", "--label", "team=payments", "--json"))
    assert [(i["build"], i["labels"]) for i in listed] == [(1, {"team": "payments", "tier": "gold"})]
    assert "tier=gold" in run("images", "list")
    assert "no image matches these filters" in run("images", "list", "--state", "deprecated")
    matches = json.loads(run("images", "list", "--package", f"openssl<{NEW}", "--json"))
    assert [(m["image"]["build"], sorted(p["name"] for p in m["packages"])) for m in matches] == [
        (1, ["libssl3", "openssl"])
    ]
    cve = json.loads(run("images", "list", "--cve", "CVE-2024-0001", "--json"))
    assert [(m["image"]["build"], m["findings"][0]["fixed"]) for m in cve] == [(1, FIXED)]
    human = run("images", "list", "--cve", "CVE-2024-0001")
    assert "openssl 3.0.11-1~deb12u2: fixable, fixed in 3.0.13-1~deb12u1 (high)" in human
    assert "allowed until 2099-01-01" in human
    assert json.loads(run("images", "list", "--parent", "debian:bookworm", "--json"))[0]["build"] == 1
    assert json.loads(run("images", "unlabel", "web@1.0.0/1", "tier", "--json"))["labels"] == {
        "team": "payments"
    }
    assert "has no label tier" in run("images", "unlabel", "web@1.0.0/1", "tier", code=1)
    assert "invalid label key" in run("images", "label", "web", "Bad/x=1", code=2)
    with pytest.raises(UsageError, match="give the version either"):
        from kiln.cli.fleet import build_query

        build_query(None, "openssl<1", "2", [], None, None, None)


def test_cli_outdated_combines_with_other_filters(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KILN_DATABASE_URL", raising=False)
    with Catalog.open(store.database_url) as catalog:
        for name, version, parent in (
            ("base", "1.0.0", "debian:bookworm"),
            ("web", "1.0.0", "kiln:base@1.x"),
            ("api", "1.0.0", "kiln:base@1.x"),
            ("base", "1.0.1", "debian:bookworm"),
        ):
            build = catalog.start_build(
                recipe_name=name, recipe_version=version, recipe_path="r", log_path=str(store.home / "l")
            )
            up = (
                catalog.get_image("base@1.0.0").digest if parent.startswith("kiln:") else "sha256:" + "0" * 64
            )
            catalog.finish_build(
                build,
                new_image(
                    name,
                    version,
                    parent=parent,
                    parent_digest=up,
                    digest="sha256:" + f"{name}{version}".encode().hex().ljust(64, "0"),
                ),
            )
        set_labels(catalog, "web@1.0.0/1", {"team": "payments"})
    app = build_app()

    def run(*args: str) -> str:
        result = CliRunner().invoke(app, ["images", "list", *args, "--data-dir", str(store.home)])
        assert result.exit_code == 0, result.output
        return result.output

    alone = json.loads(run("--outdated", "--json"))  # alone: the reasons
    assert [o["image"] for o in alone] == ["api@1.0.0/1", "web@1.0.0/1"]
    listed = json.loads(run("--outdated", "--label", "team=payments", "--json"))
    assert [(i["name"], i["labels"]) for i in listed] == [("web", {"team": "payments"})]
    assert [i["name"] for i in json.loads(run("--outdated", "--parent", "base@1.0.0", "--json"))] == [
        "api",
        "web",
    ]
    assert json.loads(run("--outdated", "--state", "deprecated", "--json")) == []
    assert json.loads(run("--outdated", "--parent", "debian:bookworm", "--json")) == []


def test_migration_0006_from_0003_keeps_data(catalog_url: str) -> None:
    engine = make_engine(catalog_url)
    try:
        upgrade(engine, "0003")
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO builds (id, recipe_name, recipe_version, recipe_path, status, started, log_path,"
                " host, pid) VALUES ('b1', 'web', '1.0.0', 'r', 'succeeded', '2026-01-01 00:00:00', 'l', 'h', 1)"
            ))  # fmt: skip
            conn.execute(text(
                "INSERT INTO images (name, version, build_number, digest, created, recorded, parent,"
                " parent_digest, recipe_digest, description, size, state, build_id) VALUES ('web', '1.0.0', 1,"
                " 'sha256:aa', '2026-01-01 00:00:00', '2026-01-01 00:00:00', 'debian:bookworm', NULL, 'sha256:r',"
                " '', 1, 'active', 'b1')"
            ))  # fmt: skip
        upgrade(engine)
        assert current_revision(engine) == head_revision()
        assert schema_drift(engine) == []
        catalog = Catalog(catalog_url)
        try:
            assert refs(catalog, state="active", parent="debian:bookworm") == ["web@1.0.0/1"]
            set_labels(catalog, "web", {"team": "payments"})
            assert refs(catalog, labels={"team": "payments"}) == ["web@1.0.0/1"]
        finally:
            catalog.close()
        downgrade(engine, "0003")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT name FROM images")).scalars().all() == ["web"]
        upgrade(engine)
    finally:
        engine.dispose()


def test_bulk_records_equal_the_catalogs_own(catalog: Catalog, fleet: dict[str, str]) -> None:
    """The column-query records of a fleet answer are exactly :meth:`Catalog.list_images`' (same order,
    components, artifacts, evidence), and serialise the same."""
    listed = catalog.list_images()
    answered = [m.image for m in query_catalog(catalog, FleetQuery())]
    assert answered == listed
    assert [a.model_dump(mode="json") for a in answered] == [i.model_dump(mode="json") for i in listed]
