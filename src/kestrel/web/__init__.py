"""The dashboard's files: Jinja templates and static assets (htmx and Chart.js vendored as
plain files, no Node build step). `kestrel.api.dashboard` serves them; this package holds
no Python logic, only where the files are."""

from pathlib import Path

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

__all__ = ["STATIC", "TEMPLATES"]
