"""Layers: a component's changes (an overlayfs upper dir) or a whole root, as a deterministic tar."""

from kiln.layers.scan import LayerError
from kiln.layers.tar import LayerBlob, write_layer

__all__ = ["LayerBlob", "LayerError", "write_layer"]
