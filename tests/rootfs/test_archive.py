"""The archive's state and the updates check, against a real local repository over HTTP (apt-ftparchive
indices of real .debs from the shared cache)."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from debian.debian_support import version_compare

from kiln.errors import KilnError
from kiln.rootfs.archive import (
    ArchiveReader,
    Source,
    SuiteState,
    list_file,
    parse_packages,
    parse_release,
    parse_sources,
    states_from_lists,
)
from kiln.rootfs.debian import ParentRoot
from kiln.rootfs.updates import Installed, check_updates, compare_packages
from tests.debrepo import DebRepo, rebuilt_deb

DEBS = ("base-passwd", "hostname", "dash")


def cached_debs(parent: ParentRoot, deb_cache: Path) -> dict[str, Path]:
    """One real .deb of each of DEBS, as the parent installed it (from the shared package cache)."""
    found = {}
    for entry in parent.debs:
        if entry["name"] in DEBS and entry.get("filename"):
            found[entry["name"]] = deb_cache / entry["filename"]
    assert set(found) == set(DEBS), f"the package cache lacks some of {DEBS}"
    return found


@pytest.fixture
def repo(tmp_path: Path, bookworm_root: ParentRoot) -> Iterator[tuple[DebRepo, dict[str, Path]]]:
    from tests.conftest import TEST_CACHE

    debs = cached_debs(bookworm_root, TEST_CACHE / "debs")
    local = DebRepo(tmp_path / "repo")
    local.add(debs.values())
    local.publish()
    with local.serve():
        yield local, debs


def installed_from(debs: dict[str, Path]) -> list[Installed]:
    out = []
    for deb in debs.values():
        name, version, arch = deb.stem.split("_")
        out.append(Installed(name, version.replace("%3a", ":"), arch))
    return out


def test_unchanged_archive_costs_one_304_and_no_index(
    repo: tuple[DebRepo, dict[str, Path]], tmp_path: Path
) -> None:
    local, debs = repo
    sources = [f"deb {local.mirror} bookworm main"]
    first = check_updates(installed_from(debs), sources, tmp_path / "cache")
    assert first.updates == [] and first.packages == 3
    assert local.served("/Release") == [200] and local.served("/Packages.xz") == [200]
    again = check_updates(installed_from(debs), sources, tmp_path / "cache")
    assert again.updates == [] and again.archive == first.archive
    # revalidated (304), and the index is read from the cache by its digest, not fetched again
    assert local.served("/Release") == [200, 304] and local.served("/Packages.xz") == [200]
    # with the recorded archive state equal to the current one the index is not even read
    shutil.rmtree(tmp_path / "cache/archive/index")
    check_updates(installed_from(debs), sources, tmp_path / "cache", recorded=first.archive)
    assert local.served("/Packages.xz") == [200]


def test_a_newer_upload_is_an_update(repo: tuple[DebRepo, dict[str, Path]], tmp_path: Path) -> None:
    local, debs = repo
    sources = [f"deb {local.mirror} bookworm main"]
    before = check_updates(installed_from(debs), sources, tmp_path / "cache")
    newer = rebuilt_deb(debs["base-passwd"], "3.6.1+kiln1", tmp_path)
    local.add([newer])
    local.publish()
    after = check_updates(installed_from(debs), sources, tmp_path / "cache", recorded=before.archive)
    assert [(u.name, u.installed, u.available, u.suite) for u in after.updates] == [
        ("base-passwd", "3.6.1", "3.6.1+kiln1", "bookworm")
    ]
    assert after.archive[0].sha256 != before.archive[0].sha256
    assert after.updates[0].available_source_version == "3.6.1+kiln1"
    assert local.served("/Packages.xz") == [200, 200]  # the new index, by its new digest


def test_unreachable_archive_is_a_kiln_error(tmp_path: Path) -> None:
    with pytest.raises(KilnError, match="cannot read"):
        check_updates([], ["deb http://127.0.0.1:9/debian bookworm main"], tmp_path, timeout=2)


def test_states_from_lists_reads_what_apt_fetched(tmp_path: Path) -> None:
    release = b"Origin: Debian\nSuite: stable\nDate: Sat, 08 Nov 2025 09:00:00 UTC\nSHA256:\n"
    lists = tmp_path / "lists"
    lists.mkdir()
    source = "deb [trusted=yes] http://127.0.0.1:8080/deb_ian bookworm main"
    (lists / list_file(parse_sources([source])[0], "InRelease")).write_bytes(release)
    assert (lists / "127.0.0.1:8080_deb%5fian_dists_bookworm_InRelease").is_file()
    assert states_from_lists(lists, [source, "deb http://other bookworm-security main"]) == [
        SuiteState(
            url="http://127.0.0.1:8080/deb_ian",
            suite="bookworm",
            date=1762592400,
            sha256=hashlib.sha256(release).hexdigest(),
        )
    ]


def test_release_without_date_names_the_file() -> None:
    with pytest.raises(KilnError, match="x/InRelease: the Release file has no Date"):
        parse_release("Origin: Debian\n", "x/InRelease")


def test_sources_options_and_security() -> None:
    found = parse_sources(
        [
            "deb [trusted=yes arch=amd64] http://m/debian/ bookworm main contrib",
            "# deb http://x y z",
            "deb http://m/debian-security bookworm-security main",
        ]
    )
    assert found == [
        Source("http://m/debian", "bookworm", ("main", "contrib")),
        Source("http://m/debian-security", "bookworm-security", ("main",)),
    ]
    assert [s.security for s in found] == [False, True]


def test_comparison_uses_debian_ordering_and_arch_all() -> None:
    bookworm, security = (
        Source("http://m", "bookworm", ("main",)),
        Source("http://s", "bookworm-security", ()),
    )
    indices = [
        (bookworm, {"libc6:amd64": ["2.36-9+deb12u8", "glibc"], "tzdata:all": ["2024a-0+deb12u1", "tzdata"]}),
        (security, {"libc6:amd64": ["2.36-9+deb12u10", "glibc"], "bash:amd64": ["5.2.15-2+b2", "bash"]}),
    ]
    installed = [
        Installed("libc6", "2.36-9+deb12u9", "amd64", "glibc", "2.36-9+deb12u9"),
        Installed("tzdata", "2024a-0+deb12u1", "all"),
        Installed("bash", "5.2.15-2+b7", "amd64"),  # newer binNMU than the archive's: not outdated
        Installed("kiln-local", "1.0", "amd64"),  # not in the archive
    ]
    report = compare_packages(installed, indices, [])
    assert [(u.name, u.available, u.security, u.source) for u in report.updates] == [
        ("libc6", "2.36-9+deb12u10", True, "glibc")
    ]
    assert report.summary() == "1 newer packages (1 security)"


def test_packages_parser_matches_python_debian(bookworm_root: ParentRoot) -> None:
    """On the real dpkg status of a root (same paragraph format as a Packages index)."""
    from debian.deb822 import Packages

    text = (bookworm_root.rootfs / "var/lib/dpkg/status").read_text()
    ours = parse_packages(text)
    theirs = {f"{p['Package']}:{p['Architecture']}": p["Version"] for p in Packages.iter_paragraphs(text)}
    assert {k: v[0] for k, v in ours.items()} == theirs
    assert all(version_compare(v[0], "0") > 0 for v in ours.values())


def test_index_digest_mismatch_is_refused(repo: tuple[DebRepo, dict[str, Path]], tmp_path: Path) -> None:
    local, _ = repo
    source = Source(local.url, "bookworm", ("main",))
    with ArchiveReader(tmp_path) as reader:
        _, release = reader.release(source)
        index = local.root / "debian/dists/bookworm/main/binary-amd64/Packages.xz"
        index.write_bytes(index.read_bytes() + b"tampered")
        with pytest.raises(KilnError, match="does not match its Release file"):
            reader.packages(source, release, "main", "amd64")


def test_a_cheap_look_leaves_a_large_uncached_index_unchecked(
    repo: tuple[DebRepo, dict[str, Path]], tmp_path: Path
) -> None:
    local, debs = repo
    sources = [f"deb {local.mirror} bookworm main"]
    look = check_updates(installed_from(debs), sources, tmp_path / "cache", max_fetch=10)
    assert look.unchecked == ["bookworm"] and look.updates == []
    assert local.served("/Packages.xz") == []  # not fetched
    check_updates(installed_from(debs), sources, tmp_path / "cache")  # now cached
    assert check_updates(installed_from(debs), sources, tmp_path / "cache", max_fetch=10).unchecked == []
