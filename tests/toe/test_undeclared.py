"""A ``{{ Name }}`` that is neither a parameter nor a constant stays as written in AWSTOE, which is
nearly always a typo: a warning at its own line with the closest declared name; an error with --strict
(`kiln toe validate`, `kiln validate`, `kiln build`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from kiln.toe.document import load_document

DOCUMENT = """\
name: typo
schemaVersion: 1.0
parameters:
  - ServerName: {type: string, default: web}
constants:
  - Port: {type: string, value: "80"}
phases:
  - name: build
    steps:
      - name: Write
        action: ExecuteBash
        inputs:
          commands:
            - echo "{{ ServerName }} {{ Port }}"
            - echo "{{ ServerNmae }}"
      - name: Loop
        action: ExecuteBash
        loop: {name: each, forEach: [a, b]}
        inputs:
          commands: ['echo "{{ each.value }} {{ loop.index }} {{ build.Write.outputs.stdout }} {{ port }}"']
"""
RECIPE = "name: r\nversion: 1.0.0\nparent: debian:bookworm\ncomponents:\n  - path: typo.yaml\n"


def kiln(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "300"}
    return subprocess.run([sys.executable, "-m", "kiln.cli.main", *args], capture_output=True, text=True,
                          env=env, check=False)  # fmt: skip


def test_undeclared_names_are_warnings_with_a_guess(tmp_path: Path) -> None:
    (tmp_path / "typo.yaml").write_text(DOCUMENT)
    warnings = [str(w) for w in load_document(tmp_path / "typo.yaml").warnings]
    assert len(warnings) == 2, warnings  # loop variables, chaining and declared names are fine
    assert warnings[0].startswith(f"{tmp_path / 'typo.yaml'}:15:15: phases[build].steps[Write].inputs: ")
    assert "{{ ServerNmae }} is not a parameter or constant" in warnings[0]
    assert "did you mean {{ ServerName }}?" in warnings[0]
    assert ":20:" in warnings[1] and "did you mean {{ Port }}?" in warnings[1]


def test_strict_makes_them_errors(tmp_path: Path) -> None:
    (tmp_path / "typo.yaml").write_text(DOCUMENT)
    (tmp_path / "r.yaml").write_text(RECIPE)
    relaxed = kiln("toe", "validate", "-d", str(tmp_path / "typo.yaml"))
    assert relaxed.returncode == 0 and "did you mean {{ ServerName }}" in relaxed.stderr
    strict = kiln("toe", "validate", "-d", str(tmp_path / "typo.yaml"), "--strict")
    assert strict.returncode == 2 and "2 validation error(s)" in strict.stderr
    assert kiln("validate", str(tmp_path / "r.yaml")).returncode == 0
    refused = kiln("validate", str(tmp_path / "r.yaml"), "--strict")
    assert refused.returncode == 2 and "did you mean {{ Port }}" in refused.stderr
    build = kiln("build", str(tmp_path / "r.yaml"), "--strict", "--data-dir", str(tmp_path / "home"))
    assert build.returncode == 2 and "did you mean {{ ServerName }}" in build.stderr


def test_an_unquoted_colon_says_how_to_quote(tmp_path: Path) -> None:
    from kiln.errors import ValidationFailed

    text = DOCUMENT.replace('- echo "{{ ServerNmae }}"', "- echo key: value > /etc/x")
    (tmp_path / "colon.yaml").write_text(text)
    try:
        load_document(tmp_path / "colon.yaml")
    except ValidationFailed as exc:
        (issue,) = exc.issues
    assert (issue.line, issue.field) == (15, "phases[build].steps[Write].inputs.commands[1]")
    assert "quote the whole line, e.g. 'echo key: value > /etc/x'" in issue.message
