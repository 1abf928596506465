"""Where builds run when Kiln itself did not start them from a terminal (the API, later pipelines)."""
