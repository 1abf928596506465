"""The catalog record of an image against its signed provenance, field by field.

The catalog is a database anyone with write access to the data dir can edit; the provenance is
signed. Every catalogued field the provenance covers is compared, and each difference names the
field and both values: ``catalog artifacts[oci].digest: sha256:… in the catalog, sha256:… in the
signed provenance``. The kept component documents beside the artifacts are re-hashed too.
"""

from __future__ import annotations

import base64
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kiln.evidence.provenance import (
    BUILD_TYPE_V1,
    CATALOG_LOCK,
    PACKAGE_COLUMNS,
    PACKAGE_LIST,
    canonical_json,
    package_rows,
    sha256_digest,
)
from kiln.models import Package
from kiln.store import file_sha256

if TYPE_CHECKING:
    from kiln.catalog.schemas import ImageRecord

SIGNED = "in the signed provenance"
MAX_PACKAGE_LINES = 20
ABSENT = object()
DIGEST = re.compile(r"^sha256:[0-9a-f]*$")


@dataclass(frozen=True)
class Check:
    what: str
    ok: bool
    detail: str
    skipped: bool = False  # not checked: the provenance does not cover it (reported, not failed)


@dataclass(frozen=True)
class CatalogEntry:
    """What the catalog holds for one image (read by the caller, e.g. ``kiln verify``)."""

    record: ImageRecord
    packages: list[Package] = field(default_factory=list)
    lock: dict[str, Any] | None = None


def _show(value: object) -> str:
    """Digests bare, anything else as JSON (strings quoted), a missing value as ``(absent)``."""
    if value is ABSENT:
        return "(absent)"
    if isinstance(value, str) and DIGEST.match(value):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


