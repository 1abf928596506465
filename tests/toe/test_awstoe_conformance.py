"""AWSTOE's documented rules, one test per rule (issue 17), named after the rule and quoting it.

Sources: the Image Builder user guide pages toe-looping-constructs, toe-comparison-operators,
toe-conditional-constructs, toe-user-defined-variables, toe-action-modules, toe-run-config-input and
the ``awstoe run`` command reference. Where a rule is about validity, :func:`verdicts` checks that
``kiln toe validate``, ``kiln toe run`` (its validation before anything runs) and ``kiln build`` (the
recipe validation) agree. Runs use a root without processes (file actions, conditions) so each test
takes milliseconds; the last section records the decisions where the documentation is ambiguous.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from kiln.errors import ValidationFailed
from kiln.recipes.loader import load_recipe
from kiln.toe.conditions import Evaluator, parse_condition
from kiln.toe.config import DocumentRun, RunSettings
from kiln.toe.document import Document
from kiln.toe.nesting import load_checked
from kiln.toe.results import FAILED, IGNORED_FAILURE, SUCCESS_WITH_IGNORED_FAILURE
from kiln.toe.session import load_all
from kiln.toe.variables import variables_resolver
from tests.toe.conftest import run
from tests.toe.test_cli import kiln

HEAD = "name: conformance\nschemaVersion: 1.0\n"


def write(tmp_path: Path, text: str, name: str = "component.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def verdicts(tmp_path: Path, text: str, parameters: dict[str, str] | None = None) -> dict[str, list[str]]:
    """The issues each entry point reports for one component (and parameter values): ``validate``
    (``kiln toe validate``; it takes no parameters), ``run`` (``kiln toe run`` before any step) and
    ``build`` (``kiln build``/``kiln validate`` of a recipe naming the component)."""
    path = write(tmp_path, text)
    found: dict[str, list[str]] = {}
    try:
        load_checked(path)
        found["validate"] = []
    except ValidationFailed as exc:
        found["validate"] = [str(i) for i in exc.issues]
    try:
        load_all(RunSettings([DocumentRun(path, dict(parameters or {}))], ["build"], "x", tmp_path))
        found["run"] = []
    except ValidationFailed as exc:
        found["run"] = [str(i) for i in exc.issues]
    recipe = tmp_path / "recipe.yaml"
    given = "".join(f"      {k}: {json.dumps(v)}\n" for k, v in (parameters or {}).items())
    recipe.write_text(
        "name: r\nversion: 1.0.0\nparent: debian:bookworm\ncomponents:\n  - path: component.yaml\n"
        + (f"    parameters:\n{given}" if given else "")
    )
    try:
        load_recipe(recipe)
        found["build"] = []
    except ValidationFailed as exc:
        found["build"] = [str(i) for i in exc.issues]
    return found


def assert_refused_everywhere(found: dict[str, list[str]], message: str, where: str | None = None) -> None:
    for entry, issues in found.items():
        assert any(message in i for i in issues), f"{entry} did not refuse: {issues}"
        if where is not None:
            assert any(where in i and message in i for i in issues), f"{entry}: no {where} in {issues}"


def steps(result: object) -> dict[str, object]:
    return {s.name: s for s in result.steps()}  # type: ignore[attr-defined]


def load(tmp_path: Path, text: str) -> Document:
    return load_checked(write(tmp_path, text))


# --- 1-5: runtime semantics ---------------------------------------------------------------------------


@pytest.mark.parametrize("on_failure", ["Continue", "Ignore", "Abort"])
def test_loop_exits_at_the_failing_iteration_whatever_on_failure(
    tmp_path: Path, tiny_root: Path, on_failure: str
) -> None:
    """toe-looping-constructs, step fields: "If onFailure is set to Continue, AWSTOE exits the loop and
    retries the step according to the retry policy" (the same words for Abort and Ignore); and
    "failureMessage - Includes the iteration indices that failed"."""
    (tiny_root / "blocked").mkdir()  # CreateFile on a folder fails
    doc = load(
        tmp_path,
        HEAD
        + f"""\
phases:
  - name: build
    steps:
      - name: Files
        action: CreateFile
        onFailure: {on_failure}
        loop:
          forEach: [/out/a, /blocked, /out/c]
        inputs:
          - path: '{{{{ loop.value }}}}'
      - name: After
        action: CreateFile
        inputs:
          - path: /out/after
