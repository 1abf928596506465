"""The root tree of an image, merged from its OCI layer tars, and a file-level diff of two trees.

Each layer tar is read once (streamed, content hashed with sha256), whiteouts and opaque markers
applied to the layers below it (OCI image-spec ``layer.md``). A layer is parsed once per diff even
when both images share it (same uncompressed digest), and two images with the same layer list have
the same tree without reading anything. Only metadata and digests are kept: a diff names files,
never shows their content.
"""

from __future__ import annotations

import gzip
import hashlib
import tarfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal, Protocol, cast

from pydantic import BaseModel, ConfigDict

from kiln.layers.walk import OPAQUE_MARKER, WHITEOUT_PREFIX
from kiln.outputs.layout import layer_sources, open_layout

NodeType = Literal["file", "dir", "symlink", "hardlink", "chr", "blk", "fifo"]
_TYPES: dict[bytes, NodeType] = {
    tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.CONTTYPE: "file", tarfile.DIRTYPE: "dir",
    tarfile.SYMTYPE: "symlink", tarfile.LNKTYPE: "hardlink", tarfile.CHRTYPE: "chr", tarfile.BLKTYPE: "blk",
    tarfile.FIFOTYPE: "fifo",
}  # fmt: skip
FIELDS = ("type", "mode", "uid", "gid", "size", "target", "device", "sha256")


@dataclass(frozen=True, slots=True)
class Node:
    type: NodeType
    mode: int
    uid: int
    gid: int
    size: int
    target: str  # symlink or hardlink target ("" otherwise)
    device: tuple[int, int] | None
    sha256: str  # regular files only ("" otherwise)


Tree = dict[str, Node]
Layer = tuple[list[tuple[str, Node]], list[str], list[str]]  # entries, whiteouts, opaque dirs


class FileChange(BaseModel):
    """One path that differs: its kind of change, and type, size and mode on each side."""

    model_config = ConfigDict(frozen=True)

    path: str
    change: Literal["added", "removed", "changed"]
    type: NodeType
    old_size: int | None = None
    new_size: int | None = None
    old_mode: str | None = None
    new_mode: str | None = None
    fields: list[str] = []  # what differs, for "changed": type, mode, uid, gid, size, target, device, sha256


def _normal(name: str) -> str:
    name = name.removeprefix("./").strip("/")
    return name


def read_layer(stream: IO[bytes]) -> Layer:
    entries: list[tuple[str, Node]] = []
    whiteouts: list[str] = []
    opaque: list[str] = []
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            path = _normal(member.name)
            head, _, base = path.rpartition("/")
            if base == OPAQUE_MARKER:
                opaque.append(head)
                continue
            if base.startswith(WHITEOUT_PREFIX):
                whiteouts.append((head + "/" if head else "") + base.removeprefix(WHITEOUT_PREFIX))
                continue
            kind = _TYPES.get(member.type)
            if kind is None or not path:
                continue
            digest = ""
            if kind == "file":
                h = hashlib.sha256()
                source = tar.extractfile(member)
                assert source is not None
                while chunk := source.read(1 << 20):
                    h.update(chunk)
                digest = h.hexdigest()
            device = (member.devmajor, member.devminor) if kind in ("chr", "blk") else None
            target = _normal(member.linkname) if kind == "hardlink" else member.linkname
            size = member.size if kind == "file" else 0
            node = Node(kind, member.mode & 0o7777, member.uid, member.gid, size, target, device, digest)
            entries.append((path, node))
    return entries, whiteouts, opaque


def _remove_under(tree: Tree, directory: str, *, keep_self: bool) -> None:
    prefix = directory + "/" if directory else ""
    doomed = [p for p in tree if p.startswith(prefix)] if prefix else list(tree)
    for p in doomed:
        del tree[p]
    if not keep_self:
        tree.pop(directory, None)


def merge(layers: list[Layer]) -> Tree:
    """The tree the layers make, bottom first."""
    tree: Tree = {}
    for entries, whiteouts, opaque in layers:
        for directory in opaque:
            _remove_under(tree, directory, keep_self=True)
        for path in whiteouts:
            if path in tree and tree[path].type == "dir":
                _remove_under(tree, path, keep_self=False)
            else:
                tree.pop(path, None)
        for path, node in entries:
            old = tree.get(path)
            if old is not None and old.type == "dir" and node.type != "dir":
                _remove_under(tree, path, keep_self=False)
            tree[path] = node
    return tree


class Opener(Protocol):
    """Something that opens one uncompressed layer tar stream."""

    def open(self) -> AbstractContextManager[IO[bytes]]: ...


def layout_layers(layout: Path) -> list[tuple[str, Opener]]:
    """(diff id, opener) of every layer of the OCI layout at ``layout``, bottom first."""
    image = open_layout(layout)
    ids = image.diff_ids
    return [(ids[i] if i < len(ids) else s.digest, s) for i, s in enumerate(layer_sources(image))]


@dataclass(frozen=True)
class TarOpener:
    """A plain or gzip-compressed tar file as one layer (a ``rootfs-tar`` artifact)."""

    path: Path

    @contextmanager
    def _open(self) -> Iterator[IO[bytes]]:
        with open(self.path, "rb") as raw:
            if raw.read(2) == b"\x1f\x8b":
                raw.seek(0)
                with gzip.GzipFile(fileobj=raw) as gz:
                    yield cast(IO[bytes], gz)
            else:
                raw.seek(0)
                yield raw

    def open(self) -> AbstractContextManager[IO[bytes]]:
        return self._open()


def trees(a: list[tuple[str, Opener]], b: list[tuple[str, Opener]]) -> tuple[Tree, Tree]:
    """Both trees, reading each distinct layer once (the two images' unshared layers in parallel)."""
    if [d for d, _ in a] == [d for d, _ in b]:
        return {}, {}  # same layers, same tree: nothing to read
    wanted: dict[str, Opener] = {}
    for digest, opener in [*a, *b]:
        wanted.setdefault(digest, opener)

    def load(opener: Opener) -> Layer:
        with opener.open() as stream:
            return read_layer(stream)

    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="kiln-diff") as pool:
        parsed = dict(zip(wanted, pool.map(load, wanted.values()), strict=True))
    return merge([parsed[d] for d, _ in a]), merge([parsed[d] for d, _ in b])


def _mode(node: Node) -> str:
    return f"{node.mode:04o}"


def diff_trees(old: Tree, new: Tree) -> list[FileChange]:
    """Every path added, removed or changed (by type, mode, owner, size, target, device or content)."""
    changes: list[FileChange] = []
    for path in sorted(old.keys() | new.keys()):
        a, b = old.get(path), new.get(path)
        if a is None:
            assert b is not None
            changes.append(
                FileChange(path=path, change="added", type=b.type, new_size=b.size, new_mode=_mode(b))
            )
        elif b is None:
            changes.append(
                FileChange(path=path, change="removed", type=a.type, old_size=a.size, old_mode=_mode(a))
            )
        elif a != b:
            fields = [f for f in FIELDS if getattr(a, f) != getattr(b, f)]
            changes.append(FileChange(path=path, change="changed", type=b.type, old_size=a.size,
                                      new_size=b.size, old_mode=_mode(a), new_mode=_mode(b),
                                      fields=fields))  # fmt: skip
    return changes
