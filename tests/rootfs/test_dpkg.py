"""The one dpkg reader, against dpkg-query on the real bookworm root's database with packages put in
every state dpkg knows; the lock, the catalog's package index, the parent's .deb list, the SBOMs and
the scanner must all list exactly the packages it calls installed."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from debian.debfile import DebFile

from kiln.build.package_index import dpkg_packages
from kiln.errors import KilnError
from kiln.evidence.installed import read_inventory
from kiln.evidence.sbom import cyclonedx_json, spdx_json
from kiln.evidence.vulnscan import installed_sources
from kiln.lock import packages_with_hashes
from kiln.rootfs.debian import ParentRoot, deb_inventory
from kiln.rootfs.dpkg import INSTALLED_STATES, STATUS_FILE, deb_filename, installed_packages
from kiln.sandbox.bwrap import Bind, SandboxOptions
from kiln.sandbox.launch import run_in_sandbox
from kiln.sandbox.overlay import overlay
from kiln.sandbox.run import run
from kiln.store import Store
from tests.evidence.conftest import IMAGE

# Package -> (new Status, extra fields): every state dpkg has, and the selections that do not matter.
EDITS = {
    "sed": ("install ok half-configured", ""),  # its postinst failed
    "gzip": ("install ok unpacked", ""),
    "libc-bin": ("install ok triggers-pending", "Triggers-Pending: ldconfig\n"),
    "zlib1g": ("install ok triggers-awaited", "Triggers-Awaited: libc-bin\n"),  # and it has an epoch
    "tar": ("hold ok installed", ""),  # apt-mark hold
    "ncurses-base": ("deinstall ok installed", ""),  # selected for removal, still there
    "grep": ("install reinstreq half-installed", ""),
    "hostname": ("deinstall ok config-files", ""),
}
LISTED = {"sed", "gzip", "libc-bin", "zlib1g", "tar", "ncurses-base"}
NOT_LISTED = {"grep", "hostname", "kiln-purged"}
PURGED = "Package: kiln-purged\nStatus: purge ok not-installed\nPriority: optional\nSection: misc\n"
QUERY_FORMAT = (
    "${Package}\t${Version}\t${Architecture}\t${source:Package}\t${source:Version}\t${db:Status-Status}\n"
)
FOREIGN = "libgcc-s1"  # a second, i386 copy (Multi-Arch: same) of this one


def _edit(stanza: str) -> str:
    name = re.search(r"^Package: (.+)$", stanza, re.M)
    assert name is not None
    if name.group(1) not in EDITS:
        return stanza
    status, extra = EDITS[name.group(1)]
    return re.sub(r"^Status: .*$", f"Status: {status}", stanza, flags=re.M) + extra


@pytest.fixture(scope="module")
def root(bookworm_root: ParentRoot, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real root's dpkg database and os-release, with EDITS applied, a purged package's stanza
    and a foreign-architecture copy of FOREIGN."""
    root = tmp_path_factory.mktemp("dpkg-states")
    (root / "var/lib/dpkg").mkdir(parents=True)
    (root / "etc").mkdir()
    shutil.copy(bookworm_root.rootfs / "usr/lib/os-release", root / "etc/os-release")
    stanzas = [s for s in (bookworm_root.rootfs / STATUS_FILE).read_text().split("\n\n") if s.strip()]
    names = {re.search(r"^Package: (.+)$", s, re.M).group(1) for s in stanzas}  # type: ignore[union-attr]
    assert set(EDITS) | {FOREIGN} <= names
    foreign = next(s for s in stanzas if s.startswith(f"Package: {FOREIGN}\n"))
    stanzas.append(foreign.replace("Architecture: amd64", "Architecture: i386"))
    stanzas = [_edit(s.strip("\n") + "\n") for s in stanzas] + [PURGED]
    (root / STATUS_FILE).write_text("\n".join(stanzas))
    return root


def dpkg_query(root: Path) -> list[tuple[str, ...]]:
    """(name, version, architecture, source, source version, state) of every package dpkg-query lists."""
    out = run(["dpkg-query", f"--admindir={root}/var/lib/dpkg", "-W", "-f", QUERY_FORMAT]).stdout
    return [tuple(line.split("\t")) for line in out.splitlines()]


