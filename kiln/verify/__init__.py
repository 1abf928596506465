"""Verification: test phases on fresh instances made from the outputs (container, VM)."""