class _Group:
    """The differences found in one part of the record; one passing check when there are none."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.failed: list[Check] = []

    def differ(self, what: str, catalog: object, signed: object) -> None:
        if catalog != signed:
            detail = f"{_show(catalog)} in the catalog, {_show(signed)} {SIGNED}"
            self.failed.append(Check(f"catalog {what}", False, detail))

    def only_catalog(self, what: str) -> None:
        self.failed.append(Check(f"catalog {what}", False, f"in the catalog, not {SIGNED}"))

    def only_signed(self, what: str) -> None:
        self.failed.append(Check(f"catalog {what}", False, f"{SIGNED}, not in the catalog"))

    def result(self, ok_detail: str) -> list[Check]:
        return self.failed or [Check(f"catalog {self.name}", True, ok_detail)]


def _digest(descriptor: dict[str, Any]) -> str:
    return "sha256:" + str(descriptor.get("digest", {}).get("sha256", ""))


def _annotations(descriptor: dict[str, Any]) -> dict[str, Any]:
    value = descriptor.get("annotations")
    return value if isinstance(value, dict) else {}


def _keyed(items: Iterable[Any], kind: Callable[[Any], str]) -> dict[str, Any]:
    """Items by label ``kind``, numbered (``kind#2``) when a kind repeats."""
    seen: Counter[str] = Counter()
    out: dict[str, Any] = {}
    for item in items:
        k = kind(item)
        seen[k] += 1
        out[k if seen[k] == 1 else f"{k}#{seen[k]}"] = item
    return out


def _pair(group: _Group, section: str, catalog: dict[str, Any], signed: dict[str, Any]) -> list[str]:
    """Labels present on both sides; the others are reported as missing from one side."""
    for label in catalog.keys() - signed.keys():
        group.only_catalog(f"{section}[{label}]")
    for label in signed.keys() - catalog.keys():
        group.only_signed(f"{section}[{label}]")
    return [label for label in signed if label in catalog]


def _dependencies(stmt: dict[str, Any]) -> list[dict[str, Any]]:
    deps = stmt["predicate"].get("buildDefinition", {}).get("resolvedDependencies", [])
    return [d for d in deps if isinstance(d, dict)]


def _byproducts(stmt: dict[str, Any]) -> list[dict[str, Any]]:
    items = stmt["predicate"].get("runDetails", {}).get("byproducts", [])
    return [b for b in items if isinstance(b, dict)]


def check_image(stmt: dict[str, Any], record: ImageRecord) -> list[Check]:
    group = _Group("image")
    build = stmt["predicate"].get("buildDefinition", {})
    image = build.get("externalParameters", {}).get("image", {})
    group.differ("image.name", record.name, image.get("name"))
    signed_version = image.get("version")
    if signed_version != f"{record.version}/{record.build}":  # the number may be known when signing
        group.differ("image.version", record.version, signed_version)
    manifest = next((s for s in stmt["subject"] if _annotations(s).get("kind") == "oci-manifest"), None)
    if manifest is None:
        group.only_catalog("image.digest")
    else:
        group.differ("image.digest", record.digest, _digest(manifest))
        if "size" in _annotations(manifest):
            group.differ("image.size", record.size, _annotations(manifest)["size"])
    recipe = build.get("externalParameters", {}).get("recipe", {})
    group.differ("image.recipe_digest", record.recipe_digest, recipe.get("digest"))
    parent = next((d for d in _dependencies(stmt) if d.get("name") == "parent"), {})
    group.differ("image.parent", record.parent, str(parent.get("uri", "")).removeprefix("kiln:parent/"))
    group.differ(
        "image.parent_digest", record.parent_digest, _digest(parent) if parent.get("digest") else None
    )
    invocation = stmt["predicate"].get("runDetails", {}).get("metadata", {}).get("invocationId")
    if invocation:
        group.differ("image.build_id", record.build_id, invocation)
    return group.result(f"name, version, digest, size, recipe and parent match ({record.digest})")


def check_artifacts(stmt: dict[str, Any], record: ImageRecord) -> list[Check]:
    group = _Group("artifacts")
    subjects = [s for s in stmt["subject"] if _annotations(s).get("kind") != "oci-manifest"]
    signed = _keyed(subjects, lambda s: str(_annotations(s).get("kind", "")))
    catalog = _keyed(record.artifacts, lambda a: a.kind)
    for label in _pair(group, "artifacts", catalog, signed):
        art, subject = catalog[label], signed[label]
        name = str(subject.get("name", ""))
        if not (art.path == name or art.path.endswith("/" + name)):
            group.differ(f"artifacts[{label}].path", art.path, f"…/{name}")
        group.differ(f"artifacts[{label}].digest", art.digest, _digest(subject))
        if "size" in _annotations(subject):
            group.differ(f"artifacts[{label}].size", art.size, _annotations(subject)["size"])
    return group.result(f"{len(signed)} artifact(s): kind, path, digest and size match")


def check_evidence(stmt: dict[str, Any], record: ImageRecord) -> list[Check]:
    group = _Group("evidence")
    files = [b for b in _byproducts(stmt) if b.get("name") not in (PACKAGE_LIST, CATALOG_LOCK)]
    signed = _keyed(files, lambda b: str(b.get("name", "")))
    # The provenance cannot name its own envelope: that row is the one verify opened.
    rows = [e for e in record.evidence if not e.kind.startswith("provenance")]
    catalog = _keyed(rows, lambda e: e.kind)
    for label in _pair(group, "evidence", catalog, signed):
        row, item = catalog[label], signed[label]
        digest = _digest(item)
        group.differ(f"evidence[{label}].digest", row.digest, digest)
        if Path(row.path).name != digest.partition(":")[2]:
            group.differ(f"evidence[{label}].path", row.path, f"…/blobs/sha256/{digest.partition(':')[2]}")
        if "summary" in _annotations(item):
            signed_summary = json.loads(canonical_json(_annotations(item)["summary"]))
            catalog_summary = json.loads(canonical_json(row.summary))
            for key in sorted(catalog_summary.keys() | signed_summary.keys()):
                group.differ(
                    f"evidence[{label}].summary.{key}",
                    catalog_summary.get(key, ABSENT),
                    signed_summary.get(key, ABSENT),
                )
    return group.result(f"{len(signed)} evidence file(s): kind, digest, path and summary match")


def _parameter(value: object) -> object:
    """Parameters are catalogued as strings (numbers keep their text)."""
    return value if isinstance(value, (str, bool)) else json.dumps(value)


def check_components(stmt: dict[str, Any], record: ImageRecord) -> list[Check]:
    group = _Group("components")
    deps = [d for d in _dependencies(stmt) if str(d.get("uri", "")).startswith("kiln:component/")]
    signed = _keyed(deps, lambda d: str(d.get("name", "")))
    catalog = _keyed(record.components, lambda c: c.name)
    labels = _pair(group, "components", catalog, signed)
    if labels != [label for label in catalog if label in signed]:
        group.differ("components order", list(catalog), list(signed))
    for label in labels:
        comp, dep = catalog[label], signed[label]
        version = str(dep.get("uri", "")).rpartition("@")[2]
        group.differ(f"components[{label}].version", comp.version, version)
        group.differ(f"components[{label}].digest", comp.digest, _digest(dep))
        params = {k: _parameter(v) for k, v in (_annotations(dep).get("parameters") or {}).items()}
        for key in sorted(comp.parameters.keys() | params.keys()):
            group.differ(
                f"components[{label}].parameters.{key}",
                comp.parameters.get(key, ABSENT),
                params.get(key, ABSENT),
            )
    return group.result(f"{len(signed)} component(s): version, document digest and parameters match")


def _signed_packages(item: dict[str, Any]) -> list[list[str]] | str:
    """The signed package rows, or why they cannot be read."""
    try:
        content = base64.b64decode(str(item["content"]), validate=True)
        data = json.loads(content)
        rows = data["rows"]
    except (KeyError, ValueError, TypeError):
        return "the signed package list cannot be read"
    if sha256_digest(content) != _digest(item) or data.get("columns") != list(PACKAGE_COLUMNS):
        return "the signed package list does not match its own digest"
    return [[str(v) for v in row] for row in rows]


def _package_differences(group: _Group, catalog: list[list[str]], signed: list[list[str]]) -> None:
    def by_key(rows: list[list[str]]) -> dict[str, list[list[str]]]:
        out: dict[str, list[list[str]]] = {}
        for row in rows:
            out.setdefault(f"{row[0]}:{row[1]}" if row[1] else row[0], []).append(row)
        return out

    mine, theirs = by_key(catalog), by_key(signed)
    for key in sorted(mine.keys() | theirs.keys()):
        a, b = mine.get(key, []), theirs.get(key, [])
        if a == b:
            continue
        if len(a) == 1 and len(b) == 1:
            for column, x, y in zip(PACKAGE_COLUMNS, a[0], b[0], strict=True):
                group.differ(f"packages[{key}].{column}", x, y)
        elif not b:
            group.only_catalog(f"packages[{key}]" + (f" ({len(a)} rows)" if len(a) > 1 else ""))
        elif not a:
            group.only_signed(f"packages[{key}]")
        else:
            group.differ(f"packages[{key}] rows", len(a), len(b))
    if len(group.failed) > MAX_PACKAGE_LINES:
        more = len(group.failed) - MAX_PACKAGE_LINES
        del group.failed[MAX_PACKAGE_LINES:]
        group.failed.append(Check("catalog packages", False, f"… and {more} more differences"))


def check_packages(stmt: dict[str, Any], packages: list[Package]) -> list[Check]:
    item = next((b for b in _byproducts(stmt) if b.get("name") == PACKAGE_LIST), None)
    if item is None:
        return [_not_covered("packages", "the package list")]
    rows = package_rows(packages)
    group = _Group("packages")
    signed = _signed_packages(item)
    if isinstance(signed, str):
        return [Check("catalog packages", False, signed)]
    if rows != signed:
        group.failed.append(
            Check(
                "catalog packages",
                False,
                f"{len(rows)} rows in the catalog, {len(signed)} rows {SIGNED} (package list digest "
                f"{sha256_digest(canonical_json({'columns': list(PACKAGE_COLUMNS), 'rows': rows}))} "
                f"in the catalog, {_digest(item)} {SIGNED})",
            )
        )
        _package_differences(group, rows, signed)
    return group.result(f"{len(rows)} package rows match (package list {_digest(item)})")


def check_lock(stmt: dict[str, Any], lock: dict[str, Any] | None) -> list[Check]:
    item = next((b for b in _byproducts(stmt) if b.get("name") == CATALOG_LOCK), None)
    if item is None:
        return [_not_covered("lock", "the lock data")]
    group = _Group("lock")
    group.differ("lock (resolved inputs) digest", sha256_digest(canonical_json(lock)), _digest(item))
    return group.result(f"resolved inputs match ({_digest(item)})")


def image_dir(stmt: dict[str, Any], record: ImageRecord) -> Path | None:
    """The directory the provenance names artifacts relative to, found through the catalog paths."""
    names = {str(s.get("name", "")) for s in stmt["subject"] if _annotations(s).get("kind") != "oci-manifest"}
    for art in record.artifacts:
        for name in names:
            if name and not name.startswith("/") and art.path.endswith("/" + name):
                return Path(art.path[: -len(name) - 1])
    return None


def check_documents(stmt: dict[str, Any], base: Path | None) -> list[Check]:
    """Each kept component and test document beside the artifacts, re-hashed."""
    deps = [d for d in _dependencies(stmt) if _annotations(d).get("document")]
    if not deps:
        if stmt["predicate"].get("buildDefinition", {}).get("buildType") == BUILD_TYPE_V1:
            return [_not_covered("component documents", "the kept component documents")]
        return []
    if base is None:
        return [Check("component documents", False, "no catalogued artifact locates the image directory")]
    checks: list[Check] = []
    for dep in deps:
        rel = str(_annotations(dep)["document"])
        role = str(dep.get("uri", "")).partition(":")[2].partition("/")[0] or "component"
        what = f"{role} document {rel} ({dep.get('name')})"
        path = base / rel
        if Path(rel).is_absolute() or ".." in Path(rel).parts:
            checks.append(Check(what, False, "the signed path leaves the image directory"))
        elif not path.is_file():
            checks.append(Check(what, False, f"missing on disk: {path}"))
        elif (actual := "sha256:" + file_sha256(path)) != _digest(dep):
            checks.append(Check(what, False, f"{actual} on disk, {_digest(dep)} {SIGNED}"))
        else:
            checks.append(Check(what, True, actual))
    return checks


def _not_covered(what: str, thing: str) -> Check:
    return Check(
        f"catalog {what}",
        True,
        f"not checked: this provenance (format v1) does not record {thing}; rebuild to cover it",
        skipped=True,
    )


def check_catalog(stmt: dict[str, Any], entry: CatalogEntry) -> list[Check]:
    """Every catalogued field the provenance covers, then the kept documents on disk."""
    record = entry.record
    v1 = stmt["predicate"].get("buildDefinition", {}).get("buildType") == BUILD_TYPE_V1
    notes = [_not_covered("sizes and evidence summaries", "sizes and evidence summaries")] if v1 else []
    return [
        *check_image(stmt, record),
        *check_artifacts(stmt, record),
        *check_evidence(stmt, record),
        *check_components(stmt, record),
        *check_packages(stmt, entry.packages),
        *check_lock(stmt, entry.lock),
        *check_documents(stmt, image_dir(stmt, record)),
        *notes,
    ]
