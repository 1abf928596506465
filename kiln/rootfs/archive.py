"""The archive a parent is bootstrapped from: its suites' state and their ``Packages`` indices.

A suite's state is its ``InRelease`` (or, unsigned, ``Release``) file: its ``Date`` and sha256 say
exactly which archive a root was made from. Reading the current state is one conditional HTTP request
per suite (``If-None-Match``/``If-Modified-Since``, answered 304 while nothing changed); a
``Packages`` index is fetched only when the suite's Release lists a digest not in the cache, and is
kept parsed (name → newest version) by that digest, so checking an image against an unchanged
archive reads a few small files.

Cache layout (under the cache dir's ``archive/``): ``release/<sha256 of URL>.{body,json}`` (the last
Release file and its validators), ``index/<sha256 of index>.json`` (a parsed ``Packages`` index).
"""

from __future__ import annotations

import bz2
import email.utils
import gzip
import hashlib
import json
import lzma
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from kiln.errors import KilnError
from kiln.evidence.debversion import compare

TIMEOUT = 30.0
INDEX_FORMAT = 2
Index = dict[str, list[str]]
"""``name:arch`` → [newest version, its ``Source`` field (``src`` or ``src (version)``; "" = the name)].
Lists, not tuples: the cached form is JSON, read back as is."""


class SuiteState(BaseModel):
    """One suite of the archive as a root saw it: where, which Release file (sha256) and its date."""

    model_config = ConfigDict(frozen=True)

    url: str  # the mirror URL, without apt options
    suite: str
    date: int  # the Release file's Date, seconds since the epoch
    sha256: str  # of the (In)Release file as fetched


@dataclass(frozen=True)
class Source:
    """One one-line apt source: ``deb [options] URL SUITE AREA...``."""

    url: str
    suite: str
    areas: tuple[str, ...]

    @property
    def security(self) -> bool:
        return self.suite.endswith(("-security", "/updates"))


def parse_sources(lines: Iterable[str]) -> list[Source]:
    """The ``deb`` lines of ``lines`` (options in brackets are skipped)."""
    found = []
    for line in lines:
        text = line.split("#", 1)[0]
        if "[" in text and "]" in text:
            text = text[: text.index("[")] + text[text.index("]") + 1 :]
        words = text.split()
        if len(words) >= 3 and words[0] == "deb":
            found.append(Source(words[1].rstrip("/"), words[2], tuple(words[3:])))
    return found


@dataclass(frozen=True)
class Release:
    """The fields of a Release file Kiln reads: its date and the indices it lists by sha256."""

    date: int
    files: dict[str, tuple[str, int]]  # path -> (sha256, size)


def parse_release(text: str, where: str) -> Release:
    """``InRelease`` (clearsigned) or ``Release`` text; KilnError naming ``where`` if it has no Date."""
    date: int | None = None
    files: dict[str, tuple[str, int]] = {}
    section = ""
    for line in text.splitlines():
        if line.startswith("-----BEGIN PGP SIGNATURE"):
            break
        if line.startswith(" ") and section == "SHA256":
            parts = line.split()
            if len(parts) == 3:
                files[parts[2]] = (parts[0], int(parts[1]))
            continue
        key, colon, value = line.partition(":")
        if not colon or line.startswith(" "):
            continue
        section = key
        if key == "Date":
            try:
                date = int(email.utils.parsedate_to_datetime(value.strip()).timestamp())
            except (TypeError, ValueError) as exc:
                raise KilnError(f"{where}: unreadable Date {value.strip()!r}") from exc
    if date is None:
        raise KilnError(f"{where}: the Release file has no Date field")
    return Release(date, files)


def list_file(source: Source, name: str) -> str:
    """apt's name for a suite's file in ``/var/lib/apt/lists`` (URI without scheme, '/' → '_')."""
    uri = f"{source.url}/dists/{source.suite}/{name}"
    uri = uri.split("://", 1)[-1]
    return uri.replace("_", "%5f").replace("/", "_")


def states_from_lists(lists: Path, sources: Iterable[str]) -> list[SuiteState]:
    """The suites' state from the Release files apt just fetched into ``lists`` (a bootstrap's): the
    exact archive the root was made from, with no request of its own. Suites without a file are left out."""
    states = []
    for source in parse_sources(sources):
        for name in ("InRelease", "Release"):
            path = lists / list_file(source, name)
            if path.is_file():
                data = path.read_bytes()
                release = parse_release(data.decode("utf-8", "replace"), str(path))
                states.append(SuiteState(url=source.url, suite=source.suite, date=release.date,
                                         sha256=hashlib.sha256(data).hexdigest()))  # fmt: skip
                break
    return states


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _decompress(name: str, data: bytes) -> bytes:
    if name.endswith(".xz"):
        return lzma.decompress(data)
    if name.endswith(".gz"):
        return gzip.decompress(data)
    if name.endswith(".bz2"):
        return bz2.decompress(data)
    return data


