"""Every destination kind; importing this package registers them all."""

from kiln.distribute.destinations import ami, directory, oci, s3

__all__ = ["ami", "directory", "oci", "s3"]
