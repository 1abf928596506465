"""``if:`` conditions and the ``Assert`` action: comparison and logical operators.

Forms accepted (AWSTOE's, the baseline is the operator's value, the tested value is ``value:``)::

    stringEquals: 'expected'          patternMatches: '^s3://'        fileExists: /etc/hosts
    value: '{{ build.x.outputs.y }}'  value: '{{ Source }}'           binaryExists: apt-get
    fileSHA256Equals: '<hex>'         and: [ ... ]  or: [ ... ]       not: { ... }
    path: /usr/bin/tool

Unary string operators take the tested text as their own value (``stringIsEmpty: '{{ X }}'``) or in
``value:``. String comparisons are case-insensitive and untrimmed, ``patternMatches`` included (the
documented example: ``'^[a-z]+$'`` matches ``ThisIsValue``); ``stringIsWhitespace`` is false for the
empty string. Patterns are RE2 (Go's ``regexp``) run with Python's ``re.search``: ``\\z`` is RE2's
end of text (Python's ``\\Z``); what RE2 refuses (look-around, back-references) and what Python lacks
(``\\C``, ``(?U)``, ``\\pN`` one-letter classes) is an error, for literal patterns when the document is
validated. Four levels of logical operators may nest, the comparisons below them not counted.
File operators look inside the image root and never outside it. A step's ``if`` mapping may also
carry ``then:``/``else:`` with ``Execute``, ``Skip`` or ``Abort``: by default a true condition runs the
step and a false one skips it; with ``then: Abort`` or ``then: Skip`` alone, a false condition runs it.
"""

from __future__ import annotations

import hashlib
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from kiln.sandbox.bwrap import DEFAULT_PATH
from kiln.sandbox.paths import resolve_in_root
from kiln.toe.variables import Resolver, scalar_text, substitute_text

MAX_DEPTH = 4

STRING_UNARY = ("stringIsEmpty", "stringIsWhitespace")
STRING_BINARY = (
    "stringEquals", "stringLessThan", "stringLessThanEquals", "stringGreaterThan",
    "stringGreaterThanEquals", "patternMatches",
)  # fmt: skip
NUMBER_BINARY = (
    "numberEquals", "numberLessThan", "numberLessThanEquals", "numberGreaterThan", "numberGreaterThanEquals",
)  # fmt: skip
FILE_UNARY = ("binaryExists", "fileExists", "folderExists")
FILE_HASH = {
    "fileMD5Equals": "md5", "fileSHA1Equals": "sha1",
    "fileSHA256Equals": "sha256", "fileSHA512Equals": "sha512",
}  # fmt: skip
LOGICAL = ("and", "or", "not")
OPERATORS = (*STRING_UNARY, *STRING_BINARY, *NUMBER_BINARY, *FILE_UNARY, *FILE_HASH, *LOGICAL)

Branch = Literal["Execute", "Skip", "Abort"]


class ConditionError(ValueError):
    """A condition that cannot be evaluated (bad pattern...)."""


@dataclass(frozen=True)
class Condition:
    """A parsed expression: ``operator`` with ``baseline``/``value``/``path`` or logical ``operands``."""

    operator: str
    baseline: Any = None
    value: Any = None
    path: str | None = None
    operands: tuple[Condition, ...] = field(default=())

    def describe(self) -> str:
        if self.operator in LOGICAL:
            inner = ", ".join(o.describe() for o in self.operands)
            return f"{self.operator}({inner})"
        if self.operator in FILE_HASH:
            return f"{self.operator}({self.path!r}, {self.baseline!r})"
        if self.operator in FILE_UNARY or self.operator in STRING_UNARY:
            return f"{self.operator}({self.value if self.value is not None else self.baseline!r})"
        return f"{self.operator}({self.baseline!r}, value={self.value!r})"


