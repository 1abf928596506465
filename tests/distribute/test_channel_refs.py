"""``kiln:NAME@CHANNEL`` names the version a channel points at in ``kiln toe run --target image:`` and
``kiln test`` (both resolve through Catalog.get_image, as recipes' parents and the API do)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli_runner import KilnRun
from tests.distribute.conftest import build_own, kiln

pytestmark = pytest.mark.e2e

DOC = """\
name: check
schemaVersion: 1.0
phases:
  - name: test
    steps:
      - name: Motd
        action: ExecuteBash
        inputs:
          commands: ["grep -qx distributed /etc/motd"]
"""


def test_channel_reference_in_toe_run_and_test(tmp_path: Path) -> None:
    built = build_own(tmp_path, "tiny-chan")
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "version: 1\nchannels: [dev, prod]\npolicies:\n  dev: {sbom: true}\n  prod: {sbom: true}\n"
    )
    kiln("promote", built.ref, "--to", "dev", "--policy", str(policy), home=built.home,
                    env={"KILN_SIGNING_KEY": str(built.key)})  # fmt: skip
    (tmp_path / "doc.yaml").write_text(DOC)

    def toe_run(target: str) -> KilnRun:
        return kiln("toe", "run", "-l", str(tmp_path / "logs"), "--documents", str(tmp_path / "doc.yaml"),
                    "--target", target, home=built.home, check=False)  # fmt: skip

    for target in ("image:kiln:tiny-chan@dev", "image:tiny-chan@dev"):
        ran = toe_run(target)
        assert ran.returncode == 0, ran.stdout + ran.stderr
    empty = toe_run("image:kiln:tiny-chan@prod")
    assert empty.returncode != 0 and "no image of tiny-chan in channel prod" in " ".join(empty.stderr.split())

    # kiln test resolves the same way before it boots anything: an empty channel is named as such
    untested = kiln("test", "kiln:tiny-chan@prod", home=built.home, check=False)
    assert untested.returncode != 0
    assert "no image of tiny-chan in channel prod" in " ".join(untested.stderr.split())
    assert "invalid image reference" not in untested.stderr
