"""End to end on a real Debian root: parent layer + a component's real overlay upper dir, every OCI
output format, judged by skopeo and umoci, and a fresh instance that runs in the sandbox."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kiln.layers.tar import write_layer
from kiln.outputs.docker_archive import write_docker_archive
from kiln.outputs.oci import History, ImageConfig, write_oci_layout
from kiln.outputs.oci_archive import write_oci_archive
from kiln.rootfs.debian import ParentRoot
from kiln.sandbox.bwrap import SandboxOptions
from kiln.sandbox.launch import run_in_sandbox
from kiln.sandbox.run import run
from kiln.verify.instance import fresh_instance
from tests.layers.helpers import overlay

EPOCH = 1_700_000_000


@pytest.mark.e2e
def test_debian_image_in_every_oci_format(bookworm_root: ParentRoot, tmp_path: Path) -> None:
    timings: dict[str, float] = {}

    def timed(name: str, start: float) -> None:
        timings[name] = time.monotonic() - start

    with overlay(bookworm_root.rootfs, tmp_path / "ovl") as (merged, upper):
        run_in_sandbox(merged, ["/bin/sh", "-c", "rm -r /usr/share/doc/bash /etc/motd; "
                                "echo hello > /etc/kiln-hello; mkdir -p /srv/www"],
                       SandboxOptions(network=False))  # fmt: skip
    start = time.monotonic()
    base = write_layer(bookworm_root.rootfs, tmp_path / "0.tar.gz", epoch=EPOCH, kind="rootfs")
    timed("parent layer", start)
    start = time.monotonic()
    top = write_layer(upper, tmp_path / "1.tar.gz", epoch=EPOCH, kind="upper")
    timed("component layer", start)
    config = ImageConfig(created=datetime.fromtimestamp(EPOCH, UTC), cmd=("/bin/bash",), working_dir="/srv")
    start = time.monotonic()
    image = write_oci_layout(
        tmp_path / "oci",
        [base, top],
        config,
        history=[History("mmdebstrap bookworm minbase"), History("component demo")],
        annotations={"org.opencontainers.image.title": "demo"},
        tag="1.0.0",
    )
    timed("layout", start)

    inspected = json.loads(run(["skopeo", "inspect", f"oci:{image.path}:1.0.0"]).stdout)
    assert inspected["Digest"] == image.manifest_digest and len(inspected["Layers"]) == 2
    run(["skopeo", "copy", "--quiet", f"oci:{image.path}", f"dir:{tmp_path / 'dir'}"])

    bundle = tmp_path / "bundle"
    run(["umoci", "unpack", "--image", f"{image.path}:1.0.0", str(bundle)])
    assert not (bundle / "rootfs/usr/share/doc/bash").exists()
    assert not (bundle / "rootfs/etc/motd").exists()
    assert (bundle / "rootfs/etc/kiln-hello").read_text() == "hello\n"

    start = time.monotonic()
    with fresh_instance(image.path, tmp_path / "scratch") as instance:
        timed("fresh instance", start)
        script = "test ! -e /usr/share/doc/bash && test ! -e /etc/motd && cat /etc/kiln-hello && dpkg -s bash"
        out = run_in_sandbox(instance.root, ["/bin/sh", "-c", script], SandboxOptions(network=False)).stdout
        assert out.startswith("hello\n") and "Status: install ok installed" in out
    assert list((tmp_path / "scratch").iterdir()) == []

    start = time.monotonic()
    oci_archive = write_oci_archive(image.path, tmp_path / "image.oci.tar")
    timed("oci-archive", start)
    assert json.loads(run(["skopeo", "inspect", f"oci-archive:{oci_archive.path}"]).stdout)["Digest"] == (
        image.manifest_digest
    )
    start = time.monotonic()
    docker = write_docker_archive(image.path, tmp_path / "image.docker.tar", repo_tags=["kiln/demo:1.0.0"])
    timed("docker-archive", start)
    docker_inspect = json.loads(run(["skopeo", "inspect", f"docker-archive:{docker.path}"]).stdout)
    assert docker_inspect["Layers"] == [base.diff_id, top.diff_id]

    print("\n" + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))
    print(
        f"layers {base.size / 1e6:.1f} MB + {top.size / 1e3:.1f} kB gzip; docker archive {docker.size / 1e6:.1f} MB"
    )
