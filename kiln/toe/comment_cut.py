"""A bash command that YAML cut short at an unquoted `` #``.

In ``- grep -q '^ #' /etc/x`` YAML ends the plain scalar at `` #`` and drops the rest of the line as
a comment, so bash receives ``grep -q '^`` and fails with "unexpected EOF while looking for matching
quote" at a line of a script the user never wrote. A command whose plain text is followed by a comment
on the same line and whose kept part no longer parses as shell words (an unclosed quote, a trailing
backslash) is reported at its own line; a deliberate trailing comment (``- apt-get update # lists``)
leaves a complete command and is left alone.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from typing import Any

from kiln.yamlsrc import Loc, SourceDocument

_COMMENT = re.compile(r"[ \t]+#")


def _cut_comment(src: SourceDocument, loc: Loc, value: str) -> str | None:
    """The comment that follows the plain scalar ``value`` at ``loc`` on its line, or None."""
    line, column = src.locator.position(loc)
    lines = src.text.splitlines()
    if line is None or column is None or not 0 < line <= len(lines) or "\n" in value:
        return None
    rest = lines[line - 1][column - 1 :]
    if not rest.startswith(value):  # quoted, a block scalar, or folded over several lines
        return None
    after = rest[len(value) :]
    return after.strip() if _COMMENT.match(after) else None


def _broken(command: str) -> bool:
    try:
        shlex.split(command)
    except ValueError:
        return True
    return False


def check_cut_commands(src: SourceDocument, phases_raw: list[Any]) -> Iterator[tuple[Loc, str, str]]:
    """(location, field path, message) for each ExecuteBash command cut short by a YAML comment."""
    for i, phase_raw in enumerate(phases_raw):
        if not isinstance(phase_raw, dict) or not isinstance(phase_raw.get("steps"), list):
            continue
        for j, step_raw in enumerate(phase_raw["steps"]):
            if not isinstance(step_raw, dict) or step_raw.get("action") != "ExecuteBash":
                continue
            inputs = step_raw.get("inputs")
            commands = inputs.get("commands") if isinstance(inputs, dict) else None
            for k, command in enumerate(commands if isinstance(commands, list) else []):
                if not isinstance(command, str) or not _broken(command):
                    continue
                loc: Loc = ("phases", i, "steps", j, "inputs", "commands", k)
                comment = _cut_comment(src, loc, command)
                if comment is None:
                    continue
                field = f"phases[{phase_raw.get('name')}].steps[{step_raw.get('name')}].inputs.commands[{k}]"
                message = (
                    f"YAML ended this unquoted command at ' #' and read {comment!r} as a comment, so "
                    f"bash gets {command!r}, which is cut short (an unclosed quote or a trailing "
                    "backslash): quote the whole line or write the commands as a block scalar (`- |`)"
                )
                yield loc, field, message
