"""Kiln: a self-hosted golden image factory."""

__version__ = "0.1.0"
