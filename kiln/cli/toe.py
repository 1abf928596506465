"""``kiln toe validate`` and ``kiln toe run``: awstoe's command line, sandboxed."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from kiln.cli.common import DataDirOption, err_console, finish_validation, open_store, settings
from kiln.cli.exitcodes import epilog
from kiln.errors import Issue, KilnError, ValidationFailed
from kiln.monitor import ConsoleMonitor, Monitor
from kiln.sandbox.bwrap import SandboxOptions
from kiln.secrets import SecretError, Secrets, load_secrets, parse_cli_secret, secrets_tmpfs
from kiln.toe.aptcache import apt_views
from kiln.toe.config import settings as run_settings
from kiln.toe.config import split_list
from kiln.toe.nesting import load_checked
from kiln.toe.results import FAILED
from kiln.toe.runner import HostTarget, RootfsTarget, RunOptions, Target
from kiln.toe.runner import services as toe_services
from kiln.toe.session import execute

TARGET_HELP = (
    "Where steps run: rootfs:PATH (a root filesystem directory, changed in place, in a bubblewrap "
    "sandbox), image:NAME[@VERSION] (a throwaway copy of a catalogued image), or host (this machine)."
)


def validate(
    documents: Annotated[str, typer.Option("--documents", "-d", help="Comma-separated document paths.")],
    json_output: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Warnings (what AWSTOE accepts and ignores, such as unused input keys) are errors too.",
        ),
    ] = False,
) -> None:
    """Validate component documents; every problem is reported (file:line:column: step path: message)."""
    issues: list[Issue] = []
    report = []
    for path in split_list(documents):
        try:
            doc = load_checked(Path(path))
        except ValidationFailed as exc:
            issues.extend(exc.issues)
            report.append({"path": path, "valid": False, "issues": [str(i) for i in exc.issues]})
            continue
        warnings = [str(w) for w in doc.warnings]
        if strict and doc.warnings:
            issues.extend(doc.warnings)
            report.append({"path": path, "valid": False, "issues": warnings})
            continue
        report.append({"path": path, "valid": True, "name": doc.name, "phases": doc.phase_names,
                       "digest": doc.digest, "warnings": warnings})  # fmt: skip
        if not json_output:
            for warning in warnings:
                err_console.print(f"[yellow]warning:[/] {escape(warning)}")
            err_console.print(f"[green]valid[/] {path} ({doc.name}: {', '.join(doc.phase_names)})")
    finish_validation("documents", report, issues, json_output=json_output)


@contextmanager
def open_target(spec: str, *, network: bool, keep: bool, scratch: bool, data_dir: Path | None,
                monitor: Monitor, secrets_dir: Path | None = None,
                secret_env: list[str] | None = None) -> Iterator[Target]:  # fmt: skip
    kind, _, value = spec.partition(":")
    options = SandboxOptions(network=network, secrets_dir=secrets_dir)
    env = secret_env or []
    if kind == "host" and not value:
        if secrets_dir is not None:
            raise KilnError(
                "--secret needs a sandboxed target",
                hint="use --target rootfs:PATH or image:NAME (on the host, steps can read the source)",
            )
        with HostTarget() as host:
            yield host
        return
    if not (kind in ("rootfs", "image") and value):
        raise KilnError(f"invalid --target {spec!r}", hint="use rootfs:PATH, image:NAME[@VERSION] or host")
    if kind == "rootfs" and not Path(value).is_dir():
        raise KilnError(f"--target rootfs:{value}: no such directory")
    store = open_store(data_dir)
    with ExitStack() as stack:
        if kind == "image":
            from kiln.verify.instance import image_root

            root = stack.enter_context(
                image_root(store, value, keep=keep, monitor=monitor, new_instance=True)
            ).root
        elif scratch:
            from kiln.toe.scratch import scratch_overlay

            root = stack.enter_context(scratch_overlay(Path(value), store))
        else:
            root = Path(value)
        # apt's lists and archive as a build's steps see them (kiln.toe.aptcache).
        views = stack.enter_context(
            apt_views(store, root, stack.enter_context(store.scratch("toe-apt-")), monitor, network=network)
        )
        yield stack.enter_context(RootfsTarget(root, replace(options, binds=views), env))


def run(
    target: Annotated[str | None, typer.Option("--target", help=TARGET_HELP)] = None,
    documents: Annotated[str | None, typer.Option("--documents", "-d", help="Comma-separated paths.")] = None,
    phases: Annotated[str | None, typer.Option("--phases", "-p", help="e.g. build,validate")] = None,
    parameters: Annotated[str | None, typer.Option("--parameters", help="name1=value1,name2=value2")] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="awstoe run config JSON.")] = None,
    override_config: Annotated[
        bool,
        typer.Option(
            "--override-config",
            help="Let --documents/--parameters win over --config (awstoe refuses the combination).",
        ),
    ] = False,
    execution_id: Annotated[str | None, typer.Option("--execution-id", "-i")] = None,
    log_directory: Annotated[Path | None, typer.Option("--log-directory", "-l")] = None,
    s3_endpoint: Annotated[
        str | None, typer.Option("--s3-endpoint", help="S3-compatible endpoint URL.")
    ] = None,
    no_network: Annotated[bool, typer.Option("--no-network", help="Steps run without network.")] = False,
    keep: Annotated[bool, typer.Option("--keep", help="Keep the root of an image: target.")] = False,
    scratch: Annotated[
        bool,
        typer.Option("--scratch", help="rootfs: target: run on a throwaway overlay, PATH stays unchanged."),
    ] = False,
    secret: Annotated[
        list[str] | None,
        typer.Option(
            "--secret",
            help="NAME=env:VARIABLE or NAME=file:PATH (repeatable): the file /run/secrets/NAME in the "
            "sandbox, masked as *** in all output, never written to the logs.",
        ),
    ] = None,
    secret_env: Annotated[
        bool, typer.Option("--secret-env", help="Also set each --secret as the variable NAME in steps.")
    ] = False,
    trace: Annotated[bool, typer.Option("--trace", "-t", help="Debug logging.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only the final summary.")] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Run component documents like ``awstoe run``, writing the same TOE_<time>_<id>/ log folder."""
    if target is None:
        raise KilnError(
            "choose where the steps run with --target",
            hint="--target rootfs:PATH, image:NAME[@VERSION] or host (host changes this machine)",
        )
    chosen = run_settings(
        documents=documents, phases=phases, parameters=parameters, config=config,
        execution_id=execution_id, log_directory=log_directory, override_config=override_config,
    )  # fmt: skip
    if trace:
        logging.getLogger("kiln").setLevel(logging.DEBUG)
    monitor: Monitor = Monitor() if quiet else ConsoleMonitor(verbose=True)
    services = {"s3": {"endpoint_url": s3_endpoint}} if s3_endpoint else toe_services(settings())
    secrets = cli_secrets(secret or [], secret_env)
    with ExitStack() as stack:
        secrets_dir = stack.enter_context(secrets_tmpfs(secrets, secrets_mount_point(secrets, stack)))
        where = stack.enter_context(
            open_target(
                target, network=not no_network, keep=keep, scratch=scratch, data_dir=data_dir,
                monitor=monitor, secrets_dir=secrets_dir, secret_env=secrets.env_names,
            )
        )  # fmt: skip
        try:
            execution = execute(chosen, where, monitor, RunOptions(services=services), secrets.masker)
        except KilnError as exc:
            secrets.masker.scrub(exc)
            raise
    typer.echo(json.dumps(execution.summary(), indent=4))
    if execution.status == FAILED:
        first_line = execution.failure_message.splitlines()[0] if execution.failure_message else "failed"
        err_console.print(f"[red]failed:[/] {escape(first_line)}\n[dim]logs:[/] {execution.folder}")
        raise typer.Exit(1)


