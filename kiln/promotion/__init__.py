"""Channels and promotion: policies over an image's evidence, signed decision records, rollbacks.

``policy`` is the YAML format (versioned, JSON Schema from the models); ``rules`` evaluates one channel's
policy over a recorded image, failing closed; ``decide`` records and signs decisions and moves pointers.
"""
