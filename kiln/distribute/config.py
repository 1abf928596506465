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


def load_distribution(path: Path, recipe: Path | None = None) -> DistributionConfig:
    """The validated ``distribution:`` list of ``path`` (errors name file:line:column, exit 2); the
    disk boot mode from ``recipe`` (the image's own recipe, when the targets come from elsewhere)."""
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
    return DistributionConfig(path.resolve(), targets, _boot(recipe if recipe and recipe.is_file() else path))


def _boot(path: Path) -> str | None:
    """The first disk output's boot mode, read leniently (the recipe was validated when it built)."""
    data = parse_yaml(path).data
    outputs = data.get("outputs") if isinstance(data, dict) else None
    for output in outputs if isinstance(outputs, list) else []:
        if isinstance(output, dict) and output.get("type") in DISK_TYPES:
            return str(output.get("boot", "uefi"))
        if output in DISK_TYPES:
            return "uefi"
    return None