def cli_secrets(specs: list[str], as_env: bool) -> Secrets:
    """Read every ``--secret NAME=SOURCE`` (paths relative to the working directory)."""
    if not specs:
        return Secrets()
    from kiln.recipes.model import SecretSpec

    items = []
    for text in specs:
        name, source = parse_cli_secret(text)
        items.append(SecretSpec(name=name, source=source, env=as_env))
    names = [i.name for i in items]
    if len(set(names)) != len(names):
        raise SecretError("--secret: a name is given twice")
    return load_secrets(items, base_dir=Path.cwd())


def secrets_mount_point(secrets: Secrets, stack: ExitStack) -> Path:
    """A private directory for the secrets' tmpfs; the mount stays in this process's own mount
    namespace when it can have one (so it dies with it)."""
    import tempfile

    from kiln.sandbox.namespace import enter_private_mount_namespace

    if not secrets:
        return Path("/nonexistent")  # never used: no tmpfs without secrets
    enter_private_mount_namespace(settings().private_namespaces)  # KILN_MOUNT_NAMESPACE=host: none
    parent = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kiln-toe-secrets-")))
    return parent / "secrets"


def register(app: typer.Typer) -> None:
    toe = typer.Typer(
        name="toe",
        help="Run AWS Image Builder (AWSTOE) component documents locally, sandboxed.",
        no_args_is_help=True,
        epilog=epilog("toe"),
    )
    toe.command("validate")(validate)
    toe.command("run")(run)
    app.add_typer(toe, name="toe")
