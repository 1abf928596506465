"""ExecuteDocument: runs another component document on the same target (nesting <= 3, no cycles).

``document`` is a local path: absolute paths are looked up inside the image first (a document a
previous step downloaded), then on the host; relative paths are relative to the calling document's
folder. ``s3://`` URLs and ARNs need AWS and are rejected with a clear message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BeforeValidator, Field, field_validator

from kiln.toe.actions.base import Action, ActionContext, ActionFailed, InputModel, Outputs
from kiln.toe.actions.fileutil import host_path

PHASES_DEFAULT = "build,validate,test"


def _text_or_list(value: object) -> object:
    # Checked up front: the str | list[str] union would report each member's failure separately.
    def scalar(v: object) -> bool:
        return isinstance(v, str | int | float) and not isinstance(v, bool)

    if scalar(value) or (isinstance(value, list) and all(scalar(v) for v in value)):
        return value
    raise ValueError("value must be a string or a list of strings")


class ParameterValue(InputModel):
    name: str = Field(min_length=1)
    value: Annotated[str | list[str], BeforeValidator(_text_or_list)]


class ExecuteDocument(Action):
    name = "ExecuteDocument"

    class Inputs(InputModel):
        document: str = Field(min_length=1)
        phases: str = PHASES_DEFAULT
        parameters: list[ParameterValue] = Field(default_factory=list)

        @field_validator("document")
        @classmethod
        def _local(cls, value: str) -> str:
            if value.startswith("s3://") or value.startswith("arn:"):
                raise ValueError(
                    f"{value}: documents in S3 or Image Builder ARNs need AWS; "
                    "download the document first or give a local path"
                )
            return value

    def locate(self, ctx: ActionContext, document: str, base: Path) -> Path:
        if document.startswith("/"):
            inside = host_path(ctx, document)
            if inside.is_file():
                return inside
            if Path(document).is_file():
                return Path(document)
            raise ActionFailed(f"ExecuteDocument: {document} not found in the image or on the host")
        candidate = base / document
        if not candidate.is_file():
            raise ActionFailed(f"ExecuteDocument: {candidate} not found")
        return candidate

    def run(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        if ctx.nested is None:
            raise ActionFailed("ExecuteDocument is not available in this context")
        base = Path(str(ctx.services.get("document_dir", ".")))
        path = self.locate(ctx, inputs.document, base)
        phases = [p.strip() for p in inputs.phases.split(",") if p.strip()]
        parameters = {
            p.name: ",".join(p.value) if isinstance(p.value, list) else p.value for p in inputs.parameters
        }
        result = ctx.nested(path, phases, parameters)
        counts = result.counts()
        outputs: Outputs = {"status": result.status, "document": result.name}
        outputs.update({k: str(v) for k, v in counts.items()})
        if result.status == "failed":
            raise ActionFailed(f"document {result.name} failed: {result.failure_message or 'see its steps'}")
        return outputs
