"""AWSTOE-compatible component engine: load, validate and run component documents."""