def parse_condition(raw: Any, depth: int = 0) -> Condition:
    """Parse one expression mapping; raises ValueError with a user-facing message.

    ``depth`` counts the logical operators above ``raw``: "If you nest logical operators (and, or,
    not) beyond 4 levels deep, validation fails" -- the comparison at the bottom is not a level.
    """
    if not isinstance(raw, dict):
        raise ValueError("a condition must be a mapping with one operator")
    ops = [k for k in raw if k in OPERATORS]
    unknown = [k for k in raw if k not in OPERATORS and k not in ("value", "path")]
    if unknown:
        raise ValueError(f"unknown condition operator(s) {', '.join(map(str, unknown))}")
    if len(ops) != 1:
        raise ValueError(f"a condition needs exactly one operator, found {len(ops)}")
    op = ops[0]
    body = raw[op]
    if op in LOGICAL and depth + 1 > MAX_DEPTH:
        raise ValueError(f"logical operators (and, or, not) nest at most {MAX_DEPTH} levels deep")
    if op in ("and", "or"):
        if not isinstance(body, list) or not body:
            raise ValueError(f"'{op}' takes a non-empty list of conditions")
        return Condition(op, operands=tuple(parse_condition(c, depth + 1) for c in body))
    if op == "not":
        if isinstance(body, list):
            if len(body) != 1:
                raise ValueError("'not' takes exactly one condition")
            body = body[0]
        return Condition(op, operands=(parse_condition(body, depth + 1),))
    _scalar(op, body)
    if op in FILE_HASH:
        if "path" not in raw:
            raise ValueError(f"'{op}' needs 'path:' (the file whose hash is compared)")
        return Condition(op, baseline=body, path=_scalar("path", raw["path"]))
    if op in FILE_UNARY:
        return Condition(op, baseline=body)
    if op in STRING_UNARY:
        return Condition(op, baseline=body, value=raw.get("value"))
    if "value" not in raw:
        raise ValueError(f"'{op}' needs 'value:' (the value tested against {body!r})")
    _scalar("value", raw["value"])
    if op == "patternMatches" and "{{" not in scalar_text(body):
        try:
            compile_pattern(scalar_text(body))
        except ConditionError as exc:
            raise ValueError(str(exc)) from None
    return Condition(op, baseline=body, value=raw["value"])


def _scalar(name: str, value: Any) -> str:
    if isinstance(value, dict | list):
        raise ValueError(f"'{name}' must be a single value, not a {type(value).__name__}")
    return scalar_text(value)


