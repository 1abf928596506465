"""The small component documents and recipes many tests build, written once and parameterised where
tests differ. A test whose document is unusual (the point of the test) keeps its own text."""

from __future__ import annotations

import json
from pathlib import Path


def create_file_component(
    content: str,
    *,
    name: str = "motd",
    path: str = "/etc/motd",
    overwrite: bool = False,
    parameters: dict[str, str] | None = None,
    check: str | None = None,
) -> str:
    """A component whose build step writes ``content`` to ``path`` (CreateFile). ``parameters``: string
    parameters with their defaults; ``check``: a test phase running this one shell command."""
    text = f"name: {name}\nschemaVersion: 1.0\n"
    if parameters:
        text += "parameters:\n" + "".join(
            f"  - {key}: {{type: string, default: {json.dumps(value)}}}\n"
            for key, value in parameters.items()
        )
    text += (
        "phases:\n  - name: build\n    steps:\n      - name: Write\n        action: CreateFile\n"
        f"        inputs:\n          - path: {path}\n            content: {json.dumps(content)}\n"
    )
    if overwrite:
        text += "            overwrite: true\n"
    if check is not None:
        text += (
            "  - name: test\n    steps:\n      - name: Read\n        action: ExecuteBash\n"
            f"        inputs:\n          commands: [{json.dumps(check)}]\n"
        )
    return text


def sleep_component(seconds: int, *, name: str = "sleep") -> str:
    """A component whose build step sleeps ``seconds`` (ExecuteBash): a build that runs until stopped."""
    return (
        f"name: {name}\nschemaVersion: 1.0\nphases:\n  - name: build\n    steps:\n      - name: Wait\n"
        f'        action: ExecuteBash\n        inputs:\n          commands: ["sleep {seconds}"]\n'
    )


def chatty_component(first: str, last: str, *, seconds: int = 4) -> str:
    """A component that logs ``first``, works ``seconds``, then logs ``last``: a log to follow live."""
    commands = json.dumps([f"echo {first}", f"sleep {seconds}", f"echo {last}"])
    return (
        "name: chatty\nschemaVersion: 1.0\nphases:\n  - name: build\n    steps:\n      - name: Talk\n"
        f"        action: ExecuteBash\n        inputs:\n          commands: {commands}\n"
    )


def recipe_yaml(name: str, component: str = "motd.yaml", *, version: str = "1.0.0", extra: str = "") -> str:
    """A recipe of one component on the (cached) Debian bookworm parent, without network; ``extra``:
    more top-level lines (``signing: ...``)."""
    return (
        f'name: {name}\nversion: {version}\nparent: {{image: "debian:bookworm"}}\ncomponents:\n'
        f"  - path: {component}\nsettings: {{network: false}}\n{extra}"
    )


def write_recipe(
    folder: Path, name: str, component: str, document: str, *, version: str = "1.0.0", extra: str = ""
) -> Path:
    """Write ``document`` as ``folder/component`` and a recipe of it as ``folder/recipe.yaml`` (returned)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / component).write_text(document)
    recipe = folder / "recipe.yaml"
    recipe.write_text(recipe_yaml(name, component, version=version, extra=extra))
    return recipe
