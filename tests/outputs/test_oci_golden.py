"""Golden digests: a tiny fixed tree must always give exactly these digests.

A change here means Kiln's image format changed (tar layout, JSON documents, compression): update the
constants deliberately, in the same commit as the change, and bump the layer format version so cached
layers are rebuilt. ``diff_id`` depends only on Kiln's tar writer; the layer ``digest`` also on the
deflate output of the pinned zlib-ng package (so, unlike zlib, not on the host).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from kiln.layers.tar import write_layer
from kiln.outputs.oci import History, ImageConfig, write_oci_layout

EPOCH = 1_700_000_000
GOLDEN_DIFF_ID = "sha256:1a79ccae37d9cdecd71dc98d1604aaf96121321ba6924b4913ef1646fc7cdac2"
GOLDEN_LAYER = "sha256:a5bf9c71ef029873e94f2685c3950e11b11ad888decb7e92641bff0135144e29"
GOLDEN_CONFIG = "sha256:9d0d806d30c8354abf963e7942f91eebd15d1c6554202cfc8193ec827dd3e076"
GOLDEN_MANIFEST = "sha256:6e46776fdfe6e6f9866fd52109d8d65a7b31168fffb6581421c5cb21d838195f"


def golden_tree(root: Path) -> Path:
    """Every attribute set explicitly: nothing depends on umask, clock or the host."""
    files = {
        "etc/hostname": (b"golden\n", 0o644),
        "etc/motd": (b"Built by Kiln.\n" * 50, 0o644),
        "usr/bin/hello": (b"#!/bin/sh\necho hello\n", 0o755),
        "usr/bin/su-ish": (b"\x7fELF\x02\x01\x01" + bytes(range(256)), 0o4755),
    }
    for rel, (data, mode) in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(mode)
    (root / "bin").symlink_to("usr/bin")
    os.link(root / "usr/bin/hello", root / "usr/bin/hello-again")
    (root / "var/empty").mkdir(parents=True)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            Path(dirpath, name).chmod(0o755)
        for name in [*dirnames, *filenames]:
            os.chown(Path(dirpath, name), 0, 0, follow_symlinks=False)
    os.chown(root / "var/empty", 1000, 1000)
    return root


def test_golden_digests(tmp_path: Path) -> None:
    layer = write_layer(golden_tree(tmp_path / "root"), tmp_path / "l.tar.gz", epoch=EPOCH, kind="rootfs")
    config = ImageConfig(
        created=datetime.fromtimestamp(EPOCH, UTC),
        cmd=("/usr/bin/hello",),
        exposed_ports=("8080/tcp",),
        labels={"org.opencontainers.image.vendor": "Kiln"},
    )
    image = write_oci_layout(
        tmp_path / "oci",
        [layer],
        config,
        history=[History("kiln golden test", "layer 0")],
        annotations={"org.opencontainers.image.title": "golden", "org.opencontainers.image.version": "1.0.0"},
        tag="1.0.0",
    )
    assert (layer.diff_id, layer.digest) == (GOLDEN_DIFF_ID, GOLDEN_LAYER)
    assert image.config_digest == GOLDEN_CONFIG
    assert image.manifest_digest == GOLDEN_MANIFEST
