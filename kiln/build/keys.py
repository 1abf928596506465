"""Content-addressed cache keys: a stage's key is a digest over everything that can change its result.

An unchanged prefix of a recipe therefore maps to the same keys and is never rebuilt.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from kiln.recipes.loader import ResolvedComponent
from kiln.recipes.model import Settings
from kiln.toe.document import NON_BUILD_PHASES, Document
from kiln.toe.nesting import included_documents

# Bump when the way layers are captured or written changes: every cached layer is then rebuilt.
LAYER_FORMAT = "kiln-layer-v5"  # v5: zlib-ng deflate


def digest_of(value: Any) -> str:
    """sha256 over a canonical JSON rendering of ``value``."""
    data = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(data.encode()).hexdigest()


def execution_settings(settings: Settings) -> dict[str, Any]:
    """The settings that change what a step does (not where outputs go)."""
    return {
        "working_directory": settings.working_directory,
        "environment": settings.environment,
        "network": settings.network,
    }


def parent_layer_key(parent_key: str, epoch: int, compression_level: int) -> str:
    return digest_of(
        {"format": LAYER_FORMAT, "parent": parent_key, "epoch": epoch, "gzip": compression_level}
    )


def build_inputs_digest(document: Document) -> str:
    """What a component's build phase depends on: the document without its validate and test phases
    (parameter declarations and constants included) and every document its build phase includes with
    ExecuteDocument. Editing only validate or test keeps the layer; those phases run again anyway."""
    root = document.path.resolve().parent
    included = [
        (str(p.relative_to(root)), "sha256:" + hashlib.sha256(p.read_bytes()).hexdigest())
        for p in included_documents(document, skip_phases=NON_BUILD_PHASES)
    ]
    return digest_of({"document": document.build_digest, "included": included})


def _with_secrets(fields: dict[str, Any], secrets: Mapping[str, str] | None) -> dict[str, Any]:
    """Secrets enter a key by name (and, for ``affects_output`` ones, by keyed digest: see
    ``kiln.secrets.Secrets.identity``), never by value; a recipe without secrets keeps its keys."""
    return {**fields, "secrets": dict(secrets)} if secrets else fields


def component_layer_key(
    previous_key: str,
    component: ResolvedComponent,
    settings: Settings,
    epoch: int,
    secrets: Mapping[str, str] | None = None,
) -> str:
    """``component.parameters`` hold a secret parameter's secret name, not its value."""
    fields = {
        "format": LAYER_FORMAT,
        "previous": previous_key,
        "build": build_inputs_digest(component.document),
        "parameters": component.parameters,
        "settings": execution_settings(settings),
        "epoch": epoch,
        "gzip": settings.compression_level,
    }
    return digest_of(_with_secrets(fields, secrets))


def validate_key(
    last_layer_key: str,
    components: list[ResolvedComponent],
    settings: Settings,
    secrets: Mapping[str, str] | None = None,
) -> str:
    fields = {
        "format": LAYER_FORMAT,
        "stage": "validate",
        "layers": last_layer_key,
        "components": [(c.document.digest, c.parameters) for c in components],
        "settings": execution_settings(settings),
    }
    return digest_of(_with_secrets(fields, secrets))