def test_installed_is_what_dpkg_has_unpacked(root: Path) -> None:
    rows = dpkg_query(root)
    states = {row[0]: row[5] for row in rows}
    # dpkg accepted every edit: each state is really in its database (not-installed is never listed).
    assert {states[name] for name in EDITS} == set(INSTALLED_STATES) | {"half-installed", "config-files"}
    expected = sorted((r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows if r[5] in INSTALLED_STATES)
    got = [
        (p.name, p.version, p.architecture, p.source, p.source_version, p.state)
        for p in installed_packages(root)
    ]
    assert got == expected
    names = {p.name for p in installed_packages(root)}
    assert names >= LISTED and not NOT_LISTED & names
    assert [p.architecture for p in installed_packages(root) if p.name == FOREIGN] == ["amd64", "i386"]


def test_lock_catalog_parent_sbom_and_scan_agree(root: Path, store: Store) -> None:
    cache = store.deb_cache
    installed = {(p.name, p.version, p.architecture) for p in installed_packages(root)}
    lock = packages_with_hashes(root, cache)
    catalog = dpkg_packages(root)
    parent = deb_inventory(root, cache)
    inventory = read_inventory(root)
    spdx = json.loads(spdx_json(inventory, IMAGE))
    cyclonedx = json.loads(cyclonedx_json(inventory, IMAGE))
    assert {(p.name, p.version, p.architecture) for p in lock} == installed
    assert {(p.name, p.version, p.architecture) for p in catalog} == installed
    assert {(d["name"], d["version"], d["architecture"]) for d in parent} == installed
    assert {(d.name, d.version, d.architecture) for d in inventory.debs} == installed
    spdx_debs = [
        p for p in spdx["packages"] if p["externalRefs"][0]["referenceLocator"].startswith("pkg:deb/")
    ]
    assert sorted((p["name"], p["versionInfo"]) for p in spdx_debs) == sorted((n, v) for n, v, _ in installed)
    cdx_debs = [c for c in cyclonedx["components"] if c["purl"].startswith("pkg:deb/")]
    assert sorted((c["name"], c["version"]) for c in cdx_debs) == sorted((n, v) for n, v, _ in installed)
    count, sources = installed_sources(root)
    assert count == len(installed) and sum(len(b) for _, b in sources.values()) == len(installed)
    # The .debs are found under one name: every package the parent took from the cache is hashed.
    hashed = {(p.name, p.architecture): p.filename for p in lock if p.sha256}
    assert hashed == {(d["name"], d["architecture"]): d.get("filename") for d in parent if "sha256" in d}
    assert hashed[("zlib1g", "amd64")].startswith("zlib1g_1%3a")  # type: ignore[union-attr]
    assert ("libgcc-s1", "i386") not in hashed  # no such .deb in the cache: pinned, not proven


def test_deb_filename_is_the_name_apt_gave_every_cached_deb(bookworm_root: ParentRoot, store: Store) -> None:
    """Every .deb apt downloaded into the shared cache is named from its own control fields."""
    debs = sorted(store.deb_cache.glob("*.deb"))
    assert len(debs) > 50 and any("%3a" in d.name for d in debs)
    for deb in debs:
        control = DebFile(str(deb)).debcontrol()
        assert deb_filename(control["Package"], control["Version"], control["Architecture"]) == deb.name


@pytest.mark.parametrize(
    ("parts", "filename"),
    [
        (("zlib1g", "1:1.2.13.dfsg-1", "amd64"), "zlib1g_1%3a1.2.13.dfsg-1_amd64.deb"),
        (("libc6", "2.36-9+deb12u4", "i386"), "libc6_2.36-9+deb12u4_i386.deb"),
        (("odd", "1%2_x", "a.b"), "odd_1%252%5fx_a%2eb.deb"),  # apt's QuoteString: %, _ and . in the arch
    ],
)
def test_deb_filename_quotes_like_apt(parts: tuple[str, str, str], filename: str) -> None:
    assert deb_filename(*parts) == filename


@pytest.mark.parametrize(
    ("stanza", "message"),
    [
        ("Package: a\nStatus: install ok\nVersion: 1\n", "package a: Status 'install ok' is not"),
        ("Package: a\nStatus: install ok sideways\nVersion: 1\n", "Status 'install ok sideways'"),
        ("Package: a\nStatus: install ok installed\nArchitecture: all\n", "a has no Version field"),
        ("Package: a\nStatus: install ok unpacked\nVersion: 1\n", "a has no Architecture field"),
    ],
)
def test_a_damaged_database_is_an_error_naming_file_and_package(
    tmp_path: Path, stanza: str, message: str
) -> None:
    (tmp_path / "var/lib/dpkg").mkdir(parents=True)
    (tmp_path / STATUS_FILE).write_text(stanza)
    with pytest.raises(KilnError, match=re.escape(message)) as error:
        installed_packages(tmp_path)
    assert str(tmp_path / STATUS_FILE) in str(error.value)


def test_no_status_file_means_no_packages(tmp_path: Path) -> None:
    assert installed_packages(tmp_path) == []


def _build_deb(work: Path, name: str, version: str, postinst: str = "", conffile: bool = False) -> Path:
    """A tiny Architecture: all package made with dpkg-deb."""
    tree = work / name
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "usr/share/kiln-test").mkdir(parents=True)
    (tree / "usr/share/kiln-test" / name).write_text(f"{name} {version}\n")
    control = f"Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: Kiln <k@example.org>\n"
    if name == "kiln-broken":
        control += "Source: kiln-src (0.9)\n"
    (tree / "DEBIAN/control").write_text(control + "Description: test package\n")
    if postinst:
        (tree / "DEBIAN/postinst").write_text(f"#!/bin/sh\n{postinst}\n")
        (tree / "DEBIAN/postinst").chmod(0o755)
    if conffile:
        (tree / "etc").mkdir()
        (tree / "etc" / name).write_text("setting=1\n")
        (tree / "DEBIAN/conffiles").write_text(f"/etc/{name}\n")
    deb = work / deb_filename(name, version, "all")
    run(["dpkg-deb", "--root-owner-group", "--build", str(tree), str(deb)])
    return deb


