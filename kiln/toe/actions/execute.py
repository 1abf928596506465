"""ExecuteBash and ExecuteBinary: processes in the target (the sandbox for a root filesystem)."""

from __future__ import annotations

import shlex
import uuid

from pydantic import Field

from kiln.sandbox.run import CommandTimedOut, Completed
from kiln.toe.actions.base import (
    REBOOT_EXIT_CODE,
    Action,
    ActionContext,
    ActionFailed,
    InputModel,
    Outputs,
    RebootRequested,
)
from kiln.toe.targets import staged_file


def _finish(ctx: ActionContext, done: Completed, what: str) -> Outputs:
    stdout = done.stdout.rstrip("\n")
    outputs: Outputs = {"stdout": stdout}
    if done.returncode == REBOOT_EXIT_CODE:
        raise RebootRequested(outputs)
    if done.returncode != 0:
        raise ActionFailed(
            f"{what} exited with code {done.returncode}", exit_code=done.returncode, output_tail=done.tail
        )
    return outputs


def _execute(ctx: ActionContext, argv: list[str], what: str) -> Outputs:
    def forward(stream: str, line: str) -> None:
        ctx.output(line)

    try:
        done = ctx.target.execute(argv, env=dict(ctx.env), timeout=ctx.timeout, on_output=forward)
    except CommandTimedOut as exc:
        ctx.processes.append(shlex.join(exc.argv))
        raise ActionFailed(
            f"timed out after {ctx.timeout or 0:.0f}s: {what} was killed with its process tree"
        ) from None
    ctx.processes.append(shlex.join(done.argv))
    return _finish(ctx, done, what)


def run_script(ctx: ActionContext, script: str, what: str = "script") -> Outputs:
    """Run a bash script in the target (staged in the image's /tmp, removed afterwards)."""
    with staged_file(ctx.target, f"script-{uuid.uuid4().hex}.sh", script.encode()) as path:
        return _execute(ctx, ["bash", path], what)


class ExecuteBash(Action):
    """Commands joined into one script, run with bash; the exit code of the script decides."""

    name = "ExecuteBash"

    class Inputs(InputModel):
        commands: list[str] = Field(min_length=1)

    def run(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        return run_script(ctx, "\n".join(inputs.commands) + "\n")


class ExecuteBinary(Action):
    """A program with arguments, no shell in between."""

    name = "ExecuteBinary"

    class Inputs(InputModel):
        path: str = Field(min_length=1)
        arguments: list[str] = Field(default_factory=list)

    def run(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        return _execute(ctx, [inputs.path, *inputs.arguments], inputs.path)
