"""A local flat apt repository holding exactly the .debs of a lock, and the pins that select them.

The repository is hard links into the package cache (no copy), each verified against the lock's
sha256 before anything uses it. apt preferences pin every locked package to its exact version
(priority 1001: chosen even when it means a downgrade), so ``apt-get install``/``upgrade`` in a step
and mmdebstrap's bootstrap pick the locked versions even after the archive moved on, and can fetch
them from this repository with no network at all.
"""

from __future__ import annotations

import email.utils
import hashlib
import urllib.parse
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from kiln.errors import KilnError
from kiln.lock.model import LockedPackage, LockFile
from kiln.rootfs.dpkg import deb_filename
from kiln.store import file_sha256, link_or_copy

PIN_PRIORITY = 1001
LISTED = 12  # problems listed by name in an error; the rest are counted


@dataclass(frozen=True)
class LockedRepo:
    """A prepared lock repository (lives as long as the directory it was prepared in)."""

    root: Path  # holds repo/ (the flat repository) and the apt files made from it
    lock_digest: str
    pinned: tuple[LockedPackage, ...]  # every locked package: pinned to its version
    unhashed: tuple[LockedPackage, ...]  # locked without a .deb hash: pinned, but not in repo/

    @property
    def repo(self) -> Path:
        return self.root / "repo"

    @property
    def preferences_path(self) -> Path:
        return self.root / "kiln-lock.pref"

    @property
    def preferences(self) -> str:
        return self.preferences_path.read_text(encoding="utf-8")

    @property
    def mount_point(self) -> str:
        """Where a sandbox sees ``root``: on the sandbox's private /tmp, so nothing lands in a layer,
        and named by the lock so builds with different locks never share apt list files."""
        return f"/tmp/.kiln-lock-{self.lock_digest.removeprefix('sha256:')[:16]}"

    def source_line(
        self, repo_path: str | Path | None = None, method: Literal["file", "copy"] = "file"
    ) -> str:
        """One-line apt source for the repository at ``repo_path`` (default: as a sandbox sees it).

        ``copy`` makes apt copy each .deb into /var/cache/apt/archives (needed when apt runs outside
        the root dpkg installs into, as mmdebstrap does); ``file`` lets dpkg read it in place.
        """
        path = str(repo_path) if repo_path is not None else f"{self.mount_point}/repo"
        return f"deb [trusted=yes] {method}:{urllib.parse.quote(path)} ./"


def preferences_text(packages: list[LockedPackage]) -> str:
    """apt preferences pinning each package to its locked version (per architecture when they differ)."""
    by_name: dict[str, list[LockedPackage]] = defaultdict(list)
    for package in packages:
        by_name[package.name].append(package)
    stanzas = []
    for name in sorted(by_name):
        entries = by_name[name]
        if len({p.version for p in entries}) == 1:
            targets = [(name, entries[0].version)]
        else:
            targets = [(f"{p.name}:{p.architecture}", p.version) for p in entries]
        for target, version in targets:
            stanzas.append(f"Package: {target}\nPin: version {version}\nPin-Priority: {PIN_PRIORITY}\n")
    return "\n".join(stanzas)


def _listing(what: str, items: list[str]) -> str:
    shown = "\n".join(f"  {item}" for item in items[:LISTED])
    more = f"\n  ... and {len(items) - LISTED} more" if len(items) > LISTED else ""
    return f"{len(items)} {what}:\n{shown}{more}"


def _repo_filename(package: LockedPackage) -> str:
    # Pool-style name without the epoch's colon: a '%3a' in a URI path would be unquoted by apt.
    version = package.version.split(":", 1)[-1]
    return f"{package.name}_{version}_{package.architecture}.deb"


def _link_verified(
    packages: list[LockedPackage], deb_cache: Path, repo: Path
) -> list[tuple[LockedPackage, Path]]:
    """Hard-link each locked .deb into ``repo`` and check its sha256 (on the link: what apt will read)."""
    missing, mismatched, linked = [], [], []
    for package in packages:
        assert package.sha256 is not None
        source = deb_cache / (
            package.filename or deb_filename(package.name, package.version, package.architecture)
        )
        if not source.is_file():
            missing.append(f"{package.name} {package.version} ({package.architecture}): {source}")
            continue
        target = repo / _repo_filename(package)
        link_or_copy(source, target)
        actual = file_sha256(target)
        if actual != package.sha256:
            mismatched.append(
                f"{package.name} {package.version}: lock sha256 {package.sha256}, cached .deb {actual}"
            )
            target.unlink()
            continue
        linked.append((package, target))
    problems = []
    if missing:
        problems.append(_listing(f"locked .deb(s) missing from the package cache {deb_cache}", missing))
    if mismatched:
        problems.append(_listing("cached .deb(s) differ from the lock", mismatched))
    if problems:
        raise KilnError(
            "cannot reproduce the locked package set:\n" + "\n".join(problems),
            hint="the lock needs the exact .deb files of the original build: run it on the machine that "
            "made the lock (or copy that machine's package cache), or build without --locked",
        )
    return linked


def _packages_index(linked: list[tuple[LockedPackage, Path]]) -> str:
    """The ``Packages`` index: each .deb's own control data plus Filename, Size and SHA256."""
    from debian.debfile import DebError, DebFile

    paragraphs = []
    for package, path in linked:
        try:
            control = DebFile(str(path)).debcontrol()
        except (DebError, OSError, ValueError) as exc:
            raise KilnError(f"{path.name}: not a readable .deb: {exc}") from exc
        found = (control.get("Package"), control.get("Version"), control.get("Architecture"))
        if found != (package.name, package.version, package.architecture):
            raise KilnError(
                f"{path.name}: the .deb is {' '.join(str(f) for f in found)}, the lock says "
                f"{package.name} {package.version} {package.architecture}"
            )
        control["Filename"] = f"./{path.name}"
        control["Size"] = str(path.stat().st_size)
        control["SHA256"] = package.sha256 or ""
        paragraphs.append(control.dump())
    return "\n".join(paragraphs)


def _release(packages_index: bytes, epoch: int) -> str:
    digest = hashlib.sha256(packages_index).hexdigest()
    date = email.utils.formatdate(epoch, usegmt=True)
    return (
        "Origin: kiln-lock\nLabel: kiln-lock\n"
        f"Date: {date}\n"
        f"SHA256:\n {digest} {len(packages_index)} Packages\n"
    )


def prepare_locked_repo(lock: LockFile, deb_cache: Path, directory: Path) -> LockedRepo:
    """Make the lock repository in ``directory`` (a fresh scratch dir the caller removes later).

    Raises a KilnError listing every locked .deb that is missing from ``deb_cache`` or differs from
    its recorded sha256. Packages locked without a sha256 are pinned by version only.
    """
    hashed = [p for p in lock.packages if p.sha256 is not None]
    unhashed = [p for p in lock.packages if p.sha256 is None]
    repo = directory / "repo"
    repo.mkdir(parents=True, exist_ok=True)
    linked = _link_verified(hashed, deb_cache, repo)
    index = _packages_index(linked).encode()
    (repo / "Packages").write_bytes(index)
    (repo / "Release").write_text(_release(index, lock.parent.source_date_epoch), encoding="utf-8")
    (directory / "kiln-lock.pref").write_text(preferences_text(list(lock.packages)), encoding="utf-8")
    # apt fetches as the unprivileged _apt user: let it read the repository.
    for path in (directory, repo):
        path.chmod(0o755)
    return LockedRepo(directory, lock.digest, tuple(lock.packages), tuple(unhashed))
