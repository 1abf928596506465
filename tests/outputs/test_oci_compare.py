"""Reproducibility helpers: two layouts compared down to the file and attribute that differ."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from kiln.layers.tar import write_layer
from kiln.outputs.compare import compare_layouts
from kiln.outputs.oci import History, ImageConfig, OciImage, write_oci_layout

EPOCH = 1_700_000_000


def build(base: Path, tree: Path, *, level: int = 6, annotations: dict[str, str] | None = None) -> OciImage:
    layer = write_layer(tree, base / "layer.tar.gz", epoch=EPOCH, kind="rootfs", compresslevel=level)
    config = ImageConfig(created=datetime.fromtimestamp(EPOCH, UTC))
    return write_oci_layout(
        base / "oci", [layer], config, history=[History("root")], annotations=annotations or {}, tag="t"
    )


def make(root: Path) -> Path:
    (root / "etc").mkdir(parents=True)
    (root / "etc/stable").write_text("same\n")
    (root / "etc/stamp").write_text("built at 10:00\n")
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/tool").write_text("#!/bin/sh\n")
    return root


def test_identical_builds(tmp_path: Path) -> None:
    a = build(tmp_path / "a", make(tmp_path / "ta"))
    b = build(tmp_path / "b", make(tmp_path / "tb"))
    result = compare_layouts(a.path, b.path)
    assert result.identical and result.summary().startswith("identical: both images are sha256:")


def test_differences_are_named(tmp_path: Path) -> None:
    a = build(tmp_path / "a", make(tmp_path / "ta"), annotations={"org.opencontainers.image.revision": "1"})
    tb = make(tmp_path / "tb")
    (tb / "etc/stamp").write_text("built at 10:05\n")
    (tb / "usr/bin/tool").chmod(0o700)
    (tb / "etc/extra").write_text("new\n")
    b = build(tmp_path / "b", tb, annotations={"org.opencontainers.image.revision": "2"})
    result = compare_layouts(a.path, b.path, use_diffoscope=False)
    assert not result.identical
    assert result.config_fields == ("rootfs.diff_ids",)
    assert result.annotations == ("org.opencontainers.image.revision",)
    (layer,) = result.layers
    found = {e.path: e.fields for e in layer.entries}
    assert found == {
        "etc/extra": ("only in second",),
        "etc/stamp": ("content",),
        "usr/bin/tool": ("mode",),
    }
    text = result.summary()
    assert "layer 0: 3 entries differ" in text and "  usr/bin/tool: mode" in text


def test_compression_only_difference(tmp_path: Path) -> None:
    a = build(tmp_path / "a", make(tmp_path / "ta"), level=6)
    b = build(tmp_path / "b", make(tmp_path / "tb"), level=1)
    result = compare_layouts(a.path, b.path)
    (layer,) = result.layers
    assert layer.same_content and "layer 0: same tar, different compression" in result.summary()
