"""Layers: a component's changes (an overlayfs upper dir) or a whole root, as a deterministic tar."""

from kiln.layers.tar import LayerBlob, write_layer

__all__ = ["LayerBlob", "write_layer"]
