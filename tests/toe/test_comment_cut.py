"""A bash command cut short by an unquoted `` #`` is a warning at the command's own line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from kiln.toe.document import load_document

DOC = """\
name: cut
schemaVersion: 1.0
phases:
  - name: build
    steps:
      - name: Check
        action: ExecuteBash
        inputs:
          commands:
            - apt-get update  # a deliberate comment: the command is complete
            - grep -q '^ #' /etc/ssh/sshd_config
            - "grep -q '^ #' /etc/ssh/sshd_config"
            - echo trailing \\ # backslash
          # a comment line
      - name: Block
        action: ExecuteBash
        inputs:
          commands:
            - |
              grep -q '^ #' /etc/issue
"""


def test_only_the_cut_commands_are_reported_at_their_lines(tmp_path: Path) -> None:
    path = tmp_path / "cut.yaml"
    path.write_text(DOC)
    warnings = load_document(path).warnings
    where = [(w.line, w.field) for w in warnings]
    assert where == [
        (11, "phases[build].steps[Check].inputs.commands[1]"),
        (13, "phases[build].steps[Check].inputs.commands[3]"),
    ]
    assert 'bash gets "grep -q \'^"' in warnings[0].message
    assert "block scalar" in warnings[0].message


def test_strict_validation_refuses_it(tmp_path: Path) -> None:
    path = tmp_path / "cut.yaml"
    path.write_text(DOC)
    run = [sys.executable, "-m", "kiln.cli.main", "toe", "validate", "-d", str(path)]
    lenient = subprocess.run(run, capture_output=True, text=True, check=False)
    assert lenient.returncode == 0 and "cut.yaml:11:15:" in lenient.stderr
    strict = subprocess.run([*run, "--strict"], capture_output=True, text=True, check=False)
    assert strict.returncode == 2 and "cut.yaml:11:15:" in strict.stderr
