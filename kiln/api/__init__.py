"""Kiln's HTTP server: the REST API under ``/api/v1`` and the web UI (``kiln serve``)."""

from kiln.api.app import create_app
from kiln.api.config import ApiConfig

__all__ = ["ApiConfig", "create_app"]
