"""``kiln diff`` on real builds: B adds a package and fixes a CVE (and the diff says exactly that);
two builds of the same inputs give an empty diff. The packages are real .debs made and installed with
dpkg inside the build; the CVE comes from a tracker feed imported with ``kiln vulndb import``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.conftest import kiln

pytestmark = pytest.mark.e2e

COMPONENT = """\
name: demo-debs
schemaVersion: 1.0
parameters:
  - Version: {type: string, default: "1.0-1"}
  - Extra: {type: string, default: "no"}
phases:
  - name: build
    steps:
      - name: Debs
        action: ExecuteBash
        inputs:
          commands:
            - set -eu
            - |
              deb() {
                d=$(mktemp -d)
                mkdir -p "$d/DEBIAN" "$d/usr/share/$1"
                printf 'Package: %s\\nVersion: %s\\nArchitecture: all\\nMaintainer: Kiln <kiln@example.org>\\nDescription: demo\\n' "$1" "$2" > "$d/DEBIAN/control"
                echo "$2" > "$d/usr/share/$1/VERSION"
                dpkg-deb --root-owner-group -b "$d" "/tmp/$1.deb" > /dev/null
                dpkg -i "/tmp/$1.deb"
                rm -rf "$d" "/tmp/$1.deb"
              }
              deb kiln-demo {{ Version }}
              if [ "{{ Extra }}" = yes ]; then deb kiln-extra 1.0-1; fi
"""
RECIPE = """\
name: demo
version: VERSION
parent: debian:bookworm
components:
  - path: demo.yaml
    parameters: PARAMETERS
"""
FEED = {
    "kiln-demo": {
        "CVE-2099-0001": {
            "description": "demo vulnerability, fixed in 1.0-2",
            "releases": {
                "bookworm": {"status": "resolved", "fixed_version": "1.0-2", "urgency": "high",
                             "repositories": {"bookworm": "1.0-2"}},
            },
        }
    }
}  # fmt: skip


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """demo 1.0.0 built twice (the same inputs), demo 1.1.0 with kiln-demo 1.0-2 and kiln-extra."""
    work = tmp_path_factory.mktemp("diff")
    home = work / "home"
    (work / "demo.yaml").write_text(COMPONENT)
    (work / "feed.json").write_text(json.dumps(FEED))
    kiln("vulndb", "import", str(work / "feed.json"), home=home)
    for version, parameters in (
        ("1.0.0", "{Version: 1.0-1}"),
        ("1.0.0", "{Version: 1.0-1}"),
        ("1.1.0", "{Version: 1.0-2, Extra: 'yes'}"),
    ):
        recipe = work / f"demo-{version}.yaml"
        recipe.write_text(RECIPE.replace("VERSION", version).replace("PARAMETERS", parameters))
        kiln("build", str(recipe), home=home)
    return home


def test_b_adds_a_package_and_fixes_a_cve(built: Path) -> None:
    d = kiln("diff", "demo@1.0.0/1", "demo@1.1.0/1", "--json", home=built).json()
    assert d["packages"]["added"] == [
        {"name": "kiln-extra", "version": "1.0-1", "architecture": "all", "source": "kiln-extra",
         "source_version": "1.0-1"}
    ]  # fmt: skip
    assert d["packages"]["upgraded"] == [
        {"name": "kiln-demo", "architecture": "all", "old": "1.0-1", "new": "1.0-2"}
    ]
    assert d["packages"]["removed"] == d["packages"]["downgraded"] == []
    assert [(c["vuln_id"], c["package"], c["installed"], c["fixed"]) for c in d["cves"]["fixed"]] == [
        ("CVE-2099-0001", "kiln-demo", "1.0-1", "1.0-2")
    ]
    assert d["cves"]["introduced"] == [] and d["cves"]["note"] is None
    assert [(c["name"], c["change"], [(p["name"], p["old"], p["new"]) for p in c["parameters"]])
            for c in d["components"]] == [
        ("demo-debs", "changed", [("Extra", None, "yes"), ("Version", "1.0-1", "1.0-2")])
    ]  # fmt: skip
    assert d["config"] == [] and d["compliance_score"] is None
    files = {f["path"]: f for f in d["files"]["changes"]}
    assert files["usr/share/kiln-extra/VERSION"]["change"] == "added"
    assert files["usr/share/kiln-extra/VERSION"]["new_size"] == len("1.0-1\n")
    assert files["usr/share/kiln-extra/VERSION"]["new_mode"] == "0644"
    assert files["usr/share/kiln-demo/VERSION"]["fields"] == ["sha256"]  # same size, new content
    assert files["var/lib/dpkg/status"]["change"] == "changed"
    # Nothing else moved: every changed path is one of the two packages' or dpkg's own record of them.
    others = [p for p in files if not p.startswith(("usr/share/kiln-", "var/lib/dpkg/", "var/log/"))]
    assert others == []
    human = kiln("diff", "demo@1.0.0/1", "demo@1.1.0/1", home=built).stdout
    assert "+ kiln-extra 1.0-1 (all)" in human and "fixed CVE-2099-0001 (kiln-demo 1.0-1, high)" in human
    assert "↑ kiln-demo 1.0-1 → 1.0-2" in human


def test_two_builds_of_the_same_inputs_give_an_empty_diff(built: Path) -> None:
    d = kiln("diff", "demo@1.0.0/1", "demo@1.0.0/2", "--json", home=built).json()
    assert d["empty"] is True and d["files"]["changes"] == []
    assert "no differences" in kiln("diff", "demo@1.0.0/1", "demo@1.0.0/2", home=built).stdout


def test_fleet_queries_on_real_builds(built: Path) -> None:
    affected = kiln("images", "list", "--cve", "CVE-2099-0001", "--json", home=built).json()
    assert [m["image"]["version"] for m in affected] == ["1.0.0", "1.0.0"]
    older = kiln("images", "list", "--package", "kiln-demo<1.0-2", "--json", home=built).json()
    assert [m["image"]["build"] for m in older] == [1, 2]
    kiln("images", "label", "demo@1.1.0", "stage=canary", home=built)
    labelled = kiln("images", "list", "--label", "stage=canary", "--parent", "debian:bookworm", "--json",
                    home=built).json()  # fmt: skip
    assert [(i["version"], i["labels"]) for i in labelled] == [("1.1.0", {"stage": "canary"})]
