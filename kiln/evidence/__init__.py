"""Evidence on every image: SBOMs, vulnerability scan + gates, OpenSCAP compliance, signed provenance."""
