"""Reproducibility helpers: two layouts compared down to the file and attribute that differ."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from kiln.layers.tar import write_layer
from kiln.outputs.compare import compare_files, compare_layouts
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


def test_compare_files_for_every_artifact_kind(tmp_path: Path) -> None:
    ta, tb = make(tmp_path / "ta"), make(tmp_path / "tb")
    (tb / "etc/stamp").write_text("built at 10:05\n")
    tars = [write_layer(t, tmp_path / f"{t.name}.tar.gz", epoch=EPOCH, kind="rootfs").path for t in (ta, tb)]
    report = compare_files(*tars, use_diffoscope=False)
    assert report.splitlines() == ["1 archive entries differ", "  etc/stamp: content"]
    assert compare_files(tars[0], tars[0]) == "identical"

    disk_a, disk_b = tmp_path / "a.raw", tmp_path / "b.raw"
    disk_a.write_bytes(bytes(64 * 1024))
    disk_b.write_bytes(bytes(5000) + b"\x01" + bytes(64 * 1024 - 5001))
    assert compare_files(disk_a, disk_b, use_diffoscope=False) == (
        "sizes 65536 vs 65536 bytes; first difference at byte 5000; 1 of 17 4096-byte blocks differ"
    )

    layouts = [build(tmp_path / f"l{i}", t).path for i, t in enumerate((ta, tb))]
    assert compare_files(*layouts, use_diffoscope=False).startswith("images differ:")


def test_diffoscope_report_is_included(tmp_path: Path) -> None:
    """diffoscope-minimal is one of the Debian packages `make` installs."""
    ta, tb = make(tmp_path / "ta"), make(tmp_path / "tb")
    (tb / "etc/stamp").write_text("built at 10:05\n")
    a, b = build(tmp_path / "a", ta), build(tmp_path / "b", tb)
    (layer,) = compare_layouts(a.path, b.path).layers
    assert layer.diffoscope is not None
    assert "-built at 10:00" in layer.diffoscope and "+built at 10:05" in layer.diffoscope
