"""AWSTOE action modules. Importing this package registers every action (a broken module fails loudly)."""

from __future__ import annotations

import importlib

from kiln.toe.actions.base import Action, ActionContext, ActionFailed, Outputs, RebootRequested

ACTION_MODULES = (
    "kiln.toe.actions.execute",
    "kiln.toe.actions.files_create",
    "kiln.toe.actions.files_copy",
    "kiln.toe.actions.files_meta",
    "kiln.toe.actions.assertion",
    "kiln.toe.actions.system",
    "kiln.toe.actions.web",
    "kiln.toe.actions.s3",
    "kiln.toe.actions.document",
    "kiln.toe.actions.windows",
)

for _module in ACTION_MODULES:
    importlib.import_module(_module)


def lookup(name: str) -> type[Action] | None:
    """The action class for an AWSTOE action name (exact, case-sensitive), or None."""
    return Action.registry.get(name)


__all__ = ["Action", "ActionContext", "ActionFailed", "Outputs", "RebootRequested", "lookup"]