class IfSpec(BaseModel):
    """A step's ``if:``: the expression plus optional ``then``/``else`` branches."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, arbitrary_types_allowed=True)

    condition: Condition
    then: Branch = "Execute"
    else_: Branch | None = Field(default=None, alias="else")

    @model_validator(mode="after")
    def _default_else(self) -> IfSpec:
        # "if X then Abort/Skip" reads as a guard: when X is false the step runs.
        if self.else_ is None:
            self.else_ = "Skip" if self.then == "Execute" else "Execute"
        return self

    @property
    def otherwise(self) -> Branch:
        return self.else_ or "Skip"

    @model_validator(mode="before")
    @classmethod
    def _split(cls, data: Any) -> Any:
        if isinstance(data, Condition):
            return {"condition": data}
        if not isinstance(data, dict):
            raise ValueError("'if' must be a mapping with a condition")
        if "condition" in data and isinstance(data["condition"], Condition):
            return data
        rest = {k: v for k, v in data.items() if k not in ("then", "else")}
        out = {k: v for k, v in data.items() if k in ("then", "else")}
        out["condition"] = parse_condition(rest)
        return out


@dataclass
class Evaluator:
    """Evaluates conditions with variable substitution and file checks inside ``root``."""

    root: Path
    resolve: Resolver

    def text(self, value: Any) -> str:
        return substitute_text(scalar_text(value), self.resolve)

    def __call__(self, cond: Condition) -> bool:
        op = cond.operator
        if op == "and":
            return all(self(c) for c in cond.operands)
        if op == "or":
            return any(self(c) for c in cond.operands)
        if op == "not":
            return not self(cond.operands[0])
        if op in STRING_UNARY:
            tested = self.text(cond.value if cond.value is not None else cond.baseline)
            if op == "stringIsEmpty":
                return tested == ""
            return tested != "" and tested.strip() == ""  # the page: stringIsWhitespace "" is false
        if op in STRING_BINARY:
            return _compare_strings(op, self.text(cond.baseline), self.text(cond.value))
        if op in NUMBER_BINARY:
            return _compare_numbers(op, self.text(cond.baseline), self.text(cond.value))
        if op in FILE_HASH:
            return self._hash_equals(FILE_HASH[op], self.text(cond.path), self.text(cond.baseline))
        return self._file_check(op, self.text(cond.baseline))

    def _file_check(self, op: str, target: str) -> bool:
        if op == "binaryExists":
            candidates = [target] if "/" in target else [f"{d}/{target}" for d in DEFAULT_PATH.split(":")]
            return any(_is_executable(resolve_in_root(self.root, c)) for c in candidates)
        path = resolve_in_root(self.root, target)
        return path.is_file() if op == "fileExists" else path.is_dir()

    def _hash_equals(self, algorithm: str, path_text: str, expected: str) -> bool:
        path = resolve_in_root(self.root, path_text)
        if not path.is_file():
            return False
        digest = hashlib.new(algorithm)
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest().lower() == expected.strip().lower()


def _is_executable(path: Path) -> bool:
    try:
        st = path.stat()
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and bool(st.st_mode & 0o111)


_STRING_TESTS: dict[str, Callable[[str, str], bool]] = {
    "stringEquals": lambda base, value: value == base,
    "stringLessThan": lambda base, value: value < base,
    "stringLessThanEquals": lambda base, value: value <= base,
    "stringGreaterThan": lambda base, value: value > base,
    "stringGreaterThanEquals": lambda base, value: value >= base,
}


# Escapes and groups, read left to right so that ``\\\\z`` (a backslash, then z) is not ``\\z``.
_TOKEN = re.compile(r"\\.|\(\?P?<?[=!]|\(\?[a-zA-Z]*\)?|.", re.DOTALL)


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """An RE2 pattern compiled case-insensitively (AWSTOE's string comparisons ignore case)."""
    out: list[str] = []
    for token in _TOKEN.findall(pattern):
        group = token.startswith("(?")
        if (group and token.rstrip(")").endswith(("=", "!"))) or re.fullmatch(r"\\[1-9]", token):
            raise ConditionError(
                f"patternMatches: {pattern!r} uses look-around or a back-reference, which RE2 (the "
                "regular expressions of AWSTOE) does not support"
            )
        if token in ("\\C", "\\p", "\\P") or (group and "U" in token):
            raise ConditionError(f"patternMatches: {pattern!r}: RE2's {token!r} has no Python equivalent")
        if group and token.endswith(")") and "i" in token:
            token = token.replace("i", "")  # case-insensitive throughout already
            token = "" if token == "(?)" else token
        out.append("\\Z" if token == "\\z" else token)
    try:
        return re.compile("".join(out), re.IGNORECASE)
    except re.error as exc:
        raise ConditionError(f"patternMatches: invalid regular expression {pattern!r}: {exc}") from None


def _compare_strings(op: str, baseline: str, value: str) -> bool:
    if op == "patternMatches":
        return compile_pattern(baseline).search(value) is not None
    return _STRING_TESTS[op](baseline.casefold(), value.casefold())


_NUMBER_TESTS: dict[str, Callable[[float, float], bool]] = {
    "numberEquals": lambda base, value: value == base,
    "numberLessThan": lambda base, value: value < base,
    "numberLessThanEquals": lambda base, value: value <= base,
    "numberGreaterThan": lambda base, value: value > base,
    "numberGreaterThanEquals": lambda base, value: value >= base,
}


def _number(text: str) -> float | None:
    try:
        number = float(text.strip())
    except ValueError:
        return None
    return None if number != number else number  # NaN never compares


def _compare_numbers(op: str, baseline: str, value: str) -> bool:
    base, tested = _number(baseline), _number(value)
    if base is None or tested is None:
        return False
    return _NUMBER_TESTS[op](base, tested)
