"""Generate the bad-input corpus: component documents and recipes that must each be refused with
exit code 2 and a location, quickly and in bounded memory.

Every case gets its own folder ``<dest>/<case>/`` and its input is named ``<case>.yaml`` (or the
FIFO, socket, device or symlink the case is about), so a message can be matched by file name.

    python tests/badinput/generate.py DEST    # writes the corpus, prints one line per case
"""

from __future__ import annotations

import os
import socket
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kiln.inputfile import MAX_INPUT_BYTES
from kiln.yamlbounds import MAX_NODES

HEAD = "name: t\nschemaVersion: 1.0\n"
BASH = "action: ExecuteBash\ninputs:\n  commands: [echo hi]\n"
VALID_DOC = (
    HEAD
    + "phases:\n  - name: build\n    steps:\n      - name: S\n"
    + "".join(f"        {line}\n" for line in BASH.splitlines())
)


@dataclass(frozen=True)
class Case:
    """One bad input: validated by ``command`` (``toe`` or ``recipe``) at ``path``."""

    name: str
    kind: str  # what the case is about (for coverage counts)
    command: str  # "toe": kiln toe validate -d PATH; "recipe": kiln validate PATH
    path: Path
    expect: str  # a fragment of the message (case-insensitive)
    where: str  # "column": file:line:column, "line": file:line, "file": the file is all there is
    located: str  # name of the file the location names


def step(body: str, phase: str = "build", name: str = "S") -> str:
    """A document with one step whose body (after ``name``) is ``body``."""
    lines = "".join(f"        {line}\n" for line in body.strip("\n").splitlines())
    return f"{HEAD}phases:\n  - name: {phase}\n    steps:\n      - name: {name}\n{lines}"


def bash(extra: str) -> str:
    return step(BASH + extra)


def recipe_text(component: str = "c.yaml", settings: str = "", extra: str = "") -> str:
    text = f"name: x\nversion: 1.0.0\nparent: debian:bookworm\ncomponents:\n  - {component}\n{extra}"
    return text + (f"settings:\n  {settings}\n" if settings else "")


def billion_laughs(levels: int = 9) -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def nested_flow(depth: int) -> str:
    return step("action: ExecuteBash\ninputs:\n  commands: " + "[" * depth + "x" + "]" * depth)


def nested_block(depth: int) -> str:
    return "".join("  " * i + f"k{i}:\n" for i in range(depth)) + "  " * depth + "x: 1\n"


def alias_depth(chain: int, depth: int) -> str:
    lines = [f"a0: &a0 {'[' * depth}x{']' * depth}"]
    for i in range(1, chain):
        lines.append(f"a{i}: &a{i} {'[' * depth}*a{i - 1}{']' * depth}")
    return "\n".join(lines) + "\n"


