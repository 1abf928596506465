"""Are updates available? An image's packages against the current ``Packages`` indices of its suites.

Debian version ordering decides; a package is outdated when some suite of the image's sources has a
higher version of it (same name and architecture, or ``all``). Packages the archive does not carry
(installed from a file, or removed from the archive) are not outdated.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

from kiln.evidence.debversion import compare
from kiln.rootfs.archive import ArchiveReader, Index, Source, SuiteState, parse_sources


class Installed(NamedTuple):
    name: str
    version: str
    architecture: str
    source: str = ""
    source_version: str = ""


class Update(NamedTuple):
    """One installed package with a newer version in the archive."""

    name: str
    architecture: str
    installed: str
    available: str
    suite: str
    security: bool
    source: str  # source package of the available version
    installed_source_version: str
    available_source_version: str


@dataclass(frozen=True)
class UpdatesReport:
    packages: int
    updates: list[Update]
    archive: list[SuiteState] = field(default_factory=list)  # the suites as they are now
    unchecked: list[str] = field(default_factory=list)  # suites whose index was too large to fetch

    @property
    def security(self) -> int:
        return sum(1 for u in self.updates if u.security)

    def summary(self) -> str:
        if not self.updates:
            return f"{self.packages} packages up to date"
        return f"{len(self.updates)} newer packages ({self.security} security)"

    def newest_date(self) -> datetime | None:
        return max((datetime.fromtimestamp(s.date, UTC) for s in self.archive), default=None)


def _source_of(field_value: str, name: str, version: str) -> tuple[str, str]:
    """(source name, source version) from a Packages ``Source:`` field (``src`` or ``src (ver)``)."""
    source, _, rest = (field_value or name).partition(" (")
    if rest:
        return source, rest.rstrip(")")
    base, plus_b, rebuild = version.rpartition("+b")
    return source, base if plus_b and rebuild.isdigit() else version


def compare_packages(
    installed: Iterable[Installed], indices: list[tuple[Source, Index]], archive: list[SuiteState]
) -> UpdatesReport:
    """The pure comparison: the newest version of each installed package over ``indices``."""
    packages = list(installed)
    updates = []
    for package in packages:
        best: tuple[str, str, Source] | None = None
        for arch in {package.architecture, "all"}:
            key = f"{package.name}:{arch}"
            for source, index in indices:
                found = index.get(key)
                if found is not None and (best is None or compare(found[0], best[0]) > 0):
                    best = (found[0], found[1], source)
        if best is None or compare(best[0], package.version) <= 0:
            continue
        version, source_field, suite = best
        src, src_version = _source_of(source_field, package.name, version)
        installed_source = package.source_version or package.version
        update = Update(package.name, package.architecture, package.version, version, suite.suite,
                        suite.security, src, installed_source, src_version)  # fmt: skip
        updates.append(update)
    updates.sort(key=lambda u: (not u.security, u.name, u.architecture))
    return UpdatesReport(len(packages), updates, archive)


def check_updates(
    installed: Iterable[Installed], sources: list[str], cache: Path, *, architecture: str = "amd64",
    recorded: list[SuiteState] | None = None, timeout: float = 30.0, max_fetch: int | None = None,
) -> UpdatesReport:  # fmt: skip
    """Fetch the current state of ``sources`` (conditionally; indices cached by digest) and compare.
    With ``recorded`` (the archive the packages were installed from) and no suite changed since, the
    indices are not even read. ``max_fetch``: an index not cached and larger than this many bytes is
    not fetched (its suite is listed in ``unchecked``). Raises KilnError when an archive cannot be read."""
    packages = list(installed)
    indices: list[tuple[Source, Index]] = []
    unchecked: list[str] = []
    with ArchiveReader(cache, timeout=timeout) as reader:
        releases = [(source, *reader.release(source)) for source in parse_sources(sources)]
        archive = [state for _, state, _ in releases]
        if recorded and not changed_suites(recorded, archive):
            return UpdatesReport(len(packages), [], archive)
        for source, _, release in releases:
            for area in source.areas or ("main",):
                index = reader.packages(source, release, area, architecture, max_fetch=max_fetch)
                if index is None:
                    unchecked.append(source.suite)
                else:
                    indices.append((source, index))
    report = compare_packages(packages, indices, archive)
    return UpdatesReport(report.packages, report.updates, archive, sorted(set(unchecked)))


def changed_suites(recorded: list[SuiteState], now: list[SuiteState]) -> list[SuiteState]:
    """Suites whose Release file differs from the recorded one (a suite recorded nowhere counts)."""
    seen = {(s.url, s.suite): s.sha256 for s in recorded}
    return [s for s in now if seen.get((s.url, s.suite)) != s.sha256]