""",
    )
    result = run(doc, tiny_root, phases=("build",))
    assert (tiny_root / "out/a").exists()
    assert not (tiny_root / "out/c").exists()  # the loop ended at iteration 1
    files = steps(result)["Files"]
    assert "loop iteration 1 ('/blocked') failed" in (files.failure_message or "")  # type: ignore[attr-defined]
    assert (tiny_root / "out/after").exists() is (on_failure != "Abort")


def test_loop_outputs_of_successful_iterations_are_kept(tmp_path: Path, tiny_root: Path) -> None:
    """toe-looping-constructs, step and iteration outputs: "AWSTOE consolidates all successful
    iteration outputs in detailedOutput.json ... AWSTOE will not consolidate the outputs of
    unsuccessful iterations." They are chained too."""
    for name, content in (("one", "first"), ("two", "second")):
        (tiny_root / "etc" / name).write_text(content)
    doc = load(
        tmp_path,
        HEAD
        + """\
phases:
  - name: build
    steps:
      - name: Read
        action: ReadFile
        onFailure: Ignore
        loop:
          forEach: [/etc/one, /etc/two, /etc/missing]
        inputs:
          - path: '{{ loop.value }}'
      - name: Use
        action: CreateFile
        inputs:
          - path: /out/chained
            content: '{{ build.Read.outputs.content }}'
""",
    )
    result = run(doc, tiny_root, phases=("build",))
    read = steps(result)["Read"]
    assert read.status == IGNORED_FAILURE  # type: ignore[attr-defined]
    assert read.outputs == {"content": "first\nsecond"}  # type: ignore[attr-defined]
    assert json.loads(read.detailed()["outputs"]) == [{"content": "first\nsecond"}]  # type: ignore[attr-defined]
    assert (tiny_root / "out/chained").read_text() == "first\nsecond"
    assert result.status == SUCCESS_WITH_IGNORED_FAILURE


def holds(raw: dict[str, object], root: Path = Path("/nonexistent-root")) -> bool:
    return Evaluator(root, variables_resolver({}))(parse_condition(raw))


def test_string_is_whitespace_is_false_for_the_empty_string(tmp_path: Path, tiny_root: Path) -> None:
    """toe-comparison-operators, stringIsWhitespace: the page's own example says
    ``stringIsWhitespace: ""`` evaluates to false (only a string of spaces is whitespace)."""
    assert holds({"stringIsWhitespace": ""}) is False
    assert holds({"stringIsWhitespace": "   "}) is True
    doc = load(
        tmp_path,
        HEAD
        + """\
phases:
  - name: build
    steps:
      - name: Check
        action: Assert
        onFailure: Continue
        inputs:
          stringIsWhitespace: ''
""",
    )
    assert run(doc, tiny_root, phases=("build",)).status == FAILED


def test_pattern_matches_is_not_case_sensitive(tmp_path: Path) -> None:
    """toe-comparison-operators: "String comparisons are not case sensitive", with the example
    ``patternMatches: '^[a-z]+$'`` and value ``ThisIsValue`` → true. Patterns are RE2: ``\\z`` works;
    what RE2 refuses (look-around, back-references) is an error, when validating for a literal pattern."""
    assert holds({"patternMatches": "^[a-z]+$", "value": "ThisIsValue"}) is True
    assert holds({"patternMatches": "^this\\z", "value": "THIS"}) is True
    assert holds({"patternMatches": "^[0-9]+$", "value": "12a"}) is False
    text = (
        HEAD
        + """\
phases:
  - name: build
    steps:
      - name: Check
        action: Assert
        inputs:
          patternMatches: '^(?=a)'
          value: abc
"""
    )
    found = verdicts(tmp_path, text)
    assert_refused_everywhere(found, "look-around or a back-reference", "component.yaml:8:9")


def test_logical_operators_nest_four_levels_below_them_a_comparison(tmp_path: Path) -> None:
    """toe-conditional-constructs: "If you nest logical operators (and, or, not) beyond 4 levels deep,
    validation fails". Four logical levels (and > or > not > and) with a comparison at the bottom are
    valid; a fifth logical level is not."""
    four = {"and": [{"or": [{"not": {"and": [{"stringEquals": "a", "value": "b"}]}}]}]}
    assert holds(four) is True
    condition = "and: [{or: [{not: {and: [{stringEquals: a, value: b}]}}]}]"
    text = HEAD + f"phases:\n  - name: build\n    steps:\n      - name: C\n        action: Assert\n" \
                  f"        inputs: {{{condition}}}\n"  # fmt: skip
    assert verdicts(tmp_path, text) == {"validate": [], "run": [], "build": []}
    five = text.replace("{stringEquals: a, value: b}", "{not: {stringEquals: a, value: b}}")
    assert_refused_everywhere(verdicts(tmp_path, five), "nest at most 4 levels", "component.yaml:8")


