"""Lifecycle of what Kiln keeps: reclaiming leftovers (and, later, retention policies)."""
