"""The dashboard (placeholder until the pages land)."""

from __future__ import annotations

from fastapi import FastAPI


def mount(app: FastAPI) -> None:
    """Add the dashboard routes and static files to ``app``."""
