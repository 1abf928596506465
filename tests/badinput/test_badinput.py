"""Bad input never crashes, hangs or eats the machine: every case of the generated corpus
(tests/badinput/generate.py) is refused with exit code 2 and a location, quickly, in bounded memory.

All cases run through the functions the CLI commands call (``kiln toe validate``, ``kiln validate``),
each in a forked worker limited to 1 GiB more address space than it started with; a representative
subset runs through the real ``kiln`` executable under the same limit, and two bad recipes through
``kiln build``, which must stop before it writes anything.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from kiln.errors import KilnError
from tests.badinput.generate import Case, generate

MEMORY_LIMIT = 1 << 30  # address space a case may add (RLIMIT_AS)
SECONDS = 5.0  # per case
PEAK_RSS = 256 << 20  # resident memory a case may add
KILN = Path(sys.executable).parent / "kiln"
KINDS = {
    "yaml", "type", "action", "huge", "depth", "parameters", "loops", "conditions", "encoding", "nul",
    "aliases", "numbers", "recipe-numbers", "recipe", "recipe-yaml", "execute-document", "special",
}  # fmt: skip


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[Case]:
    return generate(tmp_path_factory.mktemp("badinput"))


def location(case: Case) -> re.Pattern[str]:
    """``name.yaml:LINE:COLUMN: `` (or the coarser form the case allows) at the start of a line."""
    where = {"column": r":\d+:\d+: ", "line": r":\d+(:\d+)?: ", "file": r"(:\d+)*: "}[case.where]
    return re.compile(r"^(.*/)?" + re.escape(case.located) + where, re.MULTILINE)


def problems(case: Case, code: int, output: str, seconds: float) -> list[str]:
    found = []
    if code != 2:
        found.append(f"exit code {code}")
    if "Traceback" in output:
        found.append("traceback")
    if not location(case).search(output):
        found.append(f"no location {case.located}:{case.where}")
    if case.expect.lower() not in output.lower():
        found.append(f"no {case.expect!r}")
    if seconds >= SECONDS:
        found.append(f"took {seconds:.1f}s")
    return [f"{case.name} ({case.command}): {', '.join(found)}\n{output[:600]}"] if found else []


# -- in process ------------------------------------------------------------------------------------


def _status(field: str) -> int:
    """A ``/proc/self/status`` size in bytes (VmSize, VmRSS, VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(field)


def _limit_memory() -> None:
    """Worker start: at most MEMORY_LIMIT more address space than the forked worker already has."""
    limit = _status("VmSize") + MEMORY_LIMIT
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def validate(case: Case) -> tuple[int, str]:
    """What the CLI does with ``case``: the command's function, a KilnError shown as main() shows it."""
    from kiln.cli.toe import validate as validate_documents
    from kiln.cli.validate import validate as validate_recipes

    try:
        if case.command == "toe":
            validate_documents(documents=str(case.path), json_output=False)
        else:
            validate_recipes([case.path], json_output=False)
    except KilnError as exc:
        return exc.exit_code, f"error: {exc.message}" + (f"\nhint: {exc.hint}" if exc.hint else "")
    except BaseException:  # anything else is what the user would see as a traceback
        import traceback

        return 1, traceback.format_exc()
    return 0, ""


def _run(case: Case) -> tuple[int, str, float, int]:
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak resident size (VmHWM)
    before = _status("VmRSS")
    start = time.process_time()  # CPU seconds: what the case costs, whatever else the machine does
    code, output = validate(case)
    return code, output, time.process_time() - start, _status("VmHWM") - before


@pytest.fixture(scope="module")
def workers() -> Iterator[multiprocessing.pool.Pool]:
    pool = multiprocessing.get_context("fork").Pool(2, initializer=_limit_memory)
    try:
        yield pool
    finally:
        pool.terminate()  # also ends a worker stuck in a hanging case
        pool.join()


def test_corpus_covers_every_kind(corpus: list[Case]) -> None:
    assert len(corpus) >= 150
    assert {c.kind for c in corpus} == KINDS
    assert len({c.name for c in corpus}) == len(corpus)
    for command in ("toe", "recipe"):
        assert len([c for c in corpus if c.command == command]) >= 50


def test_every_case_is_refused_with_a_location(
    corpus: list[Case], workers: multiprocessing.pool.Pool
) -> None:
    pending = [(case, workers.apply_async(_run, (case,))) for case in corpus]
    failures: list[str] = []
    slowest = (0.0, "")
    for case, result in pending:
        code, output, seconds, peak = result.get(timeout=60)  # a hang fails here, not forever
        failures += problems(case, code, output, seconds)
        if peak > PEAK_RSS:
            failures.append(f"{case.name}: peak resident memory grew by {peak >> 20} MiB")
        slowest = max(slowest, (seconds, case.name))
    assert not failures, f"{len(failures)} of {len(corpus)} cases:\n" + "\n".join(failures)
    assert slowest[0] < SECONDS, slowest


# -- through the real command line -----------------------------------------------------------------


def _cli_limits() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def kiln(args: list[str], cwd: Path) -> tuple[int, str, float]:
    """Exit code, output, and the CPU seconds the command used (wall time on a machine shared with
    other work says little; the 30 s timeout still bounds a hang)."""
    start = _children_cpu()
    done = subprocess.run(
        [str(KILN), *args], cwd=cwd, capture_output=True, text=True, timeout=30,
        preexec_fn=_cli_limits, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    return done.returncode, done.stdout + done.stderr, _children_cpu() - start


def representative(corpus: list[Case]) -> list[Case]:
    """One case of each kind (as a document where there is one, else as a recipe), the same bad
    document through a recipe, and the cases that once crashed or hung."""
    chosen: dict[str, Case] = {}
    for case in sorted(corpus, key=lambda c: c.command != "toe"):
        chosen.setdefault(case.kind, case)
    names = ("r-tab-indent", "fifo-recipe", "xdoc-cycle-3-recipe", "bomb-billion-laughs", "deep-flow-10000",
             "xdoc-etc-shadow", "utf8-ff")  # fmt: skip
    extra = [c for c in corpus if c.name in names]
    return list({c.name: c for c in [*chosen.values(), *extra]}.values())


def test_the_command_line_refuses_them(corpus: list[Case]) -> None:
    cases = representative(corpus)
    assert len(cases) >= 20

    def run(case: Case) -> list[str]:
        args = (
            ["toe", "validate", "-d", str(case.path)]
            if case.command == "toe"
            else ["validate", str(case.path)]
        )
        code, output, seconds = kiln(args, case.path.parent)
        return problems(case, code, output, seconds)

    with ThreadPoolExecutor(2) as pool:
        failures = [f for found in pool.map(run, cases) for f in found]
    assert not failures, "\n".join(failures)


def test_build_stops_before_anything_runs(corpus: list[Case], tmp_path: Path) -> None:
    for name in ("epoch-huge", "xdoc-cycle-2-recipe"):
        case = next(c for c in corpus if c.name == name)
        home = tmp_path / name
        code, output, seconds = kiln(["build", str(case.path), "--data-dir", str(home)], case.path.parent)
        assert not problems(case, code, output, seconds), output
        assert not home.exists()  # no catalog, no temp dir, nothing bootstrapped


def test_json_output_reports_the_same_issues(corpus: list[Case]) -> None:
    import json

    case = next(c for c in corpus if c.name == "bomb-billion-laughs")
    code, output, _ = kiln(["toe", "validate", "--json", "-d", str(case.path)], case.path.parent)
    report = json.loads(output)
    assert code == 2 and report["valid"] is False
    assert location(case).search(report["documents"][0]["issues"][0])


def test_run_config_is_read_like_a_document(tmp_path: Path) -> None:
    """``kiln toe run --config``: a FIFO, deep JSON or a NUL byte is an error, never a hang or a crash."""
    from kiln.errors import ValidationFailed
    from kiln.toe.config import load_config

    os.mkfifo(tmp_path / "fifo.json")
    (tmp_path / "deep.json").write_text("[" * 100_000)
    (tmp_path / "nul.json").write_bytes(b'{"documents":\n "a\x00"}')
    expected = {
        "fifo.json": "FIFO",
        "deep.json": "nested too deeply",
        "nul.json": "nul.json:2:4: contains a NUL",
    }
    for name, message in expected.items():
        with pytest.raises(ValidationFailed) as info:
            load_config(tmp_path / name)
        assert message in info.value.message
