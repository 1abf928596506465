"""Where a recorded image's distribution targets come from: the ``distribution:`` section of its
recipe (the file its build recorded) or of a file given instead (a pipeline's own list)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from kiln.distribute.spec import Target, Targets
from kiln.errors import KilnError, ValidationFailed
from kiln.yamlsrc import parse_yaml

DISK_TYPES = ("raw", "qcow2", "vmdk", "vhdx", "vhd")


@dataclass(frozen=True)
class DistributionConfig:
    path: Path
    targets: list[Target]
    boot: str | None  # the first disk output's boot mode


def load_distribution(path: Path) -> DistributionConfig:
    """The validated ``distribution:`` list of ``path`` (errors name file:line:column, exit 2)."""
    if not path.is_file():
        raise KilnError(
            f"{path}: the recipe is gone, so its distribution targets are unknown",
            hint="give the targets' file with --config FILE",
        )
    source = parse_yaml(path)
    if not isinstance(source.data, dict):
        raise ValidationFailed([source.issue((), "a recipe must be a YAML mapping")])
    try:
        targets = TypeAdapter(Targets).validate_python(source.data.get("distribution") or [])
    except ValidationError as exc:
        raise ValidationFailed(source.issues_from(exc, ("distribution",))) from None
    boot = None
    outputs = source.data.get("outputs")
    for output in outputs if isinstance(outputs, list) else []:
        if isinstance(output, dict) and output.get("type") in DISK_TYPES:
            boot = str(output.get("boot", "uefi"))
            break
        if output in DISK_TYPES:
            boot = "uefi"
            break
    return DistributionConfig(path.resolve(), targets, boot)
