"""What a test step may be to run inside a VM guest, which runs plain scripts without Kiln's engine.

Checked when a recipe that tests on a VM instance is loaded (:mod:`kiln.recipes.loader`) and again when
the guest's plan is made (:mod:`kiln.verify.guest_plan`), so a recipe is refused before any build.
"""

from __future__ import annotations

from kiln.toe.document import Step

GUEST_ACTIONS = ("ExecuteBash", "ExecuteBinary")


def guest_step_problems(step: Step) -> list[tuple[str, str]]:
    """Why ``step`` cannot run in a VM test phase, as ``(field suffix, message)`` pairs (none: it can)."""
    if step.action not in GUEST_ACTIONS:
        runs = " and ".join(GUEST_ACTIONS)
        message = f"{step.action} cannot run in a VM test phase (VM tests run {runs} steps)"
        return [(".action", f"{message}; use a container instance, or a bash step")]
    if step.loop is not None or step.condition is not None:
        return [("", "loop and if are not supported in VM test phases yet")]
    return []
