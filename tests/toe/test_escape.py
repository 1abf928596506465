"""Escape attempts: paths and links that point out of the image must never touch or read host files.

Every assertion is made on the host filesystem itself.
"""

from __future__ import annotations

import hashlib
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.toe.conftest import WriteDoc, run


@pytest.fixture
def marker() -> Iterator[str]:
    """A unique name; no host file may ever appear under it."""
    name = f"kiln-escape-{uuid.uuid4().hex[:12]}"
    yield name
    for base in ("/etc", "/tmp", "/var/tmp", "/"):
        leaked = Path(base) / name
        assert not leaked.exists(), f"escape: {leaked} was created on the host"


def test_file_actions_stay_in_the_root(
    tiny_root: Path, write_doc: WriteDoc, marker: str, tmp_path: Path
) -> None:
    (tiny_root / "link").symlink_to("/etc")
    (tiny_root / "var/lib").mkdir(parents=True)
    (tiny_root / "var/lib/up").symlink_to("../../../../../../../../tmp")
    (tiny_root / "hostroot").symlink_to("/")
    (tiny_root / "shadowlink").symlink_to("/etc/shadow")
    (tiny_root / "etc/shadow").write_text("image shadow\n")
    host_tmp = tmp_path / "outside"
    host_tmp.mkdir()
    (host_tmp / "precious").write_text("host data")
    host_tmp.chmod(0o755)
    (tiny_root / "outside-link").symlink_to(host_tmp)  # absolute: means <root>/<tmp_path>/outside
    doc = write_doc(
        f"""\
name: escapes
schemaVersion: 1.0
phases:
  - name: build
    steps:
      - name: DotDot
        action: CreateFile
        inputs:
          - path: ../../../../etc/{marker}
            content: dotdot
      - name: AbsoluteLink
        action: CreateFile
        inputs:
          - path: /link/{marker}
            content: abslink
      - name: RelativeLink
        action: CreateFolder
        inputs:
          - path: /var/lib/up/{marker}
      - name: CopyProc
        action: CopyFolder
        onFailure: Continue
        inputs:
          - source: /proc/self/root
            destination: /stolen
      - name: CopyHostRoot
        action: CopyFile
        onFailure: Continue
        inputs:
          - source: /hostroot/etc/hostname
            destination: /stolen-hostname
      - name: Read
        action: ReadFile
        inputs:
          - path: /shadowlink
      - name: Permissions
        action: SetFolderPermissions
        inputs:
          - path: /
            permissions: "0700"
            recursive: false
      - name: Chmod
        action: SetFolderPermissions
        onFailure: Continue
        inputs:
          - path: /outside-link
            permissions: "0777"
      - name: DeleteLinkedRoot
        action: DeleteFolder
        inputs:
          - path: /hostroot
            force: true
      - name: MoveOut
        action: MoveFile
        inputs:
          - source: /etc/shadow
            destination: /link/../../../../tmp/{marker}
"""
    )
    result = run(doc, tiny_root)
    by_name = {s.name: s for s in result.steps()}
    assert (tiny_root / "etc" / marker).read_text() == "abslink"
    assert (tiny_root / "tmp" / marker).is_dir()  # /var/lib/up -> ../../.. stopped at the root
    assert (tiny_root / "tmp" / marker / "shadow").read_text() == "image shadow\n"  # moved inside
    assert by_name["CopyProc"].status == "failed" and not (tiny_root / "stolen").exists()
    assert by_name["CopyHostRoot"].status == "failed" and not (tiny_root / "stolen-hostname").exists()
    assert by_name["Read"].outputs == {"content": "image shadow\n"}
    assert by_name["Chmod"].status == "failed"  # <root>/<tmp_path>/outside does not exist in the image
    assert stat.S_IMODE(host_tmp.stat().st_mode) == 0o755
    assert (host_tmp / "precious").read_text() == "host data"
    assert not (tiny_root / "hostroot").exists()  # the link was removed, nothing behind it
    assert Path("/etc/hostname").exists()
    assert stat.S_IMODE(tiny_root.stat().st_mode) == 0o700


def test_hash_conditions_do_not_read_host_files(tiny_root: Path, write_doc: WriteDoc) -> None:
    digest = hashlib.sha256(Path("/etc/hostname").read_bytes()).hexdigest()
    (tiny_root / "hostlink").symlink_to("/etc/hostname")
    doc = write_doc(
        f"""\
name: hashes
schemaVersion: 1.0
phases:
  - name: build
    steps:
      - name: DotDot
        action: CreateFile
        if:
          fileSHA256Equals: {digest}
          path: ../../../../../etc/hostname
        inputs:
          - path: /leaked-dotdot
      - name: Link
        action: CreateFile
        if:
          or:
            - fileSHA256Equals: {digest}
              path: /hostlink
            - fileExists: /proc/self/root/etc/hostname
        inputs:
          - path: /leaked-link
"""
    )
    result = run(doc, tiny_root)
    assert [s.status for s in result.steps()] == ["skipped", "skipped"]


@pytest.mark.e2e
def test_sandboxed_process_cannot_reach_the_host(rootfs: Path, write_doc: WriteDoc, marker: str) -> None:
    (rootfs / "hostlink").symlink_to("/etc")
    doc = write_doc(
        f"""\
name: sandbox
schemaVersion: 1.0
phases:
  - name: build
    steps:
      - name: Write
        action: ExecuteBash
        inputs:
          commands:
            - echo inside > /hostlink/{marker}
            - echo inside > ../../../../../tmp/{marker}
            - 'ls /proc/1/root/work 2>/dev/null && echo SEES-HOST || echo isolated'
"""
    )
    result = run(doc, rootfs)
    assert result.status == "success", result.failure_message
    assert result.steps()[0].outputs["stdout"].endswith("isolated")
    assert (rootfs / "etc" / marker).read_text() == "inside\n"
    assert (rootfs / "tmp" / marker).read_text() == "inside\n"  # the image's /tmp, not the host's
