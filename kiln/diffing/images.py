"""``kiln diff A B`` and the API's diff: one typed answer from the catalog, the vulnerability
database and the images' layers. Everything is "B compared with A"."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kiln.catalog import Catalog, ImageRecord, PackageRecord
from kiln.catalog.fleet import release_of
from kiln.diffing.tree import FileChange, Opener, TarOpener, diff_trees, layout_layers, trees
from kiln.evidence.debversion import compare
from kiln.evidence.vulndb import VulnDb
from kiln.evidence.vulnscan import Finding, match
from kiln.readthrough import readable_artifact
from kiln.store import Store


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class PackageChange(_Frozen):
    name: str
    architecture: str
    old: str
    new: str


class PackageDiff(_Frozen):
    added: list[PackageRecord] = Field(default_factory=list)
    removed: list[PackageRecord] = Field(default_factory=list)
    upgraded: list[PackageChange] = Field(default_factory=list)
    downgraded: list[PackageChange] = Field(default_factory=list)


class CveChange(_Frozen):
    vuln_id: str
    package: str  # source package
    installed: str  # the version on the side that has the finding
    fixed: str | None
    severity: str
    status: str


class CveDiff(_Frozen):
    fixed: list[CveChange] = Field(default_factory=list)
    introduced: list[CveChange] = Field(default_factory=list)
    note: str | None = None  # why nothing could be compared (empty database, unknown release)


class ValueChange(_Frozen):
    name: str
    old: Any = None
    new: Any = None


class ComponentChange(_Frozen):
    name: str
    change: Literal["added", "removed", "changed"]
    old_version: str | None = None
    new_version: str | None = None
    document_changed: bool = False
    parameters: list[ValueChange] = Field(default_factory=list)


class FileDiff(_Frozen):
    changes: list[FileChange] = Field(default_factory=list)
    note: str | None = None  # why no tree could be read (artifacts gone)


class ImageDiff(_Frozen):
    """What changed from ``old`` (A) to ``new`` (B)."""

    old: str
    new: str
    packages: PackageDiff
    cves: CveDiff
    components: list[ComponentChange]
    config: list[ValueChange]
    compliance_score: ValueChange | None
    size: ValueChange | None
    files: FileDiff | None  # None: the file diff was not asked for

    @property
    def empty(self) -> bool:
        return not (
            self.packages.added or self.packages.removed or self.packages.upgraded
            or self.packages.downgraded or self.cves.fixed or self.cves.introduced or self.components
            or self.config or self.compliance_score or self.size or (self.files and self.files.changes)
        )  # fmt: skip


def package_diff(old: list[PackageRecord], new: list[PackageRecord]) -> PackageDiff:
    before = {(p.name, p.architecture): p for p in old}
    after = {(p.name, p.architecture): p for p in new}
    up: list[PackageChange] = []
    down: list[PackageChange] = []
    for key in sorted(before.keys() & after.keys()):
        a, b = before[key].version, after[key].version
        if a != b:
            change = PackageChange(name=key[0], architecture=key[1], old=a, new=b)
            (up if compare(b, a) > 0 else down).append(change)
    return PackageDiff(
        added=[after[k] for k in sorted(after.keys() - before.keys())],
        removed=[before[k] for k in sorted(before.keys() - after.keys())],
        upgraded=up,
        downgraded=down,
    )


def _sources(packages: list[PackageRecord]) -> dict[str, tuple[str, list[str]]]:
    """{source: (oldest source version, binaries)}, as the scanner groups an image's packages."""
    grouped: dict[tuple[str, str], list[str]] = defaultdict(list)
    for p in packages:
        grouped[(p.source or p.name, p.source_version or p.version)].append(p.name)
    sources: dict[str, tuple[str, list[str]]] = {}
    for (source, version), names in sorted(grouped.items()):
        if source not in sources or compare(version, sources[source][0]) < 0:
            sources[source] = (version, names)
    return sources


def _findings(db: VulnDb, release: str, packages: list[PackageRecord]) -> dict[tuple[str, str], Finding]:
    sources = _sources(packages)
    return {(f.vuln_id, f.package): f for f in match(db.lookup(release, sorted(sources)), sources)}


def _cve(f: Finding) -> CveChange:
    return CveChange(vuln_id=f.vuln_id, package=f.package, installed=f.installed, fixed=f.fixed,
                     severity=f.severity, status=f.status)  # fmt: skip


def cve_diff(catalog: Catalog, db: VulnDb | None, old: ImageRecord, new: ImageRecord,
             packages: tuple[list[PackageRecord], list[PackageRecord]]) -> CveDiff:  # fmt: skip
    if db is None or not db.sources():
        return CveDiff(note="the vulnerability database is empty (kiln vulndb import)")
    releases = release_of(catalog, old), release_of(catalog, new)
    if None in releases:
        return CveDiff(note="not built on a Debian release Kiln can tell: CVEs not compared")
    assert releases[0] is not None and releases[1] is not None
    a = _findings(db, releases[0], packages[0])
    b = _findings(db, releases[1], packages[1])
    return CveDiff(
        fixed=[_cve(a[k]) for k in sorted(a.keys() - b.keys())],
        introduced=[_cve(b[k]) for k in sorted(b.keys() - a.keys())],
    )


