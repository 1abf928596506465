"""ExecuteDocument: runs another component document on the same target (nesting <= 3, no cycles).

``document`` is a local path: an absolute path names a file inside the image (a document a previous
step downloaded) and is never looked up on the host; a relative path is relative to the calling
document's folder and must stay inside the folder of the top-level document (see
:mod:`kiln.toe.docpaths`). ``s3://`` URLs and ARNs need AWS and are rejected with a clear message.
Literal relative paths are checked with the whole call tree before anything runs
(:mod:`kiln.toe.nesting`); the checks here catch paths only known at run time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BeforeValidator, Field, field_validator

from kiln.toe.actions.base import Action, ActionContext, ActionFailed, InputModel, Outputs
from kiln.toe.actions.fileutil import host_path
from kiln.toe.docpaths import DocumentPathError, resolve_document

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

    def locate(self, ctx: ActionContext, document: str) -> Path:
        if document.startswith("/"):
            inside = host_path(ctx, document)
            if inside.is_file():
                return inside
            raise ActionFailed(
                f"ExecuteDocument: {document} not found in the image (absolute paths are looked up in the "
                "image only; give a path relative to the calling document for a file next to it)"
            )
        base = Path(str(ctx.services.get("document_dir", ".")))
        root = Path(str(ctx.services.get("document_root", base)))
        try:
            return resolve_document(document, base, root)
        except DocumentPathError as exc:
            raise ActionFailed(f"ExecuteDocument: {exc}") from None

    def run(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        if ctx.nested is None:
            raise ActionFailed("ExecuteDocument is not available in this context")
        path = self.locate(ctx, inputs.document)
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
