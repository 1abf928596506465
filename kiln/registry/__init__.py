"""The registry: component documents and recipes published in the catalog by name and semantic version.

Submodules are imported where used (``kiln.recipes`` needs only :mod:`kiln.registry.semver`).
"""