def test_states_dpkg_itself_leaves_behind(tmp_path: Path, bookworm_root: ParentRoot) -> None:
    """Real dpkg in the real root: a failing postinst (half-configured), a bare unpack (unpacked), a
    removal that keeps conffiles (config-files); all readers and dpkg-query agree on the result."""
    debs = tmp_path / "debs"
    debs.mkdir()
    _build_deb(debs, "kiln-ok", "1:2.0-1", postinst="exit 0")
    _build_deb(debs, "kiln-broken", "1.0-1", postinst="echo failing on purpose >&2; exit 1")
    _build_deb(debs, "kiln-unpacked", "1.0-1")
    _build_deb(debs, "kiln-removed", "1.0-1", conffile=True)
    script = (
        "dpkg -i /tmp/debs/kiln-ok_*.deb /tmp/debs/kiln-removed_*.deb && dpkg -r kiln-removed"
        " && dpkg --unpack /tmp/debs/kiln-unpacked_*.deb"
        " && if dpkg -i /tmp/debs/kiln-broken_*.deb; then exit 9; fi"
    )
    options = SandboxOptions(network=False, binds=(Bind(debs, "/tmp/debs"),))
    with overlay([bookworm_root.rootfs], tmp_path / "upper", tmp_path / "ovl") as root:
        run_in_sandbox(root, ["sh", "-euc", script], options, timeout=120)
        rows = dpkg_query(root)
        ours = {r[0]: r for r in rows if r[0].startswith("kiln-")}
        assert {n: r[5] for n, r in ours.items()} == {
            "kiln-ok": "installed",
            "kiln-broken": "half-configured",
            "kiln-unpacked": "unpacked",
            "kiln-removed": "config-files",
        }
        got = [
            (p.name, p.version, p.architecture, p.source, p.source_version, p.state)
            for p in installed_packages(root)
        ]
        assert got == sorted(r for r in rows if r[5] in INSTALLED_STATES)
        assert ("kiln-broken", "1.0-1", "all", "kiln-src", "0.9", "half-configured") in got
        installed = {(p.name, p.version) for p in installed_packages(root)}
        assert {(p.name, p.version) for p in packages_with_hashes(root, debs)} == installed
        assert {(p.name, p.version) for p in dpkg_packages(root)} == installed
        assert {(d.name, d.version) for d in read_inventory(root).debs} == installed
        hashed = {p.name: p.filename for p in packages_with_hashes(root, debs) if p.sha256}
        assert hashed == {  # the .debs dpkg installed, found in the "cache" under apt's names
            "kiln-ok": "kiln-ok_1%3a2.0-1_all.deb",
            "kiln-broken": "kiln-broken_1.0-1_all.deb",
            "kiln-unpacked": "kiln-unpacked_1.0-1_all.deb",
        }
