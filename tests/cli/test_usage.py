"""Usage mistakes get Click's short usage error and exit code 2, never a traceback: a table of bad
command lines, with at least one row for every command (a new command without rows fails here)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from kiln.cli.main import build_app

# (argv, what the error says). Every row runs the real `kiln` in a fresh process.
BAD: list[tuple[list[str], str]] = [
    (["bogus"], "No such command 'bogus'"),
    (["--bogus"], "No such option: --bogus"),
    (["build"], "Missing argument"),
    (["build", "r.yaml", "--bogus"], "No such option: --bogus"),
    (["build", "r.yaml", "--no-cache=maybe"], "--no-cache"),
    (["validate"], "Missing argument"),
    (["images", "push"], "No such command 'push'"),
    (["images", "list", "-n", "0"], "No such option: -n"),
    (["images", "list", "--below", "1.0"], "--below needs --package"),
    (["images", "list", "--package", "openssl<<"], "invalid package filter"),
    (["images", "list", "--package", "openssl<1", "--below", "2"], "not both"),
    (["images", "list", "--label", "team"], "expected KEY=VALUE"),
    (["images", "list", "--label", "Team/x=1"], "is not a DNS subdomain"),
    (["images", "list", "--state", "gone"], "'gone' is not one of"),
    (["images", "list", "--cve", "cve 1"], "invalid vulnerability id"),
    (["images", "label", "web"], "Missing argument"),
    (["images", "label", "web", "tier=-x"], "invalid value '-x' of label 'tier'"),
    (["images", "unlabel", "web"], "Missing argument"),
    (["images", "unlabel", "web", "_x"], "invalid label key '_x'"),
    (["images", "show"], "Missing argument"),
    (["diff", "web@1.0.0/1"], "Missing argument 'B'"),
    (["diff", "a", "b", "--files"], "No such option: --files"),
    (["images", "packages", "--bogus"], "No such option"),
    (["images", "lineage"], "Missing argument"),
    (["images", "lineage", "web", "--format", "svg"], "Invalid value"),
    (["images", "outdated-packages"], "Missing argument"),
    (["images", "outdated-packages", "web", "--bogus"], "No such option: --bogus"),
    (["build", "r.yaml", "--refresh=yes"], "--refresh"),
    (["build", "r.yaml", "--refresh", "--locked", "l.json"], "not with a refreshed parent"),
    (["build", "r.yaml", "--test-timeout", "0"], "Invalid value for '--test-timeout'"),
    (["build", "r.yaml", "--test-timeout", "soon"], "Invalid value for '--test-timeout'"),
    (["build", "r.yaml", "--no-tests", "--test-timeout", "60"], "no test stage to bound"),
    (["builds", "list", "-n", "0"], "greater than or equal to 1"),
    (["builds", "list", "--limit", "many"], "Invalid value for '--limit'"),
    (["builds", "show"], "Missing argument"),
    (["builds", "show", "abc", "--follow"], "--follow goes with --log"),
    (
        ["builds", "show", "abc", "--log", "--follow", "--attempt", "1"],
        "--attempt goes with --log, without --follow",
    ),
    (["schema", "foo"], "'foo' is not one of"),
    (["toe", "exec"], "No such command 'exec'"),
    (["toe", "validate"], "Missing option '--documents'"),
    (["toe", "run", "--phases"], "requires an argument"),
    (["sbom", "x", "--format", "xml"], "'xml' is not one of"),
    (["scan"], "Missing argument"),
    (["scan", "x", "--format", "xml"], "'xml' is not one of"),
    (["scan", "x", "--fail-on", "severe"], "'severe' is not one of"),
    (["scan", "x", "--only-fixable"], "--only-fixable needs --fail-on"),
    (["vulndb", "nuke"], "No such command 'nuke'"),
    (["vulndb", "import"], "Missing argument"),
    (["vulndb", "status", "--bogus"], "No such option"),
    (["comply", "x", "--target", "vm"], "'vm' is not one of"),
    (["keys", "generate"], "Missing argument"),
    (["verify"], "Missing argument"),
    (["verify", "x", "--bogus"], "No such option"),
    (["test", "x", "--instance", "docker"], "'docker' is not one of"),
    (["test", "x", "--timeout", "soon"], "Invalid value for '--timeout'"),
    (["gc", "extra"], "unexpected extra argument"),
    (["gc", "--jobs-older-than", "-1"], "Invalid value for '--jobs-older-than'"),
    (["gc", "--events-older-than", "soon"], "Invalid value for '--events-older-than'"),
    (["serve", "--port", "http"], "Invalid value for '--port'"),
    (["tokens", "create"], "Missing argument"),
    (["promote", "x"], "Missing option '--to'"),
    (["audit", "--bogus"], "No such option: --bogus"),
    (["channels", "check", "--bogus"], "No such option: --bogus"),
    (["channels", "history", "--bogus"], "No such option: --bogus"),
    (["channels", "list", "--bogus"], "No such option: --bogus"),
    (["channels", "rollback", "--bogus"], "No such option: --bogus"),
    (["channels", "show", "--bogus"], "No such option: --bogus"),
    (["distribute", "--bogus"], "No such option: --bogus"),
    (["distributions", "--bogus"], "No such option: --bogus"),
    (["preflight", "--bogus"], "No such option: --bogus"),
    (["promote", "--bogus"], "No such option: --bogus"),
    (["promotions", "list", "--bogus"], "No such option: --bogus"),
    (["promotions", "schema", "--bogus"], "No such option: --bogus"),
    (["promotions", "show", "--bogus"], "No such option: --bogus"),
    (["serve", "--bogus"], "No such option: --bogus"),
    (["tokens", "create", "--bogus"], "No such option: --bogus"),
    (["tokens", "list", "--bogus"], "No such option: --bogus"),
    (["tokens", "revoke", "--bogus"], "No such option: --bogus"),
    (["components", "publish"], "Missing argument 'FILE'"),
    (["components", "publish", "c.yaml", "--version"], "requires an argument"),
    (["components", "list", "--name"], "requires an argument"),
    (["components", "show"], "Missing argument 'NAME[@VERSION]'"),
    (["components", "show", "x", "--bogus"], "No such option: --bogus"),
    (["components", "deprecate", "x@1.0.0"], "Missing option '--reason'"),
    (["recipes", "publish"], "Missing argument 'FILE'"),
    (["recipes", "list", "--bogus"], "No such option: --bogus"),
    (["recipes", "show"], "Missing argument 'NAME[@VERSION]'"),
    (["events", "--since"], "requires an argument"),
    (["events", "--limit", "0"], "greater than or equal to 1"),
    (["webhooks", "ping"], "No such command 'ping'"),
    (["webhooks", "add"], "Missing argument"),
    (["webhooks", "list", "--bogus"], "No such option: --bogus"),
    (["webhooks", "remove", "one"], "Invalid value for 'webhook_id'"),
    (["webhooks", "deliveries", "--limit", "0"], "greater than or equal to 1"),
    (["webhooks", "redeliver"], "Missing argument"),
    (["webhooks", "dispatch", "--forever"], "No such option: --forever"),
    (["webhooks", "new-secret", "x"], "unexpected extra argument"),
    (["worker", "--bogus"], "No such option: --bogus"),
    (["worker", "--concurrency", "0"], "Invalid value for '--concurrency'"),
    (["worker", "--stalled-after", "soon"], "Invalid value for '--stalled-after'"),
    (["worker"], "kiln worker needs a PostgreSQL catalog; this one is SQLite"),
    (["status", "--bogus"], "No such option: --bogus"),
    (["status"], "kiln status shows the build queue of a PostgreSQL catalog"),
    (["images", "deprecate", "x"], "Missing option '--reason'"),
    (["images", "disable"], "Missing argument"),
    (["images", "activate", "x", "--bogus"], "No such option: --bogus"),
    (["images", "retire", "x", "--reason"], "requires an argument"),
    (["images", "history"], "Missing argument"),
    (["lifecycle", "apply"], "Missing argument"),
    (["lifecycle", "apply", "p.yaml", "--dry-run", "--yes"], "give --dry-run or --yes, not both"),
    (["lifecycle", "prune"], "No such command 'prune'"),
    (["schema", "lifecycle"], "'lifecycle' is not one of"),
    (["pipelines", "apply"], "Missing argument"),
    (["pipelines", "apply", "no-such-pipeline.yaml"], "no-such-pipeline.yaml: no such file or folder"),
    (["pipelines", "list", "--bogus"], "No such option: --bogus"),
    (["pipelines", "show"], "Missing argument"),
    (["pipelines", "run", "web", "--param", "novalue"], "--param 'novalue': expected NAME=VALUE"),
    (["pipelines", "history", "web", "-n", "0"], "greater than or equal to 1"),
    (["pipelines", "enable"], "Missing argument"),
    (["pipelines", "disable"], "Missing argument"),
    (["daemon", "--workers", "0"], "Invalid value for '--workers'"),
    (["daemon", "--log-format", "xml"], "'xml' is not one of"),
    (["daemon", "--vulndb-every", "6h"], "--vulndb-every needs --vulndb-source"),
    (["daemon", "--vulndb-source", "feed.json", "--vulndb-every", "6x"], "invalid interval '6x'"),
    (["daemon", "--vulndb-source", "feed.json", "--vulndb-every", "10s"], "shorter than a minute"),
]


def command_paths(command: object, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Every leaf command's path (('images', 'list'), ('build',), ...) of Typer's (vendored) Click group."""
    subcommands: dict[str, object] | None = getattr(command, "commands", None)
    if subcommands is None:
        return {prefix}
    return {path for name, sub in subcommands.items() for path in command_paths(sub, (*prefix, name))}


def test_every_command_has_rows() -> None:
    group = typer.main.get_command(build_app())
    leaves = command_paths(group)
    covered = {path for path in leaves for argv, _ in BAD if tuple(argv[: len(path)]) == path}
    assert leaves - covered == set(), "add bad command lines for these commands to BAD"


@pytest.mark.parametrize(("argv", "message"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_usage_error(argv: list[str], message: str, tmp_path: Path) -> None:
    env = {**os.environ, "KILN_HOME": str(tmp_path / "home"), "COLUMNS": "200"}
    done = subprocess.run(
        [sys.executable, "-m", "kiln.cli.main", *argv], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert message in " ".join(done.stderr.split())
    assert done.stdout == ""
    assert not (tmp_path / "home").exists(), "a usage error must not create the data directory"
