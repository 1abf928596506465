"""Lifecycle policies: parsing (errors with file:line:column) and the plan's rules and exclusions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kiln.catalog import Catalog
from kiln.errors import ValidationFailed
from kiln.lifecycle.plan import plan
from kiln.lifecycle.policy import load_lifecycle_policy
from kiln.store import Store
from tests.lifecycle.conftest import NOW, point_channel, record

POLICY = """\
version: 1
rules:
  - images: ["web"]
    keep_newest: 1
    deprecate_after_days: 30
    disable_after_days: 90
    retire_after_days: 180
    retain_at_least: 2
"""


def _policy(tmp_path: Path, text: str = POLICY) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "issue"),
    [
        ("version: 2\nrules: [{retire_after_days: 1}]\n", "policy.yaml:1:1: version: Input should be 1"),
        ("rules: []\n", "policy.yaml:1:1: rules: List should have at least 1 item"),
        ("rules:\n  - keep_newest: 2\n", "policy.yaml:2:5: rules[0]: a rule needs deprecate_after_days"),
        ("rules:\n  - retire_after_days: 10\n    disable_after_days: 20\n",
         "rules[0]: retire_after_days (10) is earlier than disable_after_days (20)"),
        ("rules:\n  - retire_after_days: -1\n", "policy.yaml:2:5: rules[0].retire_after_days: Input should be greater than or equal to 0"),
        ("rules:\n  - retire_after_days: 1\n    keep: 3\n", "policy.yaml:3:5: rules[0].keep: unknown field"),
        ("rules:\n  - retire_after_days: 1\nexclude: {in_channels: true}\n", "policy.yaml:3:11: exclude.in_channels: unknown field"),
        ("- a\n", "a lifecycle policy must be a YAML mapping"),
        ("rules: [\n", "policy.yaml:2"),
    ],
)  # fmt: skip
def test_parse_errors_name_file_line_and_field(tmp_path: Path, text: str, issue: str) -> None:
    with pytest.raises(ValidationFailed) as failed:
        load_lifecycle_policy(_policy(tmp_path, text))
    assert issue in failed.value.message
    assert failed.value.exit_code == 2


def _days(n: float) -> object:
    return NOW - timedelta(days=n)


def test_age_count_and_retain_at_least(catalog: Catalog, tmp_path: Path) -> None:
    # versions are ordered by when they were recorded (newest first), not by version number
    first = record(catalog, "web", "1.0.5", recorded=_days(400))
    second = record(catalog, "web", "1.0.4", recorded=_days(401))
    aged = record(catalog, "web", "1.0.3", recorded=_days(200))
    mid = record(catalog, "web", "1.0.2", recorded=_days(100))
    young = record(catalog, "web", "1.0.1", recorded=_days(40))
    fresh = record(catalog, "web", "1.0.0", recorded=_days(10))
    other = record(catalog, "api", "1.0.0", recorded=_days(999))  # no rule matches api
    done = plan(catalog, load_lifecycle_policy(_policy(tmp_path)), now=NOW)
    got = {c.image: (c.from_state, c.to_state) for c in done.changes}
    assert fresh not in got  # the newest: keep_newest 1
    assert got[young] == ("active", "deprecated")  # 40 days
    assert got[mid] == ("active", "disabled")  # 100 days; fresh and young stay usable (retain_at_least 2)
    assert got[aged] == ("active", "retired")
    assert got[first] == ("active", "retired")
    assert got[second] == ("active", "retired")
    assert other not in got
    assert "retire_after_days: 180 (age 200.0 days)" in next(c.rule for c in done.changes if c.image == aged)


def test_retain_at_least_caps_at_deprecated(catalog: Catalog, tmp_path: Path) -> None:
    a = record(catalog, "web", "1.0.3", recorded=_days(300))
    b = record(catalog, "web", "1.0.2", recorded=_days(301))
    c = record(catalog, "web", "1.0.1", recorded=_days(302))
    gone = record(catalog, "web", "1.0.0", recorded=_days(303), state="disabled")  # not usable: not counted
    text = "rules: [{retire_after_days: 180, retain_at_least: 2}]\n"
    done = plan(catalog, load_lifecycle_policy(_policy(tmp_path, text)), now=NOW)
    assert [(x.image, x.from_state, x.to_state) for x in done.changes] == [
        (a, "active", "deprecated"), (b, "active", "deprecated"), (c, "active", "retired"),
        (gone, "disabled", "retired"),
    ]  # fmt: skip
    assert "capped at deprecated by retain_at_least: 2" in done.changes[0].rule


def test_exclusions(catalog: Catalog, tmp_path: Path) -> None:
    parent = record(catalog, "web", "1.0.0", recorded=_days(300), digest="sha256:" + "a" * 64)
    record(catalog, "child", "1.0.0", recorded=_days(1), parent_digest="sha256:" + "a" * 64)
    promoted = record(catalog, "web", "1.0.1", recorded=_days(300))
    point_channel(catalog, promoted, "prod")
    golden = record(catalog, "golden-web", "1.0.0", recorded=_days(300))
    plain = record(catalog, "web", "1.0.2", recorded=_days(300))
    already = record(catalog, "web", "1.0.3", recorded=_days(300), state="retired")
    text = "rules:\n  - images: ['*web*']\n    retire_after_days: 180\nexclude: {names: ['golden-*']}\n"
    done = plan(catalog, load_lifecycle_policy(_policy(tmp_path, text)), now=NOW)
    assert [(c.image, c.to_state) for c in done.changes] == [(plain, "retired")]
    assert dict(done.excluded) == {
        parent: "parent of an active or deprecated image (exclude.parents_of_usable)",
        promoted: "in channel prod (exclude.in_channel)",
        golden: "name matches exclude.names",
    }
    assert already not in dict(done.excluded)
    # the exclusions can be switched off
    text += "  parents_of_usable: false\n  in_channel: false\n"
    text = text.replace("exclude: {names: ['golden-*']}\n", "exclude:\n  names: ['golden-*']\n")
    done = plan(catalog, load_lifecycle_policy(_policy(tmp_path, text)), now=NOW)
    assert {c.image for c in done.changes} == {parent, promoted, plain}


def test_label_exclusion_takes_labels_from_a_source(catalog: Catalog, tmp_path: Path) -> None:
    keep = record(catalog, "web", "1.0.0", recorded=_days(300))
    drop = record(catalog, "web", "1.0.1", recorded=_days(300))
    text = "rules: [{retire_after_days: 1}]\nexclude: {labels: {keep: forever}}\n"
    ids = {catalog.get_image(keep).build_id: "keep"}
    from kiln.catalog.models import ImageRow

    def labels(c: Catalog) -> dict[int, dict[str, str]]:
        with c.session() as s:
            rows = s.query(ImageRow.id, ImageRow.build_id).all()
        return {i: {"keep": "forever"} for i, b in rows if b in ids}

    done = plan(catalog, load_lifecycle_policy(_policy(tmp_path, text)), now=NOW, labels=labels)
    assert [c.image for c in done.changes] == [drop]
    assert dict(done.excluded) == {keep: "label keep=forever (exclude.labels)"}


def test_the_documented_policy_parses_and_has_a_schema(tmp_path: Path) -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs/lifecycle.md").read_text()
    example = doc.split("# lifecycle-policy.yaml", 1)[1].split("```", 1)[0]
    loaded = load_lifecycle_policy(_policy(tmp_path, example.split("\n", 1)[1]))
    assert loaded.policy.rules[0].keep_newest == 3 and loaded.policy.exclude.labels == {"keep": "forever"}
    from kiln.cli.schema import SCHEMAS

    schema = SCHEMAS["lifecycle-policy"]()
    assert {"version", "rules", "exclude"} <= set(schema["properties"])


def test_cli_dry_run_prints_what_yes_does(home: Store, catalog: Catalog, tmp_path: Path) -> None:
    # the CLI plans against the real clock: ages are counted back from it, not from the tests' NOW
    now = datetime.now(UTC)
    old = record(catalog, "web", "1.0.0", recorded=now - timedelta(days=200))
    mid = record(catalog, "web", "1.0.1", recorded=now - timedelta(days=100))
    record(catalog, "web", "1.0.2", recorded=now - timedelta(days=1))
    policy = _policy(tmp_path)
    env = {**os.environ, "KILN_HOME": str(home.home), "KILN_CACHE_DIR": str(home.cache)}
    env.pop("KILN_DATABASE_URL", None)

    def kiln(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "kiln.cli.main", "lifecycle", "apply", str(policy), *args],
                              capture_output=True, text=True, env=env, timeout=120, check=False)  # fmt: skip

    dry = kiln("--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    planned = json.loads(dry.stdout)["changes"]
    assert [(c["image"], c["from"], c["to"]) for c in planned] == [
        (mid, "active", "deprecated"),  # disable_after_days, capped: retain_at_least 2
        (old, "active", "retired"),
    ]
    assert catalog.get_image(old).state == "active"  # a dry run changes nothing
    text = kiln("--dry-run")
    assert text.stdout.startswith("plan (dry run): 2 change(s)\n")
    assert f"{old} active retired rules[0] retire_after_days: 180 (age 200." in " ".join(text.stdout.split())
    done = kiln("--yes", "--json")
    assert done.returncode == 0, done.stderr
    applied = json.loads(done.stdout)["applied"]
    assert [{k: v for k, v in a.items() if k not in ("error", "freed")} for a in applied] == planned
    assert all(a["error"] is None for a in applied)
    assert (catalog.get_image(old).state, catalog.get_image(mid).state) == ("retired", "deprecated")
    assert json.loads(kiln("--dry-run", "--json").stdout)["changes"] == []  # nothing left to do
    bad = _policy(tmp_path, "rules: [{retire_after_days: 1, keep: 2}]\n")
    refused = subprocess.run([sys.executable, "-m", "kiln.cli.main", "lifecycle", "apply", str(bad), "--yes"],
                             capture_output=True, text=True, env=env, timeout=120, check=False)  # fmt: skip
    assert refused.returncode == 2
    assert "policy.yaml:1:32: rules[0].keep: unknown field" in refused.stderr


def test_label_exclusion_reads_the_catalog_labels_by_default(catalog: Catalog, tmp_path: Path) -> None:
    """``kiln images label REF keep=forever`` keeps an image out of a policy with no extra wiring."""
    from kiln.catalog.labels import set_labels

    keep = record(catalog, "web", "1.0.0", recorded=_days(300))
    drop = record(catalog, "web", "1.0.1", recorded=_days(300))
    set_labels(catalog, keep, {"keep": "forever"})
    set_labels(catalog, drop, {"keep": "no"})
    text = "rules: [{retire_after_days: 1}]\nexclude: {labels: {keep: forever}}\n"
    done = plan(catalog, load_lifecycle_policy(_policy(tmp_path, text)), now=NOW)
    assert [c.image for c in done.changes] == [drop]
    assert dict(done.excluded) == {keep: "label keep=forever (exclude.labels)"}
