"""``kiln promote REF --to CHANNEL``, ``kiln channels list|history|rollback``, ``kiln promotions show``."""

from __future__ import annotations

import getpass
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from kiln.catalog import Catalog
from kiln.cli.common import DataDirOption, JsonOption, console, open_store, print_json, settings

PolicyOption = Annotated[
    Path | None,
    typer.Option(
        "--policy", help="Promotion policy YAML (default: DATA_DIR/promotion-policy.yaml, else built-in)."
    ),
]
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", help="Distribution targets (channel tags) from this file (default: the recipe)."
    ),
]
KeyOption = Annotated[
    Path | None, typer.Option("--key", help="Key that signs the decision (default: KILN_SIGNING_KEY).")
]


@contextmanager
def _catalog(data_dir: Path | None) -> Iterator[tuple[Catalog, Path]]:
    store = open_store(data_dir)
    catalog = Catalog.open(store.database_url)
    try:
        yield catalog, store.home
    finally:
        catalog.close()


def _policy_path(policy: Path | None, home: Path) -> Path | None:
    if policy is not None:
        return policy
    default = home / "promotion-policy.yaml"
    return default if default.is_file() else None


def _who() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}"


def _tag_channel(catalog: Catalog, ref: str, channel: str, config: Path | None) -> None:
    """Re-tag the registry targets that ask for channel tags (`channel_tags: true`) after a move."""
    import os

    from kiln.distribute.config import load_distribution
    from kiln.distribute.run import tag_channel

    image = catalog.get_image(ref)
    recipe = Path(catalog.get_build(image.build_id).recipe_path)
    if config is None and not recipe.is_file():
        return
    for written in tag_channel(catalog, image.ref, load_distribution(config or recipe, recipe), channel,
                               settings=settings(), environ=os.environ):  # fmt: skip
        console.print(f"tagged {escape(written)}")


