"""Assert: fails the step when a comparison or logical expression is false."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from kiln.toe.actions.base import Action, ActionContext, ActionFailed, Outputs
from kiln.toe.conditions import Condition, ConditionError, Evaluator, parse_condition


class Assert(Action):
    """``inputs`` is one expression, e.g. ``{stringEquals: 'ok', value: '{{ build.x.outputs.stdout }}'}``."""

    name = "Assert"

    class Inputs(BaseModel):
        model_config = ConfigDict(arbitrary_types_allowed=True)

        condition: Condition

        @model_validator(mode="before")
        @classmethod
        def _parse(cls, data: Any) -> Any:
            if isinstance(data, dict) and isinstance(data.get("condition"), Condition):
                return data
            return {"condition": parse_condition(data)}

    @classmethod
    def inputs_schema(cls) -> dict[str, Any]:
        return {
            "type": "object",
            "description": "one comparison or logical expression (see kiln.toe.conditions)",
        }

    def run(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        try:
            holds = Evaluator(ctx.root, lambda _expr: None)(inputs.condition)
        except ConditionError as exc:
            raise ActionFailed(str(exc)) from None
        if not holds:
            raise ActionFailed(f"assertion failed: {inputs.condition.describe()} is false")
        ctx.output(f"assertion holds: {inputs.condition.describe()}")
        return {}
