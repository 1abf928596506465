"""Outputs: OCI image layouts and archives, root filesystem tars, disk images."""

from kiln.outputs.oci import History, ImageConfig, OciImage, write_oci_layout

__all__ = ["History", "ImageConfig", "OciImage", "write_oci_layout"]
