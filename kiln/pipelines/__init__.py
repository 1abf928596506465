"""Pipelines: recipes built on a schedule, on parent-image cascades and on demand (docs/pipelines.md).

model/load (files) → schedule (cron in a zone) → store (catalog rows) → scheduler (what is due) →
cascade (graph order) → daemon (runs builds through builds.BuildRunner, the executor adapter).
"""
