"""What changed between two image versions: packages, CVEs, components, config, evidence, files."""
