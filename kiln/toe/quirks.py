"""Real-world document quirks accepted as a migrating user would expect.

``path: {{ Target }}`` without quotes is, to YAML, a flow mapping whose only key is another mapping;
AWSTOE's examples always quote it, but the intent is unambiguous, so it is read as the text
``{{ Target }}``, with a warning: AWSTOE's variables page calls ``- {{ MyParameter }}`` "not valid,
as it is not identified as a string". (Expressions inside longer strings, ``echo {{ Name }}``, are
plain YAML text already, and ``${...}`` CloudFormation placeholders are never touched.)
"""

from __future__ import annotations

from typing import Any

from ruamel.yaml.comments import CommentedKeyMap, CommentedMap, CommentedSeq


def _unquoted_expression(node: Any) -> str | None:
    if not isinstance(node, CommentedMap) or len(node) != 1:
        return None
    ((key, value),) = node.items()
    if value is not None or not isinstance(key, CommentedKeyMap) or len(key) != 1:
        return None
    ((name, inner),) = key.items()
    if inner is not None or not isinstance(name, str):
        return None
    return f"{{{{ {name} }}}}"


def restore_unquoted_expressions(
    raw: Any, plain: Any, found: list[tuple[str | int, ...]] | None = None, at: tuple[str | int, ...] = ()
) -> Any:
    """``plain`` with every unquoted ``{{ X }}`` value (as parsed in ``raw``) turned back into text;
    where each was is appended to ``found``."""
    text = _unquoted_expression(raw)
    if text is not None:
        if found is not None:
            found.append(at)
        return text
    if isinstance(raw, CommentedMap) and isinstance(plain, dict):
        for key, value in raw.items():
            if isinstance(key, str) and key in plain:
                plain[key] = restore_unquoted_expressions(value, plain[key], found, (*at, key))
    elif isinstance(raw, CommentedSeq) and isinstance(plain, list) and len(raw) == len(plain):
        for i, value in enumerate(raw):
            plain[i] = restore_unquoted_expressions(value, plain[i], found, (*at, i))
    return plain