def register(app: typer.Typer) -> None:
    channels = typer.Typer(help="Channels of image names (dev → staging → prod) and their history.")
    promotions = typer.Typer(help="Recorded, signed promotion decisions.")
    app.add_typer(channels, name="channels")
    app.add_typer(promotions, name="promotions")

    @app.command("promote")
    def promote_command(
        ref: Annotated[str, typer.Argument(help="NAME@VERSION/BUILD (or NAME, NAME@VERSION)")],
        to: Annotated[str, typer.Option("--to", help="The channel to enter.")],
        policy: PolicyOption = None,
        key: KeyOption = None,
        config: ConfigOption = None,
        data_dir: DataDirOption = None,
        json_output: JsonOption = False,
    ) -> None:
        """Evaluate the channel's policy over the image's evidence; record and sign the decision; move
        the channel on success. A denied promotion is recorded too and exits 1, naming each failed rule."""
        from kiln.promotion.decide import promote
        from kiln.promotion.policy import load_policy

        with _catalog(data_dir) as (catalog, home):
            loaded = load_policy(_policy_path(policy, home))
            record, results = promote(catalog, ref, to, loaded, key=key or settings().signing_key, who=_who(),
                                      store=open_store(data_dir))  # fmt: skip
            _tag_channel(catalog, record.image, to, config)
        if json_output:
            print_json(record.model_dump(mode="json"))
            return
        for r in results:
            console.print(f"[green]✓[/] {r.rule}: {escape(r.detail)}")
        console.print(f"{record.image} is now in {to} (decision {record.id}, signed)")

    @channels.command("list")
    def channels_list(
        name: Annotated[str | None, typer.Argument(help="Only this image name.")] = None,
        policy: PolicyOption = None,
        data_dir: DataDirOption = None,
        json_output: JsonOption = False,
    ) -> None:
        """Where each channel of each image name points."""
        from kiln.catalog import promotions as moves
        from kiln.promotion.policy import load_policy

        with _catalog(data_dir) as (catalog, home):
            order = load_policy(_policy_path(policy, home)).policy.channels
            names = sorted({r.image_name for r in moves.history(catalog, name)})
            table = {
                n: {c: (p.image if (p := moves.current(catalog, n, c)) else None) for c in order}
                for n in names
            }
        if json_output:
            print_json(table)
            return
        for image_name, pointers in table.items():
            shown = "  ".join(f"{c}={escape(p or '-')}" for c, p in pointers.items())
            console.print(f"{escape(image_name)}  {shown}")

    @channels.command("show")
    def channels_show(
        name: Annotated[str, typer.Argument(help="Image name.")],
        policy: PolicyOption = None,
        data_dir: DataDirOption = None,
        json_output: JsonOption = False,
    ) -> None:
        """Each channel's image, re-evaluated now: what would fail the policy today (exit 1 if any)."""
        _check(name, policy, None, data_dir, json_output, apply=False)

    @channels.command("check")
    def channels_check(
        name: Annotated[str, typer.Argument(help="Image name.")],
        policy: PolicyOption = None,
        key: KeyOption = None,
        data_dir: DataDirOption = None,
        json_output: JsonOption = False,
    ) -> None:
        """Like show, then apply the policy's on_violation: with `demote`, a failing channel moves back
        to the newest earlier version that passes (recorded and signed, with the cause)."""
        _check(name, policy, key or settings().signing_key, data_dir, json_output, apply=True)

    def _check(
        name: str,
        policy: Path | None,
        key: Path | None,
        data_dir: Path | None,
        json_output: bool,
        *,
        apply: bool,
    ) -> None:
        from kiln.promotion.decide import check_channels
        from kiln.promotion.policy import load_policy

        with _catalog(data_dir) as (catalog, home):
            loaded = load_policy(_policy_path(policy, home))
            statuses = check_channels(catalog, name, loaded, key=key, who=_who(), apply=apply,
                                      store=open_store(data_dir))  # fmt: skip
        if json_output:
            print_json([{"channel": s.channel, "image": s.image, "demoted_to": s.demoted_to,
                         "failed": [r.as_dict() for r in s.failed]} for s in statuses])  # fmt: skip
        else:
            for s in statuses:
                verdict = "[green]passes[/]" if not s.failed else "[red]FLAGGED[/]"
                console.print(f"{s.channel}: {escape(s.image)} {verdict}")
                for r in s.failed:
                    console.print(f"  [red]✗[/] {r.rule}: {escape(r.detail)}")
                if s.demoted_to:
                    console.print(f"  demoted to {escape(s.demoted_to)}")
        if any(s.failed and not s.demoted_to for s in statuses):
            raise typer.Exit(1)

    @channels.command("history")
    def channels_history(
        name: Annotated[str, typer.Argument(help="Image name.")],
        channel: Annotated[str | None, typer.Argument(help="Only this channel.")] = None,
        data_dir: DataDirOption = None,
        json_output: JsonOption = False,
    ) -> None:
        """Every decision (allowed or denied), rollback and demotion, oldest first."""
        from kiln.catalog import promotions as moves

        with _catalog(data_dir) as (catalog, _):
            records = moves.history(catalog, name, channel)
        if json_output:
            print_json([r.model_dump(mode="json", exclude={"envelope"}) for r in records])
            return
        for r in records:
            verdict = "[green]allowed[/]" if r.allowed else "[red]denied[/]"
            failed = [x["rule"] for x in r.decision.get("rules", []) if not x["passed"]]
            note = f" (failed: {', '.join(failed)})" if failed else ""
            when = r.at.strftime("%Y-%m-%d %H:%M:%S")
            console.print(
                f"{r.id:>4} {when} {r.channel} {r.action} {escape(r.image)} {verdict}{note} by {r.who}"
            )

    @channels.command("rollback")
    def channels_rollback(
        name: Annotated[str, typer.Argument(help="Image name.")],
        channel: Annotated[str, typer.Argument(help="Channel to point back at its previous version.")],
        reason: Annotated[str, typer.Option("--reason", help="Recorded with the rollback.")] = "",
        key: KeyOption = None,
        config: ConfigOption = None,
        data_dir: DataDirOption = None,
        json_output: JsonOption = False,
    ) -> None:
        """Point CHANNEL back at the version it held before its current one (recorded and signed)."""
        from kiln.promotion.decide import rollback

        with _catalog(data_dir) as (catalog, _):
            record = rollback(
                catalog, name, channel, key=key or settings().signing_key, who=_who(), reason=reason
            )
            _tag_channel(catalog, record.image, channel, config)
        if json_output:
            print_json(record.model_dump(mode="json"))
            return
        console.print(f"{channel} of {name} is back at {record.image} (decision {record.id}, signed)")

    @promotions.command("list")
    def promotions_list(
        name: Annotated[str | None, typer.Argument(help="Only this image name.")] = None,
        data_dir: DataDirOption = None,
        json_output: JsonOption = False,
    ) -> None:
        """Every recorded decision of every image name (or one), oldest first."""
        from kiln.catalog import promotions as moves

        with _catalog(data_dir) as (catalog, _):
            records = moves.history(catalog, name)
        if json_output:
            print_json([r.model_dump(mode="json", exclude={"envelope"}) for r in records])
            return
        for r in records:
            verdict = "allowed" if r.allowed else "denied"
            when = r.at.strftime("%Y-%m-%d %H:%M:%S")
            console.print(
                f"{r.id:>4} {when} {escape(r.image)} {r.action} → {r.channel} {verdict} by {escape(r.who)}"
            )

    @promotions.command("schema")
    def promotions_schema() -> None:
        """The JSON Schema of promotion policy files (for editors and CI validation)."""
        from kiln.promotion.policy import policy_schema

        print_json(policy_schema())

    @promotions.command("show")
    def promotions_show(
        decision: Annotated[int, typer.Argument(help="Decision id (see: kiln channels history NAME).")],
        verify_key: Annotated[
            Path | None, typer.Option("--verify-key", help="Verify the signature with this public key.")
        ] = None,
        data_dir: DataDirOption = None,
    ) -> None:
        """A decision record: policy digest, evidence digests, per-rule results, who, when."""
        from kiln.catalog import promotions as moves
        from kiln.promotion.decide import verify

        with _catalog(data_dir) as (catalog, _):
            record = moves.get(catalog, decision)
        if verify_key is not None:
            verify(record, verify_key)
        print_json({**record.model_dump(mode="json", exclude={"envelope"}),
                    "verified": verify_key is not None})  # fmt: skip
