"""UpdateOS (apt-get, dnf or yum, whichever the image has) and Reboot (recorded; no kernel in a root)."""

from __future__ import annotations

import shlex

from pydantic import Field

from kiln.toe.actions.base import Action, ActionContext, ActionFailed, InputModel, Outputs
from kiln.toe.actions.execute import run_script
from kiln.toe.actions.fileutil import host_path

APT_OPTIONS = "-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold"


def _apt_script(include: list[str], exclude: list[str]) -> str:
    held = " ".join(shlex.quote(p) for p in exclude)
    lines = ["set -euo pipefail", "export DEBIAN_FRONTEND=noninteractive"]
    if exclude:
        # Hold the excluded packages that are installed for the duration of the upgrade.
        lines += [
            f"held=$(dpkg-query -W -f='${{Package}}\\n' {held} 2>/dev/null || true)",
            'if [ -n "$held" ]; then apt-mark hold $held >/dev/null; fi',
            "trap 'if [ -n \"$held\" ]; then apt-mark unhold $held >/dev/null; fi' EXIT",
        ]
    lines.append("apt-get update")
    if include:
        wanted = " ".join(shlex.quote(p) for p in include if p not in exclude)
        if wanted:
            lines.append(f"apt-get install -y --only-upgrade {APT_OPTIONS} {wanted}")
    else:
        lines.append(f"apt-get upgrade -y --with-new-pkgs {APT_OPTIONS}")
    return "\n".join(lines) + "\n"


def _rpm_script(tool: str, include: list[str], exclude: list[str]) -> str:
    args = [tool, "-y", "upgrade", *[p for p in include if p not in exclude]]
    args += [f"--exclude={p}" for p in exclude]
    return "set -euo pipefail\n" + shlex.join(args) + "\n"


class UpdateOS(Action):
    """Installs available updates; ``include`` limits them to some packages, ``exclude`` keeps some back."""

    name = "UpdateOS"

    class Inputs(InputModel):
        include: list[str] = Field(default_factory=list)
        exclude: list[str] = Field(default_factory=list)

    def run(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        if inputs.include and not [p for p in inputs.include if p not in inputs.exclude]:
            ctx.output("UpdateOS: every included package is also excluded; nothing to do")
            return {}
        for tool in ("apt-get", "dnf", "yum"):
            if any(host_path(ctx, f"{d}/{tool}").is_file() for d in ("/usr/bin", "/bin", "/usr/sbin")):
                break
        else:
            raise ActionFailed("UpdateOS: the image has none of apt-get, dnf or yum")
        if tool == "apt-get":
            script = _apt_script(inputs.include, inputs.exclude)
        else:
            script = _rpm_script(tool, inputs.include, inputs.exclude)
        run_script(ctx, script, f"UpdateOS ({tool})")
        return {}


class Reboot(Action):
    """A root filesystem has no kernel to reboot: the request is recorded and the run goes on."""

    name = "Reboot"

    class Inputs(InputModel):
        delay_seconds: int = Field(default=0, ge=0)

    def run(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        ctx.output(
            "Reboot requested"
            + (f" (delaySeconds {inputs.delay_seconds})" if inputs.delay_seconds else "")
            + ": nothing to reboot while building a root filesystem; continuing with the next step"
        )
        ctx.reboots.append(ctx.step)
        return {}
