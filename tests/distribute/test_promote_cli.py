"""`kiln promote`, `kiln channels`, `kiln promotions` on the real built image (its signed provenance,
SBOMs and test run are the evidence), through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.distribute.conftest import Built, kiln

pytestmark = pytest.mark.e2e


def test_promote_list_show_verify_and_deny(built: Built, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "version: 1\nchannels: [dev, prod]\npolicies:\n"
        f"  dev: {{sbom: true, signature: {{keys: ['{built.key}.pub']}}}}\n"
        "  prod: {tests_passed: true, min_hours_in_previous: 0, scan: {fail_on: high}}\n"
    )
    env = {"KILN_SIGNING_KEY": str(built.key)}
    ok = kiln("promote", built.ref, "--to", "dev", "--policy", str(policy), home=built.home, env=env)
    assert "✓ signature: signed by a trusted key" in ok.stdout and f"{built.ref} is now in dev" in ok.stdout

    listed = kiln("channels", "list", "--policy", str(policy), "--json", home=built.home)
    assert json.loads(listed.stdout)["tiny-dist"] == {"dev": built.ref, "prod": None}

    # prod needs a vulnerability scan this build never made: denied, recorded, exit 1, rule named.
    denied = kiln(
        "promote", built.ref, "--to", "prod", "--policy", str(policy), code=1, home=built.home, env=env
    )
    assert "scan: no vulnerability scan recorded" in denied.stderr and "Traceback" not in denied.stderr
    assert "tests_passed" not in denied.stderr  # the container test phase passed in the build

    history = json.loads(kiln("channels", "history", "tiny-dist", "--json", home=built.home).stdout)
    assert [(h["channel"], h["allowed"]) for h in history][-2:] == [("dev", True), ("prod", False)]
    shown = kiln(
        "promotions", "show", str(history[-1]["id"]), "--verify-key", f"{built.key}.pub", home=built.home
    )
    record = json.loads(shown.stdout)
    assert record["verified"] is True and record["decision"]["allowed"] is False
    assert record["decision"]["evidence"]["provenance-signed"] == next(
        e["digest"] for e in built.image["evidence"] if e["kind"] == "provenance-signed"
    )

    by_channel = kiln("distributions", "tiny-dist@dev", "--json", home=built.home)
    assert all(r["image"] == built.ref for r in json.loads(by_channel.stdout))

    show = kiln("channels", "show", "tiny-dist", "--policy", str(policy), "--json", home=built.home)
    assert json.loads(show.stdout) == [
        {"channel": "dev", "image": built.ref, "demoted_to": None, "failed": []}
    ]

    listed_all = json.loads(kiln("promotions", "list", "tiny-dist", "--json", home=built.home).stdout)
    assert [r["id"] for r in listed_all] == [h["id"] for h in history]
    schema = json.loads(kiln("promotions", "schema", home=built.home).stdout)
    assert {"channels", "policies", "on_violation"} <= set(schema["properties"])

    nokey = kiln("promote", built.ref, "--to", "dev", "--policy", str(policy), code=1, home=built.home,
                 env={"KILN_SIGNING_KEY": ""})  # fmt: skip
    assert "no signing key" in nokey.stderr

    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 2\n")
    invalid = kiln(
        "promote", built.ref, "--to", "dev", "--policy", str(bad), code=2, home=built.home, env=env
    )
    assert "bad.yaml:1:" in invalid.stderr
