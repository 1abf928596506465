"""Reproducibility check: compare two OCI layouts of the same recipe and say exactly what differs.

Manifest digests equal means bit-identical images. Otherwise the config, the manifest annotations and
each layer pair are compared; for a layer pair that differs, every tar entry is compared by type,
metadata, xattrs and content hash, so the report names the files (and the attributes) that make the
build unreproducible. ``diffoscope`` adds its detailed report when it is installed.
"""

from __future__ import annotations

import hashlib
import shutil
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kiln.outputs.layout import Descriptor, LayoutImage, open_layer, open_layout
from kiln.sandbox.run import CommandTimedOut, run

MAX_LISTED = 50
_FIELDS = ("type", "mode", "uid", "gid", "mtime", "size", "linkname", "device", "xattrs", "content")


@dataclass(frozen=True)
class EntryDifference:
    """One tar entry that differs: ``fields`` names what (or ``only in first``/``only in second``)."""

    path: str
    fields: tuple[str, ...]


@dataclass(frozen=True)
class LayerDifference:
    index: int
    first: str
    second: str
    same_content: bool
    """The uncompressed tars are identical: only the compression differs."""
    entries: tuple[EntryDifference, ...] = ()
    order_differs: bool = False
    diffoscope: str | None = None


@dataclass(frozen=True)
class LayoutComparison:
    first: Path
    second: Path
    manifests: tuple[str, str]
    config_fields: tuple[str, ...] = ()
    annotations: tuple[str, ...] = ()
    layer_counts: tuple[int, int] = (0, 0)
    layers: tuple[LayerDifference, ...] = field(default_factory=tuple)

    @property
    def identical(self) -> bool:
        return self.manifests[0] == self.manifests[1]

    def summary(self) -> str:
        """A human report, one finding per line."""
        if self.identical:
            return f"identical: both images are {self.manifests[0]}"
        lines = [f"images differ: {self.manifests[0]} vs {self.manifests[1]}"]
        if self.layer_counts[0] != self.layer_counts[1]:
            lines.append(f"layer count: {self.layer_counts[0]} vs {self.layer_counts[1]}")
        if self.config_fields:
            lines.append(f"config differs in: {', '.join(self.config_fields)}")
        if self.annotations:
            lines.append(f"manifest annotations differ: {', '.join(self.annotations)}")
        for layer in self.layers:
            if layer.same_content:
                lines.append(f"layer {layer.index}: same tar, different compression")
                continue
            lines.append(f"layer {layer.index}: {len(layer.entries)} entries differ")
            lines += [f"  {e.path}: {', '.join(e.fields)}" for e in layer.entries[:MAX_LISTED]]
            if len(layer.entries) > MAX_LISTED:
                lines.append(f"  ... and {len(layer.entries) - MAX_LISTED} more")
            if layer.order_differs:
                lines.append("  entries are the same but in a different order")
            if layer.diffoscope:
                lines.append("  diffoscope:\n" + layer.diffoscope)
        return "\n".join(lines)


def _signature(member: tarfile.TarInfo, content: str) -> dict[str, Any]:
    xattrs = tuple(sorted((k, v) for k, v in member.pax_headers.items() if k.startswith("SCHILY.xattr.")))
    return {
        "type": member.type,
        "mode": member.mode,
        "uid": member.uid,
        "gid": member.gid,
        "mtime": member.mtime,
        "size": member.size,
        "linkname": member.linkname,
        "device": (member.devmajor, member.devminor) if member.ischr() or member.isblk() else None,
        "xattrs": xattrs,
        "content": content,
    }


def _entries(image: LayoutImage, desc: Descriptor) -> dict[str, dict[str, Any]]:
    """Every entry of a layer (in tar order) with its metadata and content hash."""
    found: dict[str, dict[str, Any]] = {}
    with open_layer(image, desc) as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            content = ""
            if member.isreg():
                digest = hashlib.sha256()
                source = tar.extractfile(member)
                assert source is not None
                while chunk := source.read(1 << 20):
                    digest.update(chunk)
                content = digest.hexdigest()
            found[member.name] = _signature(member, content)
    return found


def _diffoscope(first: Path, second: Path, timeout: float) -> str | None:
    tool = shutil.which("diffoscope")
    if tool is None:
        return None
    try:
        result = run([tool, "--text", "-", "--max-report-size", "200000", str(first), str(second)],
                     check=False, timeout=timeout)  # fmt: skip
    except CommandTimedOut:
        return f"(diffoscope timed out after {timeout:g}s)"
    return result.stdout.strip() or result.stderr.strip() or None


def compare_layers(
    a: LayoutImage, b: LayoutImage, index: int, *, use_diffoscope: bool = True, timeout: float = 300
) -> LayerDifference:
    da, db = a.layers[index], b.layers[index]
    ids_a, ids_b = a.diff_ids, b.diff_ids
    same_tar = index < min(len(ids_a), len(ids_b)) and ids_a[index] == ids_b[index]
    if same_tar:
        return LayerDifference(index, da.digest, db.digest, same_content=True)
    ea, eb = _entries(a, da), _entries(b, db)
    diffs = []
    for path in sorted(ea.keys() | eb.keys()):
        if path not in eb:
            diffs.append(EntryDifference(path, ("only in first",)))
        elif path not in ea:
            diffs.append(EntryDifference(path, ("only in second",)))
        elif changed := tuple(f for f in _FIELDS if ea[path][f] != eb[path][f]):
            diffs.append(EntryDifference(path, changed))
    order_differs = not diffs and list(ea) != list(eb)
    report = _diffoscope(a.blob(da.digest), b.blob(db.digest), timeout) if use_diffoscope else None
    return LayerDifference(index, da.digest, db.digest, False, tuple(diffs), order_differs, report)


def _differing_keys(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key in sorted(a.keys() | b.keys()):
        va, vb = a.get(key), b.get(key)
        if va == vb:
            continue
        if isinstance(va, dict) and isinstance(vb, dict):
            keys += _differing_keys(va, vb, f"{prefix}{key}.")
        else:
            keys.append(prefix + key)
    return keys


def compare_layouts(
    first: Path,
    second: Path,
    *,
    tag: str | None = None,
    use_diffoscope: bool = True,
    timeout: float = 300,
) -> LayoutComparison:
    """Compare the image tagged ``tag`` (or the only one) in two layouts."""
    a, b = open_layout(first, tag), open_layout(second, tag)
    manifests = (a.manifest_digest, b.manifest_digest)
    if manifests[0] == manifests[1]:
        return LayoutComparison(a.layout, b.layout, manifests, layer_counts=(len(a.layers), len(b.layers)))
    layers = tuple(
        compare_layers(a, b, i, use_diffoscope=use_diffoscope, timeout=timeout)
        for i in range(min(len(a.layers), len(b.layers)))
        if a.layers[i].digest != b.layers[i].digest
    )
    return LayoutComparison(
        a.layout,
        b.layout,
        manifests,
        config_fields=tuple(_differing_keys(a.config, b.config)),
        annotations=tuple(
            _differing_keys(a.manifest.get("annotations") or {}, b.manifest.get("annotations") or {})
        ),
        layer_counts=(len(a.layers), len(b.layers)),
        layers=layers,
    )
