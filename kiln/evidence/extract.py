"""Pull a few files out of an OCI image without unpacking it: enough of a root for the scanner.

Layers are read in order as tar streams; only wanted paths are kept, and OCI whiteouts (``.wh.NAME``)
and opaque markers (``.wh..wh..opq``) of later layers remove what earlier layers put there.
"""

from __future__ import annotations

import tarfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from kiln.errors import KilnError
from kiln.outputs.layout import open_layer, open_layout
from kiln.rootfs.dpkg import STATUS_FILE

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
SCAN_FILES = frozenset({STATUS_FILE, "etc/os-release", "usr/lib/os-release"})
Entry = tuple[str, bytes]  # ("file", content) or ("symlink", target)


def _rel(name: str) -> str:
    parts = [p for p in PurePosixPath(name.lstrip("/")).parts if p not in ("", ".")]
    if ".." in parts:
        raise KilnError(f"layer entry escapes the root: {name!r}")
    return "/".join(parts)


def _drop(kept: dict[str, Entry], target: str, keep: set[str]) -> None:
    for path in [p for p in kept if (p == target or p.startswith(target + "/")) and p not in keep]:
        del kept[path]


def read_files(layout: Path, wanted: Callable[[str], bool]) -> dict[str, Entry]:
    """The final content of every wanted path across the image's layers."""
    image = open_layout(layout)
    kept: dict[str, Entry] = {}
    for desc in image.layers:
        written: set[str] = set()
        with open_layer(image, desc) as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                rel = _rel(member.name)
                parent, _, base = rel.rpartition("/")
                if base == OPAQUE:
                    _drop(kept, parent, written)
                elif base.startswith(WHITEOUT):
                    _drop(kept, f"{parent}/{base[len(WHITEOUT) :]}".lstrip("/"), written)
                elif not member.isdir():
                    _drop(kept, rel, written)  # a file or link replaces whatever was there
                    if wanted(rel) and member.isfile():
                        fh = tar.extractfile(member)
                        kept[rel] = ("file", fh.read() if fh else b"")
                        written.add(rel)
                    elif wanted(rel) and member.issym():
                        kept[rel] = ("symlink", member.linkname.encode())
                        written.add(rel)
    return kept


def write_files(files: dict[str, Entry], dest: Path) -> None:
    for rel, (kind, data) in sorted(files.items()):
        path = dest / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind == "symlink":
            path.symlink_to(data.decode())
        else:
            path.write_bytes(data)
