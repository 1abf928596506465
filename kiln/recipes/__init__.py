"""Recipes: load, validate, and resolve their components and parent."""
