"""Package queries (Debian version order) and image lineage, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from kiln.catalog import Catalog, EvidenceRecord, PackageRecord
from kiln.errors import KilnError
from kiln.sandbox.run import run


def pkg(name: str, version: str, source: str = "", source_version: str = "") -> PackageRecord:
    return PackageRecord(
        name=name, version=version, architecture="amd64", source=source, source_version=source_version
    )


@pytest.fixture
def fleet(catalog: Catalog, record_image: Callable[..., str]) -> Catalog:
    old = "3.0.11-1~deb12u2"
    record_image(
        "old", "1.0.0",
        packages=[pkg("openssl", old), pkg("libssl3", old, "openssl", old), pkg("zlib1g", "1:1.2.13.dfsg-1")],
    )  # fmt: skip
    record_image("new", "1.0.0", packages=[pkg("openssl", "3.0.13-1~deb12u1"), pkg("zlib1g", "1:1.3-1")])
    record_image("bare", "1.0.0", packages=[pkg("busybox", "1:1.35.0-4+b3")])
    return catalog


def refs(matches: list[object]) -> list[tuple[str, list[str]]]:
    return [(m.image.ref, [p.name for p in m.packages]) for m in matches]  # type: ignore[attr-defined]


def test_images_with_package(fleet: Catalog) -> None:
    assert refs(fleet.images_with_package("openssl")) == [
        ("new@1.0.0/1", ["openssl"]),
        ("old@1.0.0/1", ["libssl3", "openssl"]),  # libssl3 is built from source package openssl
    ]
    assert refs(fleet.images_with_package("openssl", "3.0.13-1~deb12u1")) == [
        ("old@1.0.0/1", ["libssl3", "openssl"])
    ]
    assert refs(fleet.images_with_package("openssl", "3.0.11-1~deb12u2")) == []  # not strictly below
    # A stable update's "~deb12u2" sorts before the plain "-1" revision.
    assert refs(fleet.images_with_package("openssl", "3.0.11-1")) == [("old@1.0.0/1", ["libssl3", "openssl"])]
    assert refs(fleet.images_with_package("libssl3", "3.0.12")) == [("old@1.0.0/1", ["libssl3"])]
    # The epoch wins over the upstream version: 1:1.2.13 is newer than 2.0.
    assert refs(fleet.images_with_package("zlib1g", "2.0")) == []
    assert refs(fleet.images_with_package("zlib1g", "1:1.3")) == [("old@1.0.0/1", ["zlib1g"])]
    assert fleet.images_with_package("nginx") == []
    with pytest.raises(KilnError, match="invalid Debian version 'not a version' for openssl"):
        fleet.images_with_package("openssl", "not a version")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("1.0~rc1", "1.0"),
        ("1.0", "1.0-1"),
        ("3.0.11-1~deb12u2", "3.0.11-1"),
        ("9.9", "1:0.1"),
        ("1.2.3", "1.2.10"),
    ],
)
def test_version_order_agrees_with_dpkg(
    catalog: Catalog, record_image: Callable[..., str], a: str, b: str
) -> None:
    assert run(["dpkg", "--compare-versions", a, "lt", b], check=False).returncode == 0  # the oracle
    record_image("img", "1.0.0", packages=[pkg("p", a)])
    assert refs(catalog.images_with_package("p", b)) == [("img@1.0.0/1", ["p"])]
    assert catalog.images_with_package("p", a) == []


def test_packages_of_an_image(fleet: Catalog) -> None:
    assert [(p.name, p.source) for p in fleet.packages("old")] == [
        ("libssl3", "openssl"), ("openssl", "openssl"), ("zlib1g", "zlib1g"),
    ]  # fmt: skip
    assert fleet.packages("bare@1.0.0/1")[0].version == "1:1.35.0-4+b3"


def test_lineage_and_children(catalog: Catalog, record_image: Callable[..., str]) -> None:
    record_image("base", "1.0.0")
    record_image("base", "1.0.0")  # build 2, but app was built on build 1 (found by its digest)
    base1 = catalog.get_image("base@1.0.0/1")
    record_image("app", "2.0.0", parent="base@1.0.0", parent_digest=base1.digest)
    app = catalog.get_image("app")
    record_image("leaf", "1.0.0", parent="app@2.0.0/1", parent_digest=app.digest)
    record_image("orphan", "1.0.0", parent="ghost@1.0.0/1")

    chain = catalog.lineage("leaf")
    assert [e.ref for e in chain] == ["app@2.0.0/1", "base@1.0.0/1", "debian:bookworm"]
    assert chain[0].image == app and chain[-1].image is None
    assert [e.ref for e in catalog.lineage("base@1.0.0/2")] == ["debian:bookworm"]
    assert [(e.ref, e.image) for e in catalog.lineage("orphan")] == [("ghost@1.0.0/1", None)]

    assert [c.ref for c in catalog.children("base@1.0.0/1")] == ["app@2.0.0/1"]
    assert catalog.children("base@1.0.0/2") == []
    assert [c.ref for c in catalog.children("app")] == ["leaf@1.0.0/1"]


def test_add_evidence_later(catalog: Catalog, record_image: Callable[..., str]) -> None:
    record_image()
    report = EvidenceRecord(
        kind="vuln-report", path="/r.json", digest="sha256:" + "9" * 64, summary={"high": 1}
    )
    updated = catalog.add_evidence("web", report)
    assert updated.evidence[-1] == report and len(updated.evidence) == 3
    assert catalog.get_image("web").evidence == updated.evidence
