"""The README's commands, in the README's order, on a fresh data dir: the test reads the README's shell
blocks (it never keeps its own copy), so a command that drifts from what Kiln does fails here.

What cannot run offline or here is substituted, each for the reason given in SUBSTITUTED; placeholders
(``<build-id>``) take the values earlier commands printed; ``[optional parts]`` are left out and
``a|b`` takes ``a``. The parents, .debs and layers come from the shared test cache, so the build is a
warm one (every step runs again in ``kiln test``'s fresh instance, not in the build).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
KILN = REPO / ".venv/bin/kiln"
TRACKER = REPO / "tests/fixtures/vuln/debian-security-tracker-json/vunnel-debian.json"

# The sections whose first shell block a new user runs, in the README's order.
SECTIONS = (
    "# Kiln",
    "## Your first image",
    "### Testing a recorded image again",
    "## Evidence: SBOMs, vulnerabilities, compliance, provenance",
)
SUBSTITUTED = {
    "make demo": "runs the Makefile's `demo:` recipe without its `deps` prerequisite: deps installs the "
    "Debian and Python packages (apt-get, pip into the shared .venv), which `make test` already did",
    "make test": "skipped: it is this suite",
    "https://security-tracker.debian.org/tracker/data/json": "offline: a real excerpt of that feed, "
    f"{TRACKER.relative_to(REPO)}",
    "$HOME/.local/share/kiln": "the fresh data dir the test runs with (KILN_HOME)",
}


def shell_block(section: str) -> list[str]:
    """The command lines of the first fenced block after the heading ``section``."""
    lines = README.read_text().splitlines()
    assert section in lines, f"README has no heading {section!r} any more"
    start = lines.index(section)
    fence = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("```"))
    end = next(i for i in range(fence + 1, len(lines)) if lines[i].startswith("```"))
    return [line for line in lines[fence + 1 : end] if line.strip()]


def concrete(line: str, values: dict[str, str]) -> str:
    """A README line as a command: no comment, no [optional] parts, first of a|b, placeholders filled."""
    text = re.split(r"\s{2,}#", line)[0].strip()
    while re.search(r"\[[^\[\]]*\]", text):
        text = re.sub(r"\s*\[[^\[\]]*\]", "", text)
    text = re.sub(r"(\S+?)\|\S+", r"\1", text)
    for original in SUBSTITUTED:
        text = text.replace(original, values.get(original, original))
    for name in re.findall(r"<([\w-]+)>", text):
        assert name in values, f"the README's placeholder <{name}> is not known to this test"
        text = text.replace(f"<{name}>", values[name])
    return text


def makefile_recipe(target: str) -> list[str]:
    lines = (REPO / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{target}:"))
    recipe = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip().replace("$(KILN)", ".venv/bin/kiln"))
    return recipe


def test_the_readme_commands_run_in_order(tmp_path: Path) -> None:
    home = tmp_path / "kiln-home"
    work = tmp_path / "work"  # the user's current directory (keys/ is written there)
    work.mkdir()
    for name in ("examples", ".venv"):
        (work / name).symlink_to(REPO / name)
    env = {**os.environ, "KILN_HOME": str(home), "KILN_ACCEL": "tcg"}
    values = {
        "https://security-tracker.debian.org/tracker/data/json": str(TRACKER),
        "$HOME/.local/share/kiln": str(home),
    }
    outputs: dict[str, str] = {}

    def run(command: str) -> str:
        argv = shlex.split(command)
        if argv[0] in ("kiln", ".venv/bin/kiln"):
            argv[0] = str(KILN)
        proc = subprocess.run(
            argv, cwd=work, env=env, capture_output=True, text=True, timeout=900, check=False
        )
        assert proc.returncode == 0, f"README command failed: {command}\n{proc.stdout}\n{proc.stderr}"
        outputs[command] = proc.stdout
        return proc.stdout

    ran = []
    for section in SECTIONS:
        for line in shell_block(section):
            command = concrete(line, values)
            if command == "make test":
                continue
            for step in makefile_recipe("demo") if command == "make demo" else [command]:
                stdout = run(step)
                ran.append(step)
                if step.endswith("images show debian-web@1.0.0 --json"):
                    shown = json.loads(stdout)
                    values["build-id"] = shown["build_id"]
                    oci = next(a["path"] for a in shown["artifacts"] if a["kind"] == "oci")
                    values["version-dir"] = Path(oci).parent.name
    # what the commands said, beyond exiting 0
    assert (
        ran[0] == ran[1] == ".venv/bin/kiln build examples/recipes/debian-web.yaml"
    )  # make demo, then the guide
    listed = next(out for cmd, out in outputs.items() if cmd.endswith("images list"))
    assert "debian-web" in listed
    shown = json.loads(next(out for cmd, out in outputs.items() if cmd.endswith("--json")))
    assert shown["build"] == 2  # the guide's build came second, after make demo's
    inspected = json.loads(next(out for cmd, out in outputs.items() if cmd.startswith("skopeo inspect")))
    assert inspected["Digest"] == shown["digest"]
    assert (
        json.loads(next(out for cmd, out in outputs.items() if " sbom " in cmd))["spdxVersion"] == "SPDX-2.3"
    )
    assert "packages, debian bookworm" in next(out for cmd, out in outputs.items() if " scan " in cmd)
    assert "score" in next(out for cmd, out in outputs.items() if " comply " in cmd)
    assert (work / "keys/signing.key.pub").is_file()
    assert "(not signed)" in next(out for cmd, out in outputs.items() if " verify " in cmd)
    assert "tests passed on debian-web@1.0.0/2" in next(
        out for cmd, out in outputs.items() if " test " in cmd
    )
