"""Check a document's ExecuteDocument calls, and theirs, before anything runs.

Every literal relative path is followed (as the runner would) and each called document validated:
a missing document, a path outside the component's folder, a cycle, nesting deeper than
:data:`~kiln.toe.docpaths.MAX_NESTING`, a required parameter left unset and a literal parameter value
that is empty or outside ``allowedValues`` are reported at the
calling step's ``inputs.document`` (file:line:column). Paths holding ``{{ }}`` expressions and
absolute paths (files inside the image) can only be checked at run time.
"""

from __future__ import annotations

from pathlib import Path

from kiln.errors import Issue, ValidationFailed, display_path
from kiln.toe.docpaths import MAX_NESTING, DocumentPathError, resolve_document
from kiln.toe.document import Document, DocumentCall, load_document, parameter_errors


class _Walk:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.issues: list[Issue] = []
        self.documents: dict[Path, Document | None] = {}
        self.seen: set[tuple[Path, ...]] = set()

    def issue(self, doc: Document, call: DocumentCall, message: str) -> None:
        self.issues.append(Issue(display_path(doc.path), call.line, call.column, call.field, message))

    def load(self, path: Path) -> Document | None:
        if path not in self.documents:
            try:
                self.documents[path] = load_document(path)
            except ValidationFailed as exc:
                self.issues.extend(exc.issues)
                self.documents[path] = None
        return self.documents[path]

    def visit(self, doc: Document, stack: tuple[Path, ...]) -> None:
        if stack in self.seen:  # the same chain again (two calls of one document)
            return
        self.seen.add(stack)
        for call in doc.calls:
            try:
                path = resolve_document(call.target, doc.path.parent, self.root)
            except DocumentPathError as exc:
                self.issue(doc, call, f"ExecuteDocument: {exc}")
                continue
            if path in stack:
                chain = " -> ".join(p.name for p in (*stack[stack.index(path) :], path))
                self.issue(doc, call, f"ExecuteDocument cycle: {chain}")
                continue
            if len(stack) > MAX_NESTING:
                deep = f"ExecuteDocument nests more than {MAX_NESTING} levels deep ({path.name})"
                self.issue(doc, call, deep)
                continue
            called = self.load(path)
            if called is None:
                continue
            given = set(call.parameters)  # values with {{ }} are judged at run time
            for name, message in parameter_errors(called, dict(call.values)):
                if name not in given or name in dict(call.values):
                    self.issue(doc, call, f"ExecuteDocument: {message}")
            self.visit(called, (*stack, path))


def check_calls(doc: Document) -> list[Issue]:
    """Issues of ``doc``'s ExecuteDocument call tree (``doc`` is the top-level component)."""
    top = doc.path.resolve()
    walk = _Walk(top.parent)
    walk.visit(doc, (top,))
    return walk.issues


def load_checked(path: Path) -> Document:
    """``load_document`` plus :func:`check_calls`: the validation every entry point runs."""
    doc = load_document(path)
    top = doc.path.resolve()
    walk = _Walk(top.parent)
    walk.visit(doc, (top,))
    if walk.issues:
        raise ValidationFailed(walk.issues)
    for called in walk.documents.values():  # what the called documents warn about, once each
        if called is not None:
            doc.warnings.extend(w for w in called.warnings if w not in doc.warnings)
    return doc


def included_documents(doc: Document, *, skip_phases: tuple[str, ...] = ()) -> list[Path]:
    """The host files ``doc``'s literal ExecuteDocument calls read, and theirs (each once, in call
    order); calls from ``skip_phases`` of ``doc`` itself are left out. Paths that cannot be resolved
    are left out too: validation reports them."""
    root = doc.path.resolve().parent
    found: list[Path] = []
    pending = [(doc, c) for c in doc.calls if c.phase not in skip_phases]
    while pending:
        caller, call = pending.pop(0)
        try:
            path = resolve_document(call.target, caller.path.parent, root)
        except DocumentPathError:
            continue
        if path in found:
            continue
        found.append(path)
        try:
            called = load_document(path)
        except ValidationFailed:
            continue
        pending.extend((called, c) for c in called.calls)
    return found
