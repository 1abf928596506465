"""A recipe that travels inside its build request (an API upload): written into the worker's own data
directory before the build, so server and workers share no directory.

The folder is named by a hash of the recipe and its documents (the same upload lands in the same
folder; no two differ in one); only plain file names (:data:`FILE_NAME`, as the API accepts them)
are written, so a request cannot place a file anywhere else.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from kiln.errors import KilnError
from kiln.models import BuildRequest

FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}\.(ya?ml|json)$")


def localize_recipe(request: BuildRequest, home: Path) -> BuildRequest:
    """``request`` with its recipe in ``home/uploads/<hash>/`` when it carries its documents; as it is
    otherwise (a recipe file on a shared path, or one without documents whose folder exists here)."""
    source = request.recipe
    if not source.documents and source.path.parent.is_dir():
        return request
    bad = [name for name in source.documents if not FILE_NAME.match(name) or name == "recipe.yaml"]
    if bad:
        raise KilnError(f"build request: component document name(s) {', '.join(map(repr, bad))} refused")
    digest = hashlib.sha256(json.dumps([source.text, source.documents], sort_keys=True).encode()).hexdigest()
    folder = home / "uploads" / digest[:32]
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in source.documents.items():
        (folder / name).write_text(text)
    (folder / "recipe.yaml").write_text(source.text)
    recipe = source.model_copy(update={"path": folder / "recipe.yaml"})
    return request.model_copy(update={"recipe": recipe})
