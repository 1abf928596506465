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
from kiln.store import file_sha256

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


def _tar_entries(tar: tarfile.TarFile) -> dict[str, dict[str, Any]]:
    """Every entry of a tar (in tar order) with its metadata and content hash."""
    found: dict[str, dict[str, Any]] = {}
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


def _entries(image: LayoutImage, desc: Descriptor) -> dict[str, dict[str, Any]]:
    with open_layer(image, desc) as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
        return _tar_entries(tar)


def _diff_entries(
    ea: dict[str, dict[str, Any]], eb: dict[str, dict[str, Any]]
) -> tuple[tuple[EntryDifference, ...], bool]:
    """Entries that differ, and whether the only difference is their order."""
    diffs = []
    for path in sorted(ea.keys() | eb.keys()):
        if path not in eb:
            diffs.append(EntryDifference(path, ("only in first",)))
        elif path not in ea:
            diffs.append(EntryDifference(path, ("only in second",)))
        elif changed := tuple(f for f in _FIELDS if ea[path][f] != eb[path][f]):
            diffs.append(EntryDifference(path, changed))
    return tuple(diffs), not diffs and list(ea) != list(eb)


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
    diffs, order_differs = _diff_entries(_entries(a, da), _entries(b, db))
    report = _diffoscope(a.blob(da.digest), b.blob(db.digest), timeout) if use_diffoscope else None
    return LayerDifference(index, da.digest, db.digest, False, diffs, order_differs, report)


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


def _is_tar(path: Path) -> bool:
    """A tar (possibly compressed) with at least one entry: an all-zero disk image looks like an empty tar."""
    try:
        with tarfile.open(path, "r:*") as tar:
            return tar.next() is not None
    except (tarfile.TarError, OSError, EOFError):
        return False


def _block_diff(first: Path, second: Path, block: int = 4096) -> str:
    """Sizes, first differing offset and number of differing blocks of two binary files."""
    differing, first_offset, offset = 0, None, 0
    with open(first, "rb") as fa, open(second, "rb") as fb:
        while True:
            ca, cb = fa.read(block), fb.read(block)
            if not ca and not cb:
                break
            if ca != cb:
                differing += 1
                if first_offset is None:
                    first_offset = offset + next(
                        (i for i, (x, y) in enumerate(zip(ca, cb, strict=False)) if x != y),
                        min(len(ca), len(cb)),
                    )
            offset += block
    sizes = (first.stat().st_size, second.stat().st_size)
    return (
        f"sizes {sizes[0]} vs {sizes[1]} bytes; first difference at byte {first_offset}; "
        f"{differing} of {max(sizes) // block + 1} {block}-byte blocks differ"
    )


def compare_files(first: Path, second: Path, *, use_diffoscope: bool = True, timeout: float = 300) -> str:
    """A report on how two artifacts of the same kind differ, or ``"identical"``:
    OCI layouts layer by layer, tar archives entry by entry, other files (disk images) block by block,
    plus diffoscope's report when it is installed."""
    if first.is_dir() and second.is_dir():
        return compare_layouts(first, second, use_diffoscope=use_diffoscope, timeout=timeout).summary()
    if file_sha256(first) == file_sha256(second):
        return "identical"
    lines: list[str] = []
    if _is_tar(first) and _is_tar(second):
        with tarfile.open(first, "r|*") as ta, tarfile.open(second, "r|*") as tb:
            diffs, order_differs = _diff_entries(_tar_entries(ta), _tar_entries(tb))
        lines.append(f"{len(diffs)} archive entries differ")
        lines += [f"  {d.path}: {', '.join(d.fields)}" for d in diffs[:MAX_LISTED]]
        if len(diffs) > MAX_LISTED:
            lines.append(f"  ... and {len(diffs) - MAX_LISTED} more")
        if order_differs:
            lines.append("  entries are the same but in a different order")
        if not diffs and not order_differs:
            lines.append("  same entries in the same order: headers or compression differ")
    else:
        lines.append(_block_diff(first, second))
    if use_diffoscope and (report := _diffoscope(first, second, timeout)):
        lines.append("diffoscope:\n" + report)
    return "\n".join(lines)