def parse_packages(text: str) -> Index:
    """``name:arch`` → (newest version, source) of a ``Packages`` index. A line scan: python-debian's
    paragraph parser reads every field of 60 000 paragraphs (seconds); this reads four."""
    index: Index = {}
    name = version = arch = source = ""
    for line in (*text.split("\n"), ""):
        if not line:
            if name and version:
                key = f"{name}:{arch}"
                have = index.get(key)
                if have is None or compare(version, have[0]) > 0:
                    index[key] = [version, source]
            name = version = arch = source = ""
        elif line.startswith("Package: "):
            name = line[9:].strip()
        elif line.startswith("Version: "):
            version = line[9:].strip()
        elif line.startswith("Architecture: "):
            arch = line[14:].strip()
        elif line.startswith("Source: "):
            source = line[8:].strip()
    return index


class ArchiveReader:
    """Conditional fetches of Release files and cached, parsed ``Packages`` indices."""

    def __init__(self, cache: Path, *, timeout: float = TIMEOUT) -> None:
        self.cache = cache / "archive"
        self.timeout = timeout
        self._client: Any = None

    def __enter__(self) -> ArchiveReader:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._client is not None:
            self._client.close()

    @property
    def client(self) -> Any:
        if self._client is None:
            import httpx  # lazily: ~0.3 s of start-up

            self._client = httpx.Client(timeout=self.timeout, follow_redirects=True)
        return self._client

    def _get(self, url: str, headers: dict[str, str] | None = None) -> Any:
        import httpx

        try:
            return self.client.get(url, headers=headers or {})
        except httpx.HTTPError as exc:
            raise KilnError(f"cannot read {url}: {exc}", hint="check network access to the archive") from exc

    def release(self, source: Source) -> tuple[SuiteState, Release]:
        """The suite's current Release file (``InRelease``, else ``Release``): revalidated with the
        cached copy's validators, so an unchanged suite costs one 304 answer."""
        base = f"{source.url}/dists/{source.suite}"
        problems = []
        for name in ("InRelease", "Release"):
            url = f"{base}/{name}"
            stem = self.cache / "release" / hashlib.sha256(url.encode()).hexdigest()
            body, meta = stem.with_suffix(".body"), stem.with_suffix(".json")
            headers: dict[str, str] = {}
            if body.is_file() and meta.is_file():
                validators = json.loads(meta.read_text())
                if validators.get("etag"):
                    headers["If-None-Match"] = validators["etag"]
                if validators.get("last_modified"):
                    headers["If-Modified-Since"] = validators["last_modified"]
            response = self._get(url, headers)
            if response.status_code == 304 and headers:
                data = body.read_bytes()
            elif response.status_code == 200:
                data = response.content
                _atomic_write(body, data)
                validators = {"etag": response.headers.get("etag"),
                              "last_modified": response.headers.get("last-modified")}  # fmt: skip
                _atomic_write(meta, json.dumps(validators).encode())
            else:
                problems.append(f"{url}: HTTP {response.status_code}")
                continue
            release = parse_release(data.decode("utf-8", "replace"), url)
            state = SuiteState(url=source.url, suite=source.suite, date=release.date,
                               sha256=hashlib.sha256(data).hexdigest())  # fmt: skip
            return state, release
        raise KilnError("cannot read the suite's Release file: " + "; ".join(problems))

    def packages(
        self, source: Source, release: Release, area: str, arch: str, *, max_fetch: int | None = None
    ) -> Index | None:
        """The parsed ``Packages`` index of ``area``/``arch``, from the cache when its digest is there;
        None when it is not cached and larger than ``max_fetch`` bytes (the caller wanted a cheap look)."""
        stem = f"{area}/binary-{arch}/Packages"
        for suffix in (".xz", ".gz", ".bz2", ""):
            if stem + suffix in release.files:
                name = stem + suffix
                break
        else:
            return {}  # the suite has no such index (an area or architecture it does not carry)
        sha256, size = release.files[name]
        cached = self.cache / "index" / f"{sha256}.json"
        if cached.is_file():
            try:
                data = json.loads(cached.read_bytes())
                if data.get("format") == INDEX_FORMAT:
                    packages: Index = data["packages"]
                    return packages
            except (OSError, ValueError, KeyError):
                pass  # rebuilt below
        if max_fetch is not None and size > max_fetch:
            return None
        url = f"{source.url}/dists/{source.suite}/{name}"
        response = self._get(url)
        if response.status_code != 200:
            raise KilnError(f"cannot read {url}: HTTP {response.status_code}")
        raw = response.content
        if hashlib.sha256(raw).hexdigest() != sha256:
            raise KilnError(f"{url}: the index does not match its Release file's sha256 (mid-update?)")
        index = parse_packages(_decompress(name, raw).decode("utf-8", "replace"))
        _atomic_write(cached, json.dumps({"format": INDEX_FORMAT, "packages": index}).encode())
        return index
