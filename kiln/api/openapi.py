"""The committed OpenAPI document (docs/openapi.json): ``python -m kiln.api.openapi > docs/openapi.json``
(``make openapi``); a test fails when it and the code differ."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from kiln.api.app import create_app
from kiln.api.config import ApiConfig
from kiln.settings import Settings


def document() -> str:
    """The API's OpenAPI document as stable JSON (sorted keys, trailing newline)."""
    with tempfile.TemporaryDirectory(prefix="kiln-openapi-") as home:
        app = create_app(ApiConfig(data_dir=Path(home), settings=Settings(cache_dir=Path(home) / "cache")))
        try:
            return json.dumps(app.openapi(), indent=2, sort_keys=True) + "\n"
        finally:
            app.state.catalog.close()


if __name__ == "__main__":
    sys.stdout.write(document())