# --- 6-7: command line and configuration --------------------------------------------------------------

SIMPLE = (
    HEAD
    + """\
parameters:
  - Name:
      type: string
      default: plain
phases:
  - name: build
    steps:
      - name: Write
        action: CreateFile
        inputs:
          - path: '/out/{{ Name }}'
  - name: validate
    steps:
      - name: Check
        action: Assert
        inputs:
          fileExists: '/out/{{ Name }}'
"""
)


def test_run_takes_config_or_documents_never_both(tmp_path: Path, tiny_root: Path) -> None:
    """awstoe run: "You must specify exactly one of the following parameters, never both: --config
    --documents"; toe-run-config-input: "There are two exceptions to this rule - documents and
    parameters ... If you use the input configuration file, you must not specify these parameters
    directly to the run command. Doing so will generate an error." Other settings on the command line
    override the file's (rule 1). Kiln's old override stays behind --override-config."""
    write(tmp_path, SIMPLE)
    config = tmp_path / "run.json"
    config.write_text(json.dumps({"documents": [{"path": "component.yaml"}], "phases": "build,validate"}))
    base = (
        "toe",
        "run",
        "--target",
        f"rootfs:{tiny_root}",
        "--config",
        str(config),
        "-q",
        "-l",
        str(tmp_path),
    )
    both = kiln(*base, "--documents", str(tmp_path / "component.yaml"))
    assert both.returncode == 1 and "--config cannot be combined with --documents" in both.stderr
    params = kiln(*base, "--parameters", "Name=x")
    assert params.returncode == 1 and "--config cannot be combined with --parameters" in params.stderr
    assert not (tiny_root / "out").exists()  # nothing ran
    phases = kiln(*base, "--phases", "build")  # rule 1: the command line wins
    assert phases.returncode == 0, phases.stderr
    assert [json.loads(phases.stdout)["executedStepCount"]] == [1]
    forced = kiln(*base, "--parameters", "Name=forced", "--override-config")
    assert forced.returncode == 0, forced.stderr
    assert (tiny_root / "out/forced").exists()


def test_empty_parameter_value_is_not_valid(tmp_path: Path, tiny_root: Path) -> None:
    """toe-user-defined-variables: "The parameter key-value pair specified in this --parameter option
    is not valid: --parameters ntp-server=" ("The parameter name and value are both required")."""
    path = write(tmp_path, SIMPLE)
    done = kiln("toe", "run", "--target", f"rootfs:{tiny_root}", "-d", str(path), "--parameters", "Name=",
                "-l", str(tmp_path))  # fmt: skip
    assert done.returncode == 2 and "Name: an empty value is not valid" in done.stderr
    config = tmp_path / "run.json"
    config.write_text(json.dumps({"documents": [{"path": "component.yaml"}],
                                  "parameters": [{"name": "Name", "value": ""}]}))  # fmt: skip
    from_config = kiln(
        "toe", "run", "--target", f"rootfs:{tiny_root}", "-c", str(config), "-l", str(tmp_path)
    )
    assert from_config.returncode == 2 and "must not be empty" in from_config.stderr
    found = verdicts(tmp_path, SIMPLE, {"Name": ""})
    del found["validate"]  # kiln toe validate takes no parameter values
    assert_refused_everywhere(found, "parameter 'Name': an empty value is not valid")
    assert not (tiny_root / "out").exists()


# --- 8-10: validation ---------------------------------------------------------------------------------


