"""The archivists' web UI (`ufarchive serve`): FastAPI + Jinja2, server-rendered.

Layering: web imports archive, never crawler; archive never imports web."""