def component_diff(old: ImageRecord, new: ImageRecord) -> list[ComponentChange]:
    before = {c.name: c for c in old.components}
    after = {c.name: c for c in new.components}
    changes = []
    for name in [*before, *(n for n in after if n not in before)]:
        a, b = before.get(name), after.get(name)
        if b is None:
            assert a is not None
            changes.append(ComponentChange(name=name, change="removed", old_version=a.version))
        elif a is None:
            changes.append(ComponentChange(name=name, change="added", new_version=b.version))
        elif a != b:
            params = _values(dict(a.parameters), dict(b.parameters), "")
            changes.append(ComponentChange(name=name, change="changed", old_version=a.version,
                                           new_version=b.version, document_changed=a.digest != b.digest,
                                           parameters=params))  # fmt: skip
    return changes


def _values(old: dict[str, Any], new: dict[str, Any], prefix: str) -> list[ValueChange]:
    return [
        ValueChange(name=prefix + k, old=old.get(k), new=new.get(k))
        for k in sorted(old.keys() | new.keys())
        if old.get(k) != new.get(k)
    ]


def _env(config: dict[str, Any]) -> dict[str, str]:
    return dict(item.partition("=")[::2] for item in config.get("Env") or [])


def config_diff(old: dict[str, Any], new: dict[str, Any]) -> list[ValueChange]:
    """Entrypoint, command, user, working directory, stop signal; environment variables, exposed
    ports, volumes and labels one by one (from the OCI config's ``config`` object)."""
    a, b = old.get("config") or {}, new.get("config") or {}
    changes = _values(
        {k: a.get(k) for k in ("Entrypoint", "Cmd", "User", "WorkingDir", "StopSignal")},
        {k: b.get(k) for k in ("Entrypoint", "Cmd", "User", "WorkingDir", "StopSignal")},
        "",
    )
    changes += _values(_env(a), _env(b), "Env.")
    for key in ("ExposedPorts", "Volumes"):
        ka, kb = set(a.get(key) or {}), set(b.get(key) or {})
        changes += [ValueChange(name=f"{key}.{k}", old=k in ka, new=k in kb) for k in sorted(ka ^ kb)]
    changes += _values(dict(a.get("Labels") or {}), dict(b.get("Labels") or {}), "Labels.")
    return changes


def _score(image: ImageRecord) -> float | None:
    for e in image.evidence:
        if e.kind == "compliance-results" and isinstance(e.summary.get("score"), int | float):
            return float(e.summary["score"])
    return None


def _layers(store: Store, image: ImageRecord) -> list[tuple[str, Opener]] | None:
    """The image's layers (OCI layout, else a rootfs tar); None when no artifact is on disk."""
    for kind in ("oci", "rootfs-tar"):
        for artifact in image.artifacts:
            if artifact.kind != kind:
                continue
            path = readable_artifact(store, artifact)
            if not path.exists():
                continue
            if kind == "oci":
                return layout_layers(path)
            return [(artifact.digest, TarOpener(path))]
    return None


def file_diff(store: Store, old: ImageRecord, new: ImageRecord) -> FileDiff:
    if old.digest == new.digest:
        return FileDiff()
    a, b = _layers(store, old), _layers(store, new)
    missing = [i.ref for i, layers in ((old, a), (new, b)) if layers is None]
    if missing:
        return FileDiff(
            note=f"no OCI layout or root tar on disk for {', '.join(missing)}: files not compared"
        )
    assert a is not None and b is not None
    tree_a, tree_b = trees(a, b)
    return FileDiff(changes=diff_trees(tree_a, tree_b))


def _config(store: Store, image: ImageRecord) -> dict[str, Any] | None:
    """The OCI config of the image's layout (None when the layout is not on disk)."""
    from kiln.outputs.layout import open_layout

    for artifact in image.artifacts:
        path = readable_artifact(store, artifact) if artifact.kind == "oci" else None
        if path is not None and path.exists():
            return open_layout(path).config
    return None


def diff_images(
    catalog: Catalog, store: Store, old_ref: str, new_ref: str, *, db: VulnDb | None = None,
    files: bool = True,
) -> ImageDiff:  # fmt: skip
    """Compare two recorded image versions (any two: names may differ)."""
    old, new = catalog.get_image(old_ref), catalog.get_image(new_ref)
    packages = catalog.packages(old.ref), catalog.packages(new.ref)
    configs = _config(store, old), _config(store, new)
    config = config_diff(configs[0], configs[1]) if configs[0] is not None and configs[1] is not None else []
    score = _score(old), _score(new)
    return ImageDiff(
        old=old.ref,
        new=new.ref,
        packages=package_diff(*packages),
        cves=cve_diff(catalog, db, old, new, packages),
        components=component_diff(old, new),
        config=config,
        compliance_score=ValueChange(name="compliance_score", old=score[0], new=score[1])
        if score[0] != score[1] else None,
        size=ValueChange(name="size", old=old.size, new=new.size) if old.size != new.size else None,
        files=file_diff(store, old, new) if files else None,
    )  # fmt: skip
