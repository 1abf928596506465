"""Layers: a component's changes (an overlayfs upper dir) or a whole root, as a deterministic tar."""

from kiln.layers.tar import LayerBlob, write_layer
from kiln.layers.walk import LayerError

__all__ = ["LayerBlob", "LayerError", "write_layer"]
