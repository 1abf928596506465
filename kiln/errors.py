"""One base exception for everything Kiln reports to a user.

User errors carry a hint; the CLI prints message + hint and exits with ``exit_code``
(tracebacks only with ``--debug``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


class KilnError(Exception):
    """Base class: a failure Kiln can explain to its user."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True, order=True)
class Issue:
    """One problem found while validating an input file."""

    file: str
    line: int | None
    column: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class ValidationFailed(KilnError):
    """Input documents are invalid; every issue is reported at once (exit code 2)."""

    exit_code = 2

    def __init__(self, issues: Iterable[Issue]) -> None:
        self.issues = sorted(set(issues), key=lambda i: (i.file, i.line or 0, i.column or 0, i.field))
        lines = "\n".join(str(i) for i in self.issues)
        super().__init__(f"{len(self.issues)} validation error(s):\n{lines}")


class UsageError(KilnError):
    """The command line asks for something that cannot be done as given (exit code 2, like Click's)."""

    exit_code = 2


class CommandFailed(KilnError):
    """A subprocess exited non-zero; the message shows the exact argv and stderr tail."""

    def __init__(self, argv: list[str], returncode: int, output_tail: str) -> None:
        from shlex import join

        self.argv = argv
        self.returncode = returncode
        self.output_tail = output_tail
        super().__init__(
            f"command failed with exit code {returncode}: {join(argv)}\n{output_tail}".rstrip(),
            hint="rerun the command above by hand to investigate",
        )


class ToolMissing(KilnError):
    """A required system tool is not installed."""

    def __init__(self, tool: str, package: str) -> None:
        super().__init__(
            f"required tool '{tool}' not found on PATH",
            hint=f"install it with: apt-get install {package}",
        )


class BuildFailed(KilnError):
    """A build failed; nothing was published."""


class StepFailed(BuildFailed):
    """A component step failed during a build."""


class NotFound(KilnError):
    """A named object (image, build, component) does not exist."""


def display_path(path: Path | str) -> str:
    """Path as the user wrote it, relative to the cwd when that is shorter."""
    p = Path(path)
    try:
        return str(p.resolve().relative_to(Path.cwd()))
    except (ValueError, OSError, RuntimeError):  # not below the cwd; a symlink loop (RuntimeError < 3.13)
        return str(p)
