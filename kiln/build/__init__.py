"""Build orchestration: a recipe becomes an image version (or fails and publishes nothing)."""
