"""Run commands: the one subprocess gateway, the bubblewrap sandbox, safe paths inside a root."""
