"""One `APIRouter` per resource; `kestrel.api.app` mounts them under ``/api/v1``."""

from __future__ import annotations

from typing import Any

from kestrel.api.schemas import Problem

# Answers every authenticated route may give, so the OpenAPI document lists them.
AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "A body that is not JSON at all"},
    401: {"model": Problem, "description": "Missing, invalid or expired token"},
    403: {"model": Problem, "description": "The token's role may not do this"},
    422: {"model": Problem, "description": "Invalid parameters"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Problem, "description": "Not found"}}
