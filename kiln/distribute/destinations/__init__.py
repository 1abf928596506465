"""Every destination kind; importing this package registers them all."""

from kiln.distribute.destinations import directory, oci

__all__ = ["directory", "oci"]
