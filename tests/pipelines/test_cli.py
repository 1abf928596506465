"""``kiln pipelines`` through the real CLI: file:line errors (exit 2), an atomic apply that refuses a
cascade cycle by name, the schema, show/list/history JSON, enable/disable."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest
from ruamel.yaml import YAML

from kiln.catalog import Catalog
from kiln.pipelines.store import PipelineStore
from kiln.store import Store
from tests.e2e.conftest import kiln
from tests.pipelines.conftest import COMPONENT

REPO = Path(__file__).resolve().parents[2]
RECIPE = "name: {name}\nversion: 1.0.0\nparent: {{image: '{parent}'}}\ncomponents:\n  - path: marker.yaml\n"


def files(folder: Path, pipelines: dict[str, str]) -> Path:
    """Pipelines ``name: parent`` with their recipes, in ``folder``."""
    folder.mkdir(exist_ok=True)
    recipes = folder / "recipes"
    recipes.mkdir(exist_ok=True)
    (recipes / "marker.yaml").write_text(COMPONENT)
    for name, parent in pipelines.items():
        (recipes / f"{name}.yaml").write_text(RECIPE.format(name=name, parent=parent))
        (folder / f"{name}.yaml").write_text(
            f"name: {name}\nrecipe: recipes/{name}.yaml\nschedule: cron(0 4 * * 1-5)\ntimezone: Europe/Berlin\n"
        )
    return folder


def test_invalid_files_report_every_problem_with_file_and_line(tmp_path: Path) -> None:
    folder = files(tmp_path / "p", {"web": "debian:bookworm"})
    (folder / "bad.yaml").write_text(
        "name: bad\nrecipe: recipes/web.yaml\nschedule: 0 4 * *\ntimezone: Europe/Atlantis\n"
        "when: sometimes\ndistribution: [registry]\nauto_disable_after: 0\n"
    )
    (folder / "gone.yaml").write_text("name: gone\nrecipe: recipes/missing.yaml\n")
    (folder / "registry.yaml").write_text("name: registry\nrecipe: web@1.x\n")
    home = tmp_path / "home"
    result = kiln("pipelines", "apply", str(folder), home=home, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    err = " ".join(result.stderr.split())
    for expected in (
        "bad.yaml:3:1: schedule: '0 4 * *': expected 5 fields",
        "bad.yaml:4:1: timezone: unknown time zone 'Europe/Atlantis'",
        "bad.yaml:5:1: when: Input should be 'always' or 'updates-available'",
        "bad.yaml:7:1: auto_disable_after: Input should be greater than or equal to 1",
        "gone.yaml:2:1: recipe: recipe file",
        "registry.yaml:2:1: recipe: recipe 'web@1.x': no published version of recipe web matches 1.x",
    ):
        assert expected in err, err
    assert kiln("pipelines", "list", "--json", home=home).json() == []  # all or nothing
    (folder / "bad.yaml").write_text("name: bad\nrecipe: recipes/web.yaml\ndistribution: [registry]\n")
    for name in ("gone", "registry"):
        (folder / f"{name}.yaml").unlink()
    result = kiln("pipelines", "apply", str(folder / "bad.yaml"), home=home, check=False)
    assert (
        "bad.yaml:3:16: distribution[0]: the recipe has no target 'registry' (its targets: none)"
        in result.stderr
    )


def test_a_cycle_is_refused_by_name_and_nothing_is_applied(tmp_path: Path) -> None:
    folder = files(tmp_path / "p", {"base": "kiln:top@1.x", "mid": "kiln:base@1.x", "top": "kiln:mid@1.x",
                                    "web": "debian:bookworm"})  # fmt: skip
    home = tmp_path / "home"
    result = kiln("pipelines", "apply", str(folder), home=home, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    err = " ".join(result.stderr.split())
    assert "form a cycle through their parent images:" in err
    assert all(f"{n} ({n})" in err for n in ("base", "mid", "top")) and "web (web)" not in err
    assert kiln("pipelines", "list", "--json", home=home).json() == []
    (folder / "recipes/base.yaml").write_text(RECIPE.format(name="base", parent="debian:bookworm"))
    applied = kiln("pipelines", "apply", str(folder), "--json", home=home).json()
    assert applied == [{"change": "created", "pipeline": n} for n in ("base", "mid", "top", "web")]
    again = kiln("pipelines", "apply", str(folder / "web.yaml"), "--json", home=home).json()
    assert again == [{"change": "unchanged", "pipeline": "web"}]
    listed = {p["name"]: p for p in kiln("pipelines", "list", "--json", home=home).json()}
    assert listed["top"]["parents"] == ["mid"] and listed["base"]["parents"] == []
    assert listed["web"]["next_run"].endswith((":00:00Z", "+00:00")) or listed["web"]["next_run"]


def test_show_gives_the_next_run_in_the_pipelines_zone_and_why_the_last_run_was_skipped(
    tmp_path: Path,
) -> None:
    folder = files(tmp_path / "p", {"web": "debian:bookworm"})
    home = tmp_path / "home"
    kiln("pipelines", "apply", str(folder / "web.yaml"), home=home)
    with Catalog.open(Store.open(home).database_url) as catalog:
        PipelineStore(catalog).skip("web", "schedule", "cron 0 4 * * 1-5 (Europe/Berlin) at ...", "schedule:x",
                                    datetime.now(UTC), "no updates: parent and recipe unchanged since web@1.0.0/1")  # fmt: skip
    shown = kiln("pipelines", "show", "web", home=home).stdout
    assert "next run: " in shown and ("CET" in shown or "CEST" in shown)  # 04:00 Berlin time
    assert "next run: " in shown and " 04:00 " in shown
    assert "last scheduled run skipped: no updates: parent and recipe unchanged since web@1.0.0/1" in shown
    data = kiln("pipelines", "show", "web", "--json", home=home).json()
    assert (
        data["last_scheduled_skip"]["trigger"]["type"] == "schedule"
        and data["runs"][0]["status"] == "skipped"
    )
    assert datetime.fromisoformat(data["next_run"]) > datetime.now(UTC)
    history = kiln("pipelines", "history", "web", "--json", home=home).json()
    assert [r["status"] for r in history] == ["skipped"]


def test_disable_enable_and_manual_runs(tmp_path: Path) -> None:
    folder = files(tmp_path / "p", {"web": "debian:bookworm"})
    home = tmp_path / "home"
    kiln("pipelines", "apply", str(folder), home=home)
    assert kiln("pipelines", "disable", "web", "--json", home=home).json()["enabled"] is False
    assert (
        "enabled: no (disabled with kiln pipelines disable)"
        in kiln("pipelines", "show", "web", home=home).stdout
    )
    assert kiln("pipelines", "enable", "web", "--json", home=home).json()["enabled"] is True
    run = kiln("pipelines", "run", "web", "--param", "Greeting=hi", "--json", home=home).json()
    assert run["status"] == "queued" and run["params"] == {"Greeting": "hi"}
    bad = kiln("pipelines", "run", "web", "--param", "Greeting=servus", home=home, check=False)
    assert bad.returncode == 2 and "'servus' is not one of the allowed values" in bad.stderr
    missing = kiln("pipelines", "show", "nope", home=home, check=False)
    assert (
        missing.returncode == 1
        and "no pipeline 'nope'" in missing.stderr
        and "applied pipelines: web" in missing.stderr
    )


def test_the_schema_is_the_model() -> None:
    schema = json.loads(kiln("schema", "pipeline", home=Path("/nonexistent-kiln-home")).stdout)
    assert schema["$id"].endswith("/pipeline.json")
    assert {"name", "recipe", "schedule", "timezone", "when", "triggers", "auto_disable_after"} <= set(
        schema["properties"]
    )
    assert schema["required"] == ["name", "recipe"]
    example = YAML(typ="safe").load((REPO / "examples/pipelines/debian-web.yaml").read_text())
    jsonschema.validate(example, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**example, "when": "sometimes"}, schema)
