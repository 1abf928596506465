"""``kiln toe validate`` and ``kiln toe run``: exit codes, awstoe-style output, the log folder, config JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

GOOD = """\
name: files
description: writes files
schemaVersion: 1.0
parameters:
  - Content:
      type: string
      default: default text
  - Required:
      type: string
phases:
  - name: build
    steps:
      - name: Write
        action: CreateFile
        inputs:
          - path: /out/{{ Required }}.txt
            content: '{{ Content }}'
      - name: Read
        action: ReadFile
        inputs:
          - path: '{{ build.Write.inputs[0].path }}'
  - name: validate
    steps:
      - name: Check
        action: Assert
        inputs:
          stringEquals: '{{ Content }}'
          value: '{{ build.Read.outputs.content }}'
"""

FAILING = """\
name: failing
schemaVersion: 1.0
phases:
  - name: build
    steps:
      - name: Missing
        action: ReadFile
        inputs:
          - path: /does/not/exist
"""


def kiln(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kiln.cli.main", *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    (tmp_path / "good.yaml").write_text(GOOD)
    (tmp_path / "failing.yaml").write_text(FAILING)
    (tmp_path / "bad.yaml").write_text(GOOD.replace("action: ReadFile", "action: ReadFiles"))
    return tmp_path


def test_validate(docs: Path) -> None:
    ok = kiln("toe", "validate", "--documents", f"{docs}/good.yaml,{docs}/failing.yaml")
    assert ok.returncode == 0, ok.stderr
    bad = kiln("toe", "validate", "-d", f"{docs}/good.yaml,{docs}/bad.yaml")
    assert bad.returncode == 2
    assert "bad.yaml:19:9: phases[build].steps[Read].action: unknown action 'ReadFiles'" in bad.stderr
    report = json.loads(kiln("toe", "validate", "-d", f"{docs}/bad.yaml", "--json").stdout)
    assert report["valid"] is False and "ReadFiles" in report["documents"][0]["issues"][0]


def test_run_writes_the_awstoe_log_folder(docs: Path, tiny_root: Path) -> None:
    logs = docs / "logs"
    done = kiln(
        "toe", "run", "--target", f"rootfs:{tiny_root}", "--documents", f"{docs}/good.yaml",
        "--parameters", "Required=report,Content=a,b=c", "--execution-id", "exec-1", "-l", str(logs), "-q",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["status"] == "success" and summary["executedStepCount"] == 3
    assert (tiny_root / "out/report.txt").read_text() == "a,b=c"
    (folder,) = logs.iterdir()
    assert folder.name.startswith("TOE_") and folder.name.endswith("_UTC-0_exec-1")
    assert summary["logUrl"] == str(folder)
    assert sorted(p.name for p in folder.iterdir()) == [
        "application.log", "chaining.json", "console.log", "detailedoutput.json", "document.yaml",
    ]  # fmt: skip
    detailed = json.loads((folder / "detailedoutput.json").read_text())
    assert detailed["executionId"] == "exec-1" and detailed["status"] == "success"
    (document,) = detailed["documents"]
    assert [p["name"] for p in document["phases"]] == ["build", "validate"]
    write = document["phases"][0]["steps"][0]
    assert write["action"] == "CreateFile" and write["status"] == "success"
    assert json.loads(write["inputs"]) == [{"path": "/out/report.txt", "content": "a,b=c"}]
    chaining = json.loads((folder / "chaining.json").read_text())
    expressions = {r["expression"]: r["value"] for r in chaining["documents"][0]["resolutions"]}
    assert expressions == {"{{ build.Write.inputs[0].path }}": "/out/report.txt",
                           "{{ build.Read.outputs.content }}": "a,b=c"}  # fmt: skip
    assert "name: files" in (folder / "document.yaml").read_text()
    assert "[files/validate/Check] success" in (folder / "console.log").read_text()
    assert "files/build/Write" in (folder / "application.log").read_text()


def test_run_with_config_json_and_failures(docs: Path, tiny_root: Path) -> None:
    config = docs / "run.json"
    config.write_text(json.dumps({
        "documents": [{"path": "good.yaml", "parameters": [{"name": "Required", "value": "fromconfig"}]},
                      {"path": "failing.yaml"}],
        "phases": "build",
        "parameters": [{"name": "Content", "value": "global"}],
        "executionId": "cfg-run",
        "logDirectory": "cfg-logs",
    }))  # fmt: skip
    done = kiln("toe", "run", "--target", f"rootfs:{tiny_root}", "--config", str(config), "-q")
    assert done.returncode == 1
    summary = json.loads(done.stdout)
    assert summary["status"] == "failed" and summary["failedStepCount"] == 1
    assert "document failing, phase build, step Missing, attempt 1/1" in summary["failureMessage"]
    assert (tiny_root / "out/fromconfig.txt").read_text() == "global"
    (folder,) = (docs / "cfg-logs").iterdir()
    assert folder.name.endswith("_cfg-run")
    detailed = json.loads((folder / "detailedoutput.json").read_text())
    assert [d["status"] for d in detailed["documents"]] == ["success", "failed"]
    assert [p["name"] for p in detailed["documents"][0]["phases"]] == ["build"]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--documents", "{docs}/good.yaml"], 1, "choose where the steps run with --target"),
        (["--target", "rootfs:{root}", "-d", "{docs}/good.yaml"], 2, "parameter 'Required' has no default"),
        (["--target", "rootfs:{root}", "-d", "{docs}/bad.yaml"], 2, "unknown action 'ReadFiles'"),
        (["--target", "vm:x", "-d", "{docs}/good.yaml"], 1, "invalid --target 'vm:x'"),
        (["--target", "rootfs:/nonexistent", "-d", "{docs}/good.yaml"], 1, "no such directory"),
        (["--target", "rootfs:{root}", "-d", "{docs}/failing.yaml", "-i", "../x"], 1, "invalid execution id"),
        (
            ["--target", "rootfs:{root}", "-d", "{docs}/good.yaml", "--parameters", "novalue"],
            1,
            "is not NAME=VALUE",
        ),
    ],
)
def test_run_errors(docs: Path, tiny_root: Path, args: list[str], code: int, message: str) -> None:
    done = kiln("toe", "run", *(a.format(docs=docs, root=tiny_root) for a in args), "-l", str(docs / "logs"))
    assert done.returncode == code, done.stderr
    assert message in done.stderr
    assert not (docs / "logs").exists() or not any((docs / "logs").iterdir())


def test_scratch_leaves_the_root_untouched(docs: Path, tiny_root: Path) -> None:
    before = sorted(p.relative_to(tiny_root) for p in tiny_root.rglob("*"))
    done = kiln(
        "toe", "run", "--target", f"rootfs:{tiny_root}", "--scratch", "-d", f"{docs}/good.yaml",
        "--parameters", "Required=scratch", "-l", str(docs / "logs"), "-q", "--data-dir", str(docs / "home"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "success"
    assert sorted(p.relative_to(tiny_root) for p in tiny_root.rglob("*")) == before
    assert list((docs / "home/tmp").iterdir()) == []
    assert str(docs) not in Path("/proc/self/mounts").read_text()