# (name, kind, text or bytes, expected fragment, where)
Text = str | bytes
# fmt: off
DOCUMENTS: list[tuple[str, str, Text, str, str]] = [
    # malformed YAML
    ("tab-indent", "yaml", "a:\n\t- b\n", "invalid yaml", "column"),
    ("unclosed-flow", "yaml", "a: [1, 2\nb: 3\n", "invalid yaml", "column"),
    ("unclosed-quote", "yaml", 'a: "abc\n', "invalid yaml", "column"),
    ("bad-indent", "yaml", "a:\n  b: 1\n c: 2\n", "invalid yaml", "column"),
    ("duplicate-key", "yaml", "name: a\nname: b\n", "duplicate key", "column"),
    ("undefined-alias", "yaml", "a: *nope\n", "undefined alias", "column"),
    ("seq-then-map", "yaml", "- a\nb: c\n", "invalid yaml", "column"),
    ("value-in-plain", "yaml", "key: value: other\n", "invalid yaml", "column"),
    ("reserved-indicator", "yaml", "a: @foo\n", "invalid yaml", "column"),
    ("two-documents", "yaml", "a: 1\n---\nb: 2\n", "invalid yaml", "column"),
    ("bad-int-tag", "yaml", "a: !!int abc\n", "cannot read value", "column"),
    ("bad-float-tag", "yaml", "a: !!float xyz\n", "cannot read value", "column"),
    ("bad-timestamp", "yaml", "a: !!timestamp 2024-13-45\n", "cannot read value", "column"),
    ("bare-bracket", "yaml", "]\n", "invalid yaml", "column"),
    ("block-scalar-indent", "yaml", "a: |\n    x\n  y\n", "invalid yaml", "column"),
    ("control-char", "yaml", "name: a\x07b\n", "control character", "column"),
    ("escape-control", "yaml", 'name: "\\x1b[31m"\nphases: 1\n', "schemaversion", "column"),
    ("empty-file", "yaml", "", "must be a yaml mapping", "column"),
    ("only-comments", "yaml", "# nothing\n# here\n", "must be a yaml mapping", "column"),
    ("top-level-list", "yaml", "- name: t\n", "must be a yaml mapping", "column"),
    ("top-level-scalar", "yaml", "hello\n", "must be a yaml mapping", "column"),
    ("long-key", "yaml", "k" * 2000 + ": v\n", "invalid yaml", "column"),
    ("duplicate-merge", "yaml", "a: &x {b: 1}\nc:\n  <<: *x\n  <<: *x\n", "duplicate", "column"),
    ("unterminated-anchor", "yaml", "a: &\n", "invalid yaml", "column"),
    # wrong types and structure
    ("schema-version-list", "type", "name: t\nschemaVersion: [1]\nphases: []\n", "schemaversion", "column"),
    ("schema-version-2", "type", HEAD.replace("1.0", "2.0") + "phases: [x]\n", "unsupported", "column"),
    ("phases-string", "type", HEAD + "phases: build\n", "phases", "column"),
    ("phases-mapping", "type", HEAD + "phases: {build: 1}\n", "phases", "column"),
    ("phases-empty", "type", HEAD + "phases: []\n", "at least 1", "column"),
    ("phase-name-list", "type", HEAD + "phases:\n  - name: [b]\n    steps: [x]\n", "string", "column"),
    ("steps-string", "type", HEAD + "phases:\n  - name: build\n    steps: x\n", "list", "column"),
    ("step-string", "type", HEAD + "phases:\n  - name: build\n    steps: [x]\n", "mapping", "column"),
    ("step-name-int", "type", step(BASH).replace("name: S", "name: 123"), "string", "column"),
    ("step-name-newline", "type", step(BASH, name='"a\\nb"'), "pattern", "column"),
    ("action-list", "type", step("action: [ExecuteBash]"), "string", "column"),
    ("commands-string", "type", step("action: ExecuteBash\ninputs:\n  commands: echo"), "list", "column"),
    ("commands-empty", "type", step("action: ExecuteBash\ninputs:\n  commands: []"), "at least 1", "column"),
    ("inputs-list", "type", step("action: ExecuteBash\ninputs: [a]"), "mapping", "column"),
    ("timeout-text", "type", bash("timeoutSeconds: abc"), "integer", "column"),
    ("timeout-bool", "type", bash("timeoutSeconds: true"), "whole number", "column"),
    ("on-failure-int", "type", bash("onFailure: 5"), "onfailure", "column"),
    ("on-failure-word", "type", bash("onFailure: Retry"), "abort", "column"),
    ("unknown-step-field", "type", bash("retries: 3"), "extra inputs", "column"),
    ("unknown-top-field", "type", VALID_DOC + "extra: 1\n", "extra inputs", "column"),
    ("phase-twice", "type", VALID_DOC + "  - name: build\n    steps: [{name: B, action: Reboot}]\n",
     "used twice", "column"),
    ("step-twice", "type", VALID_DOC + "      - {name: S, action: Reboot}\n", "used twice", "column"),
    ("no-standard-phase", "type", step(BASH, phase="setup"), "at least one of the phases", "column"),
    ("create-file-mode", "type", step("action: CreateFile\ninputs:\n  - {path: /x, permissions: '0999'}"),
     "octal", "column"),
    ("copy-file-no-dest", "type", step("action: CopyFile\ninputs:\n  - {source: /a}"), "required", "column"),
    ("web-download-no-url", "type", step("action: WebDownload\ninputs:\n  - {destination: /a}"),
     "required", "column"),
    ("execute-binary-args", "type", step("action: ExecuteBinary\ninputs:\n  path: /bin/true\n  arguments: x"),
     "list", "column"),
    ("s3-document", "type", step("action: ExecuteDocument\ninputs:\n  document: s3://b/d.yaml"),
     "need aws", "column"),
    # unknown actions
    ("action-typo", "action", step("action: ExecuteBashh"), "did you mean executebash", "column"),
    ("action-empty", "action", step("action: ''"), "unknown action", "column"),
    ("action-windows", "action", step("action: ExecutePowerShell\ninputs:\n  commands: [x]"), "windows",
     "column"),
    ("action-path", "action", step("action: ../../etc/passwd"), "unknown action", "column"),
    ("action-huge", "action", step("action: " + "A" * 100_000), "unknown action", "column"),
    # huge strings
    ("huge-file", "huge", "a: '" + "x" * MAX_INPUT_BYTES + "'\n", "larger than", "file"),
    ("huge-step-name", "huge", step(BASH, name="N" * 5000), "pattern", "column"),
    ("huge-block-scalar", "huge", "a: |\n" + "  x\n" * (MAX_INPUT_BYTES // 4 + 10), "larger than", "file"),
    ("huge-just-below", "huge", VALID_DOC + "description: |\n" + "  x\n" * (MAX_INPUT_BYTES // 4 - 100) + "extra: 1\n",
     "extra inputs", "column"),
    ("huge-param-name", "huge", HEAD + f"parameters:\n  - {'P' * 300}:\n      type: string\n" + "phases: [x]\n",
     "3-128 characters", "column"),
    ("many-values", "huge", "a: [" + ",".join(["1"] * (MAX_NODES + 10)) + "]\n", "values in one file", "column"),
    ("many-keys", "huge", "".join(f"k{i}: {i}\n" for i in range(MAX_NODES // 2 + 10)), "values in one file",
     "column"),
    # deep nesting
    ("deep-flow-100", "depth", nested_flow(100), "nested more than 64", "column"),
    ("deep-flow-10000", "depth", nested_flow(10_000), "nested more than 64", "column"),
    ("deep-block-300", "depth", nested_block(300), "nested more than 64", "column"),
    ("deep-mixed", "depth", "a: " + "[{b: " * 40 + "1" + "}]" * 40 + "\n", "nested more than 64", "column"),
    ("deep-aliases", "depth", alias_depth(6, 20), "nested more than 64", "column"),
    # bad parameters and variables
    ("param-short-name", "parameters", HEAD + "parameters:\n  - a:\n      type: string\n" + "phases: [x]\n",
     "3-128", "column"),
    ("param-type-int", "parameters", HEAD + "parameters:\n  - Abc:\n      type: integer\n" + "phases: [x]\n",
     "string", "column"),
    ("param-default-list", "parameters",
     HEAD + "parameters:\n  - Abc:\n      type: string\n      default: [1, 2]\n" + "phases: [x]\n",
     "default", "column"),
    ("param-two-names", "parameters", HEAD + "parameters:\n  - {Abc: {}, Def: {}}\n" + "phases: [x]\n",
     "exactly one name", "column"),
    ("param-twice", "parameters",
     HEAD + "parameters:\n  - Abc: {type: string}\n  - Abc: {type: string}\n" + VALID_DOC[len(HEAD) :],
     "already declared", "column"),
    ("constant-no-value", "parameters", HEAD + "constants:\n  - Abc:\n      type: string\n" + "phases: [x]\n",
     "required", "column"),
    ("chain-missing-step", "parameters",
     step("action: ExecuteBash\ninputs:\n  commands: ['echo {{ build.Nope.outputs.stdout }}']"),
     "has no step", "column"),
    ("chain-later-step", "parameters",
     step("action: ExecuteBash\ninputs:\n  commands: ['echo {{ build.S.outputs.stdout }}']"),
     "runs later", "column"),
    ("ssm-reference", "parameters",
     step("action: ExecuteBash\ninputs:\n  commands: ['echo {{ aws:ssm:/a/b }}']"), "systems manager", "column"),
    # bad loops
    ("loop-step-zero", "loops", bash("loop:\n  for: {start: 1, end: 5, updateBy: 0}"), "loop", "column"),
    ("loop-billion", "loops", bash("loop:\n  for: {start: 1, end: 1000000000, updateBy: 1}"), "loop",
     "column"),
    ("loop-wrong-way", "loops", bash("loop:\n  for: {start: 1, end: 10, updateBy: -1}"), "loop", "column"),
    ("loop-foreach-map", "loops", bash("loop:\n  forEach: {a: 1}"), "loop", "column"),
    ("loop-bad-delimiter", "loops", bash("loop:\n  forEach: {list: 'a|b', delimiter: '|'}"), "delimiter",
     "column"),
    ("loop-bad-name", "loops", bash("loop:\n  name: 'a b'\n  forEach: [1, 2]"), "loop", "column"),
    ("loop-both", "loops", bash("loop:\n  for: {start: 1, end: 2, updateBy: 1}\n  forEach: [1]"), "loop",
     "column"),
    ("loop-text-bound", "loops", bash("loop:\n  for: {start: abc, end: 2, updateBy: 1}"), "loop", "column"),
    ("loop-chain-bound", "loops",
     bash("loop:\n  for: {start: 1, end: '{{ build.S.outputs.stdout }}', updateBy: 1}"), "chaining", "column"),
    ("loop-name-twice", "loops",
     VALID_DOC.replace("      - name: S\n", "      - name: S\n        loop: {name: L, forEach: [1]}\n")
     + "      - {name: T, action: Reboot, loop: {name: L, forEach: [1]}}\n", "loop name used twice", "column"),
    # bad conditions
    ("if-unknown-op", "conditions", bash("if:\n  sameAs: {a: b}"), "if", "column"),
    ("if-string", "conditions", bash("if: yes please"), "if", "column"),
    ("if-and-empty", "conditions", bash("if:\n  and: []"), "if", "column"),
    ("if-too-deep", "conditions", bash("if: " + "{not: " * 8 + "{stringEquals: a, value: a}" + "}" * 8),
     "nest at most", "column"),
    ("if-two-ops", "conditions", bash("if:\n  stringEquals: a\n  numberEquals: 1\n  value: a"), "if", "column"),
    ("if-equals-list", "conditions", bash("if:\n  stringEquals: [a]\n  value: a"), "if", "column"),
    # invalid UTF-8 and binary
    ("utf8-ff", "encoding", b"name: t\nschemaVersion: 1.0\nph\xffses: []\n", "not valid utf-8", "column"),
    ("utf8-truncated", "encoding", b"name: caf\xc3\n", "not valid utf-8", "column"),
    ("utf8-latin1", "encoding", "name: t\ndescription: café\n".encode("latin-1"), "not valid utf-8", "column"),
    ("utf8-overlong", "encoding", b"name: \xc0\x80\n", "not valid utf-8", "column"),
    ("utf8-surrogate", "encoding", b"name: \xed\xa0\x80\n", "not valid utf-8", "column"),
    ("utf16-bom", "encoding", "name: t\n".encode("utf-16"), "nul byte", "column"),
    ("binary-elf", "encoding", b"\x7fELF\x02\x01\x01" + bytes(9) + b"\x02\x00>\x00", "nul byte", "column"),
    ("binary-gzip", "encoding", b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03", "nul byte", "column"),
    # NULs
    ("nul-raw", "nul", b"name: t\nschemaVersion: 1.0\nphases: [\x00]\n", "nul byte", "column"),
    ("nul-escaped-command", "nul", step('action: ExecuteBash\ninputs:\n  commands: ["rm -rf /tmp/a\\0b"]'),
     "nul character", "column"),
    ("nul-escaped-key", "nul", HEAD + '"pha\\0ses": []\n', "nul character", "column"),
    ("nul-escaped-path", "nul", step('action: CreateFile\ninputs:\n  - {path: "/etc/x\\0", content: a}'),
     "nul character", "column"),
    ("nul-only", "nul", '"\\0"\n', "nul character", "column"),
    # alias bombs
    ("bomb-billion-laughs", "aliases", billion_laughs(9), "alias bomb", "column"),
    ("bomb-in-document", "aliases",
     VALID_DOC + "extra:\n" + "".join(f"  {line}\n" for line in billion_laughs(8).splitlines()),
     "alias bomb", "column"),
    ("bomb-wide-text", "aliases", "a: &a '" + "x" * 100_000 + "'\nb: [" + ",".join(["*a"] * 60) + "]\n",
     "characters of text", "column"),
    ("bomb-merge-keys", "aliases",
     "b0: &b0 {k: [1, 2, 3, 4, 5, 6, 7, 8, 9]}\n"
     + "".join(f"b{i}: &b{i} {{<<: *b{i - 1}, x: [{', '.join([f'*b{i - 1}'] * 9)}]}}\n" for i in range(1, 9)),
     "alias bomb", "column"),
    ("bomb-recursive-seq", "aliases", "a: &x [1, *x]\n", "phases", "column"),
    ("bomb-recursive-map", "aliases", "a: &x {b: *x}\n", "phases", "column"),
    # absurd numbers
    ("timeout-huge", "numbers", bash("timeoutSeconds: 99999999999999999999"), "timeoutseconds", "column"),
    ("timeout-negative", "numbers", bash("timeoutSeconds: -5"), "timeoutseconds", "column"),
    ("timeout-inf", "numbers", bash("timeoutSeconds: .inf"), "timeoutseconds", "column"),
    ("timeout-nan", "numbers", bash("timeoutSeconds: .nan"), "timeoutseconds", "column"),
    ("timeout-float", "numbers", bash("timeoutSeconds: 1.5"), "timeoutseconds", "column"),
    ("attempts-zero", "numbers", bash("maxAttempts: 0"), "maxattempts", "column"),
    ("attempts-huge", "numbers", bash("maxAttempts: 1000000000000"), "maxattempts", "column"),
    ("int-5000-digits", "numbers", bash("timeoutSeconds: " + "9" * 5000), "cannot read value", "column"),
    ("loop-end-huge", "numbers", bash("loop:\n  for: {start: 0, end: 1000000000000000000000, updateBy: 1}"),
     "loop", "column"),
]

# Recipes: (name, kind, text, expected fragment, where); "c.yaml" next to them is a valid document.
RECIPES: list[tuple[str, str, Text, str, str]] = [
    ("epoch-negative", "recipe-numbers", recipe_text(settings="source_date_epoch: -5"), "1980", "column"),
    ("epoch-zero", "recipe-numbers", recipe_text(settings="source_date_epoch: 0"), "1980", "column"),
    ("epoch-huge", "recipe-numbers", recipe_text(settings="source_date_epoch: 99999999999999"), "2107",
     "column"),
    ("epoch-before-1980", "recipe-numbers", recipe_text(settings="source_date_epoch: 315532799"), "1980",
     "column"),
    ("epoch-after-2107", "recipe-numbers", recipe_text(settings="source_date_epoch: 4354819200"), "2107",
     "column"),
    ("epoch-text", "recipe-numbers", recipe_text(settings="source_date_epoch: soon"), "integer", "column"),
    ("epoch-float", "recipe-numbers", recipe_text(settings="source_date_epoch: 1500000000.5"), "integer", "column"),
    ("epoch-bool", "recipe-numbers", recipe_text(settings="source_date_epoch: true"), "1980", "column"),
    ("epoch-googol", "recipe-numbers", recipe_text(settings="source_date_epoch: " + "1" + "0" * 100), "2107",
     "column"),
    ("compression-zero", "recipe-numbers", recipe_text(settings="compression_level: 0"), "greater", "column"),
    ("compression-ten", "recipe-numbers", recipe_text(settings="compression_level: 10"), "less", "column"),
    ("test-timeout-zero", "recipe-numbers", recipe_text(settings="test_timeout: 0"), "greater", "column"),
    ("test-timeout-huge", "recipe-numbers", recipe_text(settings="test_timeout: 1000000000"), "less", "column"),
    ("disk-size-absurd", "recipe-numbers", recipe_text(extra="outputs:\n  - {type: raw, size: 99999999T}\n"),
     "at most", "column"),
    ("disk-size-vhd", "recipe-numbers", recipe_text(extra="outputs:\n  - {type: vhd, size: 3T}\n"), "at most",
     "column"),
    ("disk-size-tiny", "recipe-numbers", recipe_text(extra="outputs:\n  - {type: qcow2, size: 1M}\n"),
     "at least", "column"),
    ("disk-size-negative", "recipe-numbers", recipe_text(extra="outputs:\n  - {type: raw, size: -1G}\n"),
     "size", "column"),
    ("port-huge", "recipe-numbers", recipe_text(extra="config:\n  exposed_ports: ['99999']\n"), "1-65535",
     "column"),
    ("port-zero", "recipe-numbers", recipe_text(extra="config:\n  exposed_ports: ['0/tcp']\n"), "1-65535",
     "column"),
    ("port-protocol", "recipe-numbers", recipe_text(extra="config:\n  exposed_ports: ['80/xyz']\n"),
     "1-65535", "column"),
    ("recipe-bad-name", "recipe", recipe_text().replace("name: x", "name: 'Bad Name!'"), "lowercase", "column"),
    ("recipe-bad-version", "recipe", recipe_text().replace("1.0.0", "one"), "semantic version", "column"),
    ("recipe-bad-parent", "recipe", recipe_text().replace("debian:bookworm", "windows:11"), "unsupported",
     "column"),
    ("recipe-no-components", "recipe", "name: x\nversion: 1.0.0\nparent: debian:bookworm\ncomponents: []\n",
     "at least 1", "column"),
    ("recipe-missing-doc", "recipe", recipe_text("missing.yaml"), "not found", "column"),
    ("recipe-unknown-builtin", "recipe", recipe_text("no-such-builtin"), "no built-in component", "column"),
    ("recipe-unknown-param", "recipe",
     recipe_text("{path: c.yaml, parameters: {Nope: x}}"), "unknown parameter", "column"),
    ("recipe-param-list", "recipe", recipe_text("{path: c.yaml, parameters: [1, 2]}"), "parameter", "column"),
    ("recipe-two-sources", "recipe", recipe_text("{path: c.yaml, name: update-os}"), "exactly one", "column"),
    ("recipe-workdir", "recipe", recipe_text(settings="working_directory: tmp"), "absolute", "column"),
    ("recipe-unknown-field", "recipe", recipe_text(extra="colour: blue\n"), "unknown field", "column"),
    ("recipe-output-type", "recipe", recipe_text(extra="outputs: [iso]\n"), "unknown type", "column"),
    ("recipe-bad-package", "recipe",
     recipe_text().replace("parent: debian:bookworm", "parent: {image: 'debian:bookworm', packages: ['a b']}"),
     "invalid package", "column"),
    ("recipe-test-instance", "recipe", recipe_text(settings="test_instances: [vm]"), "disk output", "column"),
    ("recipe-bomb", "recipe-yaml", billion_laughs(9), "alias bomb", "column"),
    ("recipe-deep", "recipe-yaml", "name: " + "[" * 500 + "]" * 500 + "\n", "nested more than 64", "column"),
    ("recipe-nul", "recipe-yaml", recipe_text().encode() + b"\x00", "nul byte", "column"),
    ("recipe-latin1", "recipe-yaml", "name: x\ndescription: 'ñ'\n".encode("latin-1"), "not valid utf-8",
     "column"),
    ("recipe-nul-env", "recipe-yaml", recipe_text(settings='environment: {A: "x\\0"}'), "nul character",
     "column"),
    ("recipe-huge", "recipe-yaml", "description: '" + "x" * MAX_INPUT_BYTES + "'\n", "larger than", "file"),
    ("recipe-malformed", "recipe-yaml", "name: x\n  version: 1\n", "invalid yaml", "column"),
    ("recipe-list", "recipe-yaml", "- a\n- b\n", "must be a yaml mapping", "column"),
]

# Documents refused for what they call with ExecuteDocument: (name, {file: text}, expected, located file).
def _call(target: str, extra: str = "") -> str:
    return step(f"action: ExecuteDocument\ninputs:\n  document: {target}\n{extra}", name="Call")


CALL_TREES: list[tuple[str, dict[str, str], str, str]] = [
    ("xdoc-missing", {"main": _call("missing.yaml")}, "not found", "main"),
    ("xdoc-parent-dir", {"main": _call("../outside.yaml")}, "outside the component", "main"),
    ("xdoc-etc-shadow", {"main": _call("../../../../../../../../etc/shadow")}, "outside the component", "main"),
    ("xdoc-dotdot-inside", {"main": _call("sub/../../x.yaml")}, "outside the component", "main"),
    ("xdoc-self-cycle", {"main": _call("main.yaml")}, "cycle", "main"),
    ("xdoc-cycle-2", {"main": _call("b.yaml"), "b": _call("main.yaml")}, "cycle", "b"),
    ("xdoc-cycle-3", {"main": _call("b.yaml"), "b": _call("c.yaml"), "c": _call("b.yaml")}, "cycle", "c"),
    ("xdoc-too-deep", {"main": _call("d1.yaml"), "d1": _call("d2.yaml"), "d2": _call("d3.yaml"),
                       "d3": _call("d4.yaml"), "d4": VALID_DOC}, "nests more than 3", "d3"),
    ("xdoc-invalid-callee", {"main": _call("bad.yaml"), "bad": step("action: Nope")}, "unknown action", "bad"),
    ("xdoc-callee-bomb", {"main": _call("bomb.yaml"), "bomb": billion_laughs(9)}, "alias bomb", "bomb"),
    ("xdoc-callee-nul", {"main": _call("n.yaml"), "n": '"\\0"\n'}, "nul character", "n"),
    ("xdoc-required-param", {"main": _call("p.yaml"),
                             "p": HEAD + "parameters:\n  - Who: {type: string}\n" + VALID_DOC[len(HEAD):]},
     "has no default", "main"),
]
# fmt: on


def _write(path: Path, content: Text) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")


def _special(dest: Path) -> list[Case]:
    """FIFOs, devices, directories, sockets and symlinks given as a document or a recipe."""
    cases: list[Case] = []

    def make(name: str, create: Callable[[Path], object], expect: str) -> None:
        for command in ("toe", "recipe"):
            folder = dest / f"{name}-{command}"
            folder.mkdir(parents=True)
            path = folder / f"{name}-{command}.yaml"
            create(path)
            cases.append(Case(f"{name}-{command}", "special", command, path, expect, "file", path.name))

    def device(path: Path, mode: int, rdev: int, fallback: str) -> None:
        try:
            os.mknod(path, mode | 0o600, rdev)
        except PermissionError:  # not root, or no CAP_MKNOD: a symlink to a real device instead
            path.symlink_to(fallback)

    def unix_socket(path: Path) -> None:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind(str(path))

    def loop(path: Path) -> None:
        other = path.with_name("other.yaml")
        path.symlink_to(other.name)
        other.symlink_to(path.name)

    make("fifo", os.mkfifo, "fifo")
    make("directory", lambda p: p.mkdir(), "directory")
    make("char-device", lambda p: device(p, stat.S_IFCHR, os.makedev(1, 5), "/dev/zero"), "character device")
    make("block-device", lambda p: device(p, stat.S_IFBLK, os.makedev(7, 0), "/dev/loop0"), "device")
    make("socket", unix_socket, "socket")
    make("link-to-fifo", lambda p: (os.mkfifo(p.with_suffix(".fifo")), p.symlink_to(p.with_suffix(".fifo"))),
         "fifo")  # fmt: skip
    make("link-to-dev-zero", lambda p: p.symlink_to("/dev/zero"), "character device")
    make("dangling-link", lambda p: p.symlink_to("nowhere.yaml"), "not found")
    make("link-loop", loop, "symbolic links")
    make("missing", lambda p: None, "not found")
    return cases


def _call_cases(dest: Path) -> list[Case]:
    cases: list[Case] = []
    for name, files, expect, located in CALL_TREES:
        folder = dest / name / "component"
        for stem, text in files.items():
            _write(folder / f"{stem}.yaml", text)
        _write(dest / name / "outside.yaml", VALID_DOC)
        main = folder / "main.yaml"
        cases.append(Case(name, "execute-document", "toe", main, expect, "column", f"{located}.yaml"))
        recipe = dest / name / f"{name}.yaml"
        _write(recipe, recipe_text("component/main.yaml"))
        cases.append(Case(f"{name}-recipe", "execute-document", "recipe", recipe, expect, "column",
                          f"{located}.yaml"))  # fmt: skip
    # Symlinks out of the component's folder, to a host file and to a folder.
    for name, link, target, called in (
        ("xdoc-symlink-file", "link.yaml", "/etc/passwd", "link.yaml"),
        ("xdoc-symlink-dir", "linkdir", "/etc", "linkdir/passwd"),
        ("xdoc-symlink-sibling", "link.yaml", "../outside.yaml", "link.yaml"),
    ):
        folder = dest / name / "component"
        _write(folder / "main.yaml", _call(called))
        _write(dest / name / "outside.yaml", VALID_DOC)
        (folder / link).symlink_to(target)
        cases.append(Case(name, "execute-document", "toe", folder / "main.yaml", "outside the component",
                          "column", "main.yaml"))  # fmt: skip
    # Callees that are not regular files.
    for name, create in (("xdoc-fifo", os.mkfifo), ("xdoc-directory", Path.mkdir)):
        folder = dest / name / "component"
        _write(folder / "main.yaml", _call("special.yaml"))
        create(folder / "special.yaml")
        cases.append(Case(name, "execute-document", "toe", folder / "main.yaml", "not a regular file", "file",
                          "special.yaml"))  # fmt: skip
    return cases


def generate(dest: Path) -> list[Case]:
    """Write every case under ``dest`` (which must not exist yet, or be empty) and list them."""
    dest.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []
    for name, kind, content, expect, where in DOCUMENTS:
        path = dest / name / f"{name}.yaml"
        _write(path, content)
        cases.append(Case(name, kind, "toe", path, expect, where, path.name))
    # The same bad documents named by a recipe: recipe validation must report them the same way.
    for name, kind, content, expect, where in DOCUMENTS[::2]:
        path = dest / f"r-{name}" / f"{name}.yaml"
        _write(path, content)
        recipe = path.with_name(f"r-{name}.yaml")
        _write(recipe, recipe_text(path.name))
        cases.append(Case(f"r-{name}", kind, "recipe", recipe, expect, where, path.name))
    for name, kind, content, expect, where in RECIPES:
        path = dest / name / f"{name}.yaml"
        _write(path, content)
        _write(path.with_name("c.yaml"), VALID_DOC)
        cases.append(Case(name, kind, "recipe", path, expect, where, path.name))
    return cases + _call_cases(dest) + _special(dest)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: generate.py DEST")
    corpus = generate(Path(sys.argv[1]))
    for case in corpus:
        print(f"{case.command:6} {case.kind:16} {case.path}")
    print(f"{len(corpus)} cases", file=sys.stderr)