def test_execute_document_max_attempts_and_timeout_are_fixed(tmp_path: Path) -> None:
    """toe-action-modules, ExecuteDocument: "This action module runs one time, with no retries allowed,
    and no option to set timeout limits. ExecuteDocument sets the following default values, and
    returns an error if you try to change them: timeoutSeconds: -1, maxAttempts: 1"
    ("You can leave these values blank")."""
    write(tmp_path, HEAD + "phases:\n  - name: build\n    steps:\n      - {name: X, action: CreateFolder, "
                           "inputs: [{path: /x}]}\n", "child.yaml")  # fmt: skip
    call = (
        HEAD
        + """\
phases:
  - name: build
    steps:
      - name: Nested
        action: ExecuteDocument
        maxAttempts: 3
        inputs:
          document: child.yaml
"""
    )
    assert_refused_everywhere(verdicts(tmp_path, call), "maxAttempts is fixed at 1", "component.yaml:8:9")
    timed = call.replace("maxAttempts: 3", "timeoutSeconds: 60")
    assert_refused_everywhere(verdicts(tmp_path, timed), "timeoutSeconds is fixed at -1", "component.yaml:8")
    same = call.replace("maxAttempts: 3", "maxAttempts: 1\n        timeoutSeconds: -1")
    assert verdicts(tmp_path, same) == {"validate": [], "run": [], "build": []}
    step = load(tmp_path, call.replace("        maxAttempts: 3\n", "")).phases[0].steps[0]
    assert (step.max_attempts, step.timeout_seconds) == (1, -1)


def test_parameter_type_is_required(tmp_path: Path) -> None:
    """toe-user-defined-variables, parameters: "type | Yes | The data type of the parameter. Supported
    types include: string." (constants: "type | Yes | Type of the constant")."""
    text = SIMPLE.replace("      type: string\n      default: plain", "      default: plain")
    assert_refused_everywhere(verdicts(tmp_path, text), "parameters[0].Name.type: Field required",
                              "component.yaml:4:")  # fmt: skip
    constant = (
        HEAD + "constants:\n  - Const:\n      value: x\n" + SIMPLE.split("parameters:\n", 1)[0][len(HEAD) :]
    )
    constant += SIMPLE[SIMPLE.index("phases:") :]
    assert_refused_everywhere(verdicts(tmp_path, constant), "constants[0].Const.type: Field required")


KIWI_LIKE = (
    HEAD
    + """\
parameters:
  - Flavour:
      type: string
      default: minimal
      allowedValues: [minimal, full]
phases:
  - name: build
    steps:
      - name: Write
        action: CreateFile
        inputs:
          - path: '/out/{{ Flavour }}'
      - name: Clean
        action: DeleteFile
        inputs:
          - path: '/out/{{ Flavour }}'
            force: true
"""
)


def test_accept_what_awstoe_accepts_allowed_values_and_unused_inputs(tmp_path: Path, tiny_root: Path) -> None:
    """Documents AWS publishes: ``allowedValues`` on a parameter (the kiwi-ng sample component) and
    ``force: true`` on DeleteFile (the InSpec sample component) run on AWSTOE. ``allowedValues`` is
    honoured (another value is an error naming the allowed ones); an input key the action does not
    use is a warning with file:line, an error only with ``kiln toe validate --strict``."""
    assert verdicts(tmp_path, KIWI_LIKE) == {"validate": [], "run": [], "build": []}
    doc = load(tmp_path, KIWI_LIKE)
    assert [str(w) for w in doc.warnings] == [
        f"{tmp_path}/component.yaml:19:13: phases[build].steps[Clean].inputs[0].force: DeleteFile does not use "
        "input 'force': AWSTOE ignores it and so does Kiln (an error with --strict)"
    ]
    path = str(tmp_path / "component.yaml")
    lenient = kiln("toe", "validate", "-d", path)
    assert (
        lenient.returncode == 0 and "warning:" in lenient.stderr and "component.yaml:19:13" in lenient.stderr
    )
    strict = kiln("toe", "validate", "--strict", "-d", path)
    assert strict.returncode == 2 and "component.yaml:19:13" in strict.stderr
    outside = verdicts(tmp_path, KIWI_LIKE, {"Flavour": "huge"})
    del outside["validate"]
    assert_refused_everywhere(outside, "'huge' is not one of the allowed values 'minimal', 'full'")
    done = kiln("toe", "run", "--target", f"rootfs:{tiny_root}", "-d", path, "--parameters", "Flavour=full",
                "-p", "build", "-l", str(tmp_path))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "force" in done.stderr and not (tiny_root / "out/full").exists()  # created, then deleted
    bad_default = KIWI_LIKE.replace("default: minimal", "default: tiny")
    assert_refused_everywhere(verdicts(tmp_path, bad_default), "default 'tiny' is not one of allowedValues")


# --- where the documentation is ambiguous: Kiln's decisions (README, semantics) ----------------------


