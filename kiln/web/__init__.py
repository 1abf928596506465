"""The web UI: server-rendered pages (Jinja2) over the same catalog as the API; htmx only enhances."""
