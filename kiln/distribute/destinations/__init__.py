"""Every destination kind; importing this package registers them all."""

from kiln.distribute.destinations import directory, oci, s3

__all__ = ["directory", "oci", "s3"]