def test_decision_then_skip_without_else_runs_the_step_when_false(tmp_path: Path, tiny_root: Path) -> None:
    """``then: Skip`` alone reads as a guard ("skip if X"): a false condition runs the step."""
    doc = load(
        tmp_path,
        HEAD
        + """\
phases:
  - name: build
    steps:
      - name: Guarded
        action: CreateFile
        if:
          stringEquals: a
          value: b
          then: Skip
        inputs:
          - path: /out/ran
""",
    )
    run(doc, tiny_root, phases=("build",))
    assert (tiny_root / "out/ran").exists()


def test_decision_unquoted_reference_is_read_as_text_with_a_warning(tmp_path: Path, tiny_root: Path) -> None:
    """toe-user-defined-variables: "``- {{ MyParameter }}`` is not valid, as it is not identified as a
    string". Kiln reads it as the quoted text a migrating user means, and warns (error with --strict)."""
    doc = load(
        tmp_path,
        HEAD
        + """\
parameters:
  - Dir:
      type: string
      default: /opt/made
phases:
  - name: build
    steps:
      - name: Make
        action: CreateFolder
        inputs:
          - path: {{ Dir }}
""",
    )
    assert len(doc.warnings) == 1 and "component.yaml:13:13" in str(doc.warnings[0])
    assert "an unquoted {{ }} reference is not valid in AWSTOE" in str(doc.warnings[0])
    run(doc, tiny_root, phases=("build",))
    assert (tiny_root / "opt/made").is_dir()


def test_decision_binary_exists_is_false_for_a_shell_builtin(tiny_root: Path) -> None:
    """``binaryExists`` looks for an executable file on the image's PATH, as Go's exec.LookPath does: a
    shell builtin with no binary (``cd``) does not exist; ``echo`` exists when the image ships it."""
    assert holds({"binaryExists": "cd"}, tiny_root) is False
    (tiny_root / "usr/bin/echo").write_text("#!/bin/sh\n")
    (tiny_root / "usr/bin/echo").chmod(0o755)
    assert holds({"binaryExists": "echo"}, tiny_root) is True


def test_decision_number_less_than_tests_the_value_against_the_baseline() -> None:
    """``numberLessThan: B`` with ``value: V`` is true when V < B: the value is what is tested, the
    operator's operand the baseline, as for every binary operator."""
    assert holds({"numberLessThan": 10, "value": 9}) is True
    assert holds({"numberLessThan": 9, "value": 10}) is False
    assert holds({"stringLessThan": "b", "value": "a"}) is True


def test_decision_continue_failure_outranks_ignore_failure(tmp_path: Path, tiny_root: Path) -> None:
    """A Continue failure makes the document ``Failed`` and an Ignore failure makes it
    ``SuccessWithIgnoredFailure``; with both, ``Failed`` wins (a failure is never hidden)."""
    doc = load(
        tmp_path,
        HEAD
        + """\
phases:
  - name: build
    steps:
      - {name: Ignored, action: ReadFile, onFailure: Ignore, inputs: [{path: /missing}]}
      - {name: Continued, action: ReadFile, onFailure: Continue, inputs: [{path: /missing}]}
      - {name: Last, action: CreateFile, inputs: [{path: /out/last}]}
""",
    )
    result = run(doc, tiny_root, phases=("build",))
    assert [s.status for s in result.steps()] == [IGNORED_FAILURE, FAILED, "success"]
    assert result.status == FAILED and (tiny_root / "out/last").exists()


def test_decision_create_file_default_permissions(tmp_path: Path, tiny_root: Path) -> None:
    """toe-action-modules, CreateFile: permissions default "0666", and "can create a file with
    permissions defined by the default umask". Kiln: 0666 under the usual umask 022, so a new file is
    0644 whatever the umask of the process running Kiln; an existing file keeps its mode."""
    (tiny_root / "etc/kept").write_text("old")
    (tiny_root / "etc/kept").chmod(0o600)
    doc = load(tmp_path, HEAD + "phases:\n  - name: build\n    steps:\n      - {name: W, action: CreateFile, "
                                "inputs: [{path: /etc/new, content: x}, {path: /etc/kept, content: y}]}\n")  # fmt: skip
    old = os.umask(0o077)
    try:
        run(doc, tiny_root, phases=("build",))
    finally:
        os.umask(old)
    assert (tiny_root / "etc/new").stat().st_mode & 0o777 == 0o644
    assert (tiny_root / "etc/kept").stat().st_mode & 0o777 == 0o600
