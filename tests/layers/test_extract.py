"""Reading a few files out of an OCI layout: layer order, whiteouts, opaque directories, symlinks."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from kiln.errors import KilnError
from kiln.evidence.installed import read_os_release
from kiln.evidence.vulnscan import SCAN_FILES
from kiln.layers.extract import read_files, write_files
from kiln.outputs.layout import layer_sources, open_layout

TAR = "application/vnd.oci.image.layer.v1.tar"


def _tar(entries: list[tuple[str, str | None, str]]) -> bytes:
    """entries: (name, content or None for a directory, symlink target or '')."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, content, link in entries:
            info = tarfile.TarInfo(name)
            if link:
                info.type, info.linkname = tarfile.SYMTYPE, link
                tar.addfile(info)
            elif content is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                data = content.encode()
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def make_layout(root: Path, layers: list[bytes]) -> Path:
    blobs = root / "blobs/sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes, media: str) -> dict[str, object]:
        h = hashlib.sha256(data).hexdigest()
        (blobs / h).write_bytes(data)
        return {"mediaType": media, "digest": f"sha256:{h}", "size": len(data)}

    diff_ids = [f"sha256:{hashlib.sha256(layer).hexdigest()}" for layer in layers]
    config = put(
        json.dumps(
            {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}}
        ).encode(),
        "application/vnd.oci.image.config.v1+json",
    )
    manifest = put(
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": config,
                "layers": [put(x, TAR) for x in layers],
            }
        ).encode(),
        "application/vnd.oci.image.manifest.v1+json",
    )
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [manifest]}))
    return root


def test_layers_whiteouts_and_opaque_dirs(tmp_path: Path) -> None:
    base = _tar(
        [
            ("etc", None, ""),
            ("usr/lib/os-release", "ID=debian\nVERSION_CODENAME=bookworm\n", ""),
            ("etc/os-release", None, "../usr/lib/os-release"),
            ("var/lib/dpkg/status", "old\n", ""),
            ("var/lib/dpkg/other", "x", ""),
            ("etc/passwd", "root", ""),
        ]
    )
    upgrade = _tar([("./var/lib/dpkg/status", "new\n", ""), ("etc/.wh.passwd", "", "")])
    wipe = _tar([("var/lib/dpkg/.wh..wh..opq", "", ""), ("var/lib/dpkg/status", "final\n", "")])
    layout = make_layout(tmp_path / "oci", [base, upgrade, wipe])
    files = read_files(
        layer_sources(open_layout(layout)),
        lambda p: p in SCAN_FILES or p.startswith("var/lib/dpkg/") or p == "etc/passwd",
    )
    assert files == {
        "usr/lib/os-release": ("file", b"ID=debian\nVERSION_CODENAME=bookworm\n"),
        "etc/os-release": ("symlink", b"../usr/lib/os-release"),
        "var/lib/dpkg/status": ("file", b"final\n"),  # opaque dir dropped "other", kept this layer's status
    }
    write_files(files, tmp_path / "root")
    assert read_os_release(tmp_path / "root").codename == "bookworm"


def test_escaping_entries_are_refused(tmp_path: Path) -> None:
    layout = make_layout(tmp_path / "oci", [_tar([("../etc/shadow", "x", "")])])
    with pytest.raises(KilnError, match="escapes the root"):
        read_files(layer_sources(open_layout(layout)), lambda p: True)
