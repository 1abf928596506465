"""``kiln test``: run test phases again, on demand, against a recorded image version."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from kiln.cli.common import DataDirOption, console, open_store, settings
from kiln.cli.exitcodes import epilog


def register(app: typer.Typer) -> None:
    @app.command("test", epilog=epilog("test"))
    def test_command(
        image: Annotated[str, typer.Argument(help="NAME, NAME@VERSION or NAME@VERSION/BUILD.")],
        instance: Annotated[
            Literal["container", "vm"] | None,
            typer.Option("--instance", help="container or vm (default: as the image was built)."),
        ] = None,
        documents: Annotated[
            str | None, typer.Option("--documents", help="Extra test documents, comma-separated.")
        ] = None,
        timeout: Annotated[int, typer.Option(help="Seconds a VM test boot may take in all.")] = 900,
        data_dir: DataDirOption = None,
        verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show step output.")] = False,
    ) -> None:
        """Run the image's test phases (and extra documents) on a fresh container or VM instance."""
        from kiln.catalog import Catalog
        from kiln.errors import KilnError, ValidationFailed
        from kiln.monitor import ConsoleMonitor
        from kiln.sandbox.bwrap import SandboxOptions
        from kiln.sandbox.namespace import contain_process_tree
        from kiln.toe.document import load_document
        from kiln.verify.phases import TestDocument, test_on_container, test_on_vm

        contain_process_tree(settings().private_namespaces)  # qemu and sandboxes die with this command
        store = open_store(data_dir)
        with Catalog.open(store.database_url) as catalog:
            record = catalog.get_image(image)
            lock = catalog.lock(record.ref) or {}
        artifacts = {a.kind: Path(a.path) for a in record.artifacts}
        base = artifacts["oci"].parent if "oci" in artifacts else None
        tests: list[TestDocument] = []
        for entry in lock.get("components", []):
            if "test" in entry.get("phases", []) and base is not None:
                doc = load_document(base / entry["document"])
                tests.append(TestDocument(entry["name"], doc, dict(entry.get("parameters", {}))))
        issues = []
        for path in filter(None, (documents or "").split(",")):
            try:
                doc = load_document(Path(path))
            except ValidationFailed as exc:
                issues.extend(exc.issues)
                continue
            tests.append(TestDocument(doc.name or path, doc, {}))
        if issues:
            raise ValidationFailed(issues)
        if not tests:
            raise KilnError(f"{record.ref} has no test phases", hint="pass test documents with --documents")
        kinds = [instance] if instance else list(lock.get("test_instances") or ["container"])
        monitor = ConsoleMonitor(verbose=verbose)
        with store.scratch("test-") as scratch:
            for kind in kinds:
                if kind == "container":
                    if "oci" not in artifacts:
                        raise KilnError(f"{record.ref} has no OCI layout to make a container instance from")
                    test_on_container(
                        artifacts["oci"], tests, options=SandboxOptions(),
                        workdir=lock.get("working_directory", "/tmp"), scratch=scratch, monitor=monitor,
                    )  # fmt: skip
                elif kind == "vm":
                    disk = next((artifacts[k] for k in ("qcow2", "raw") if k in artifacts), None)
                    if disk is None:
                        raise KilnError(f"{record.ref} has no qcow2 or raw disk to boot")
                    boot: Literal["uefi", "bios"] = "bios" if lock.get("boot") == "bios" else "uefi"
                    test_on_vm(disk, tests, boot=boot, timeout=timeout, scratch=scratch, monitor=monitor,
                               accel=settings().accel)  # fmt: skip
                else:
                    raise typer.BadParameter(f"unknown instance kind '{kind}' (container or vm)")
        console.print(f"[bold green]tests passed[/] on {record.ref} ({', '.join(kinds)})")
