"""The ways into the sandbox besides a bare command: the shared apt caches and ``kiln toe run``."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from kiln.sandbox.bwrap import Bind
from kiln.sandbox.cachebind import cache_views
from tests.security.conftest import sandboxed

GOOD_DEB = b"!<arch>\nthe bytes a verified index lists\n"
LIST = "deb.example.org_debian_dists_bookworm_main_binary-amd64_Packages"
INDEX = """Package: kiln-good
Version: 1.0
Filename: pool/main/k/kiln-good/kiln-good_1.0_all.deb
SHA256: {sha}

"""


def _shared_caches(tmp_path: Path) -> tuple[Path, Path]:
    lists, debs = tmp_path / "lists", tmp_path / "debs"
    lists.mkdir()
    debs.mkdir()
    (lists / LIST).write_text(INDEX.format(sha=hashlib.sha256(GOOD_DEB).hexdigest()))
    return lists, debs


@pytest.mark.parametrize("network", [False, True], ids=["net-off", "net-on"])
def test_shared_apt_caches_are_copy_on_write_and_only_verified_files_flow_back(
    root: Path, tmp_path: Path, network: bool
) -> None:
    lists, debs = _shared_caches(tmp_path)
    (root / "root/good.deb").write_bytes(GOOD_DEB)
    binds = (Bind(lists, "/var/lib/apt/lists", cow=True), Bind(debs, "/var/cache/apt/archives", cow=True))
    script = (
        "set -e; cp /root/good.deb /var/cache/apt/archives/kiln-good_1.0_all.deb; "
        "echo evil > /var/cache/apt/archives/kiln-evil_1.0_all.deb; "
        "echo evil > /var/cache/apt/archives/kiln-good_2.0_all.deb; "
        "echo forged > /var/lib/apt/lists/deb.example.org_debian_dists_bookworm_InRelease; "
        f"echo forged > /var/lib/apt/lists/{LIST}; "
        "rm /var/lib/apt/lists/* 2>/dev/null || true; ls /var/lib/apt/lists"
    )
    with cache_views(binds, tmp_path / "views", keyrings=[]) as views:
        assert all(not b.cow and b.source != lists and b.source != debs for b in views)
        done = sandboxed(root, script, network=network, binds=views)
        assert done.returncode == 0, done.stderr
        # The host directories never changed while the step ran: it wrote to its private view.
        assert sorted(p.name for p in debs.iterdir()) == [] and (lists / LIST).read_text().startswith(
            "Package:"
        )
    # Afterwards: the .deb a trusted index lists (by SHA-256) is shared; nothing else is.
    assert sorted(p.name for p in debs.iterdir()) == ["kiln-good_1.0_all.deb"]
    assert (debs / "kiln-good_1.0_all.deb").read_bytes() == GOOD_DEB
    assert sorted(p.name for p in lists.iterdir()) == [LIST]
    assert (lists / LIST).read_text().startswith("Package: kiln-good")


def test_a_shared_cache_is_never_bound_directly(root: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="copy-on-write view"):
        sandboxed(root, "true", network=False, binds=(Bind(tmp_path, "/var/cache/apt/archives", cow=True),))


HOSTILE = """\
name: hostile
schemaVersion: 1.0
phases:
  - name: build
    steps:
      - name: Escape
        action: ExecuteBash
        inputs:
          commands:
            - echo '|/tmp/kiln-pwn %p' > /proc/sys/kernel/core_pattern || true
            - probe addr lo {address} || true
            - probe handles /etc/resolv.conf || true
            - echo pwned > /proc/1/root/tmp/{marker} || true
            - mknod /tmp/mem c 1 1 && head -c 1 /tmp/mem || true
"""


@pytest.mark.parametrize("scratch", [False, True], ids=["in-place", "scratch"])
@pytest.mark.parametrize("network", [False, True], ids=["net-off", "net-on"])
def test_kiln_toe_run_steps_have_no_host_effect(
    root: Path, tmp_path: Path, scratch: bool, network: bool
) -> None:
    address = f"10.{uuid.uuid4().int % 200 + 10}.78.1"
    marker = f"kiln-marker-{uuid.uuid4().hex[:8]}"
    doc = tmp_path / "hostile.yaml"
    doc.write_text(HOSTILE.format(address=address, marker=marker))
    core_pattern = Path("/proc/sys/kernel/core_pattern").read_text()
    args = ["toe", "run", "--target", f"rootfs:{root}", "-d", str(doc), "-l", str(tmp_path / "logs"), "-q",
            "--data-dir", str(tmp_path / "home")]  # fmt: skip
    args += ["--scratch"] if scratch else []
    args += [] if network else ["--no-network"]
    done = subprocess.run([sys.executable, "-m", "kiln.cli.main", *args], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "success"
    assert Path("/proc/sys/kernel/core_pattern").read_text() == core_pattern
    host_addresses = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True, check=True).stdout
    assert address not in host_addresses
    assert not Path("/tmp", marker).exists()
    assert (root / "tmp" / marker).exists() != scratch  # /proc/1/root is the image (or its scratch copy)
    (root / "tmp" / marker).unlink(missing_ok=True)
