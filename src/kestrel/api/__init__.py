"""The management plane: a FastAPI app (``/api/v1``, OpenAPI at ``/api/v1/openapi.json``)
for event intake, findings and their triage, entities, agents, tokens, policies and the
audit log, plus ``/metrics``, ``/healthz``, ``/readyz`` and the dashboard.

Contract: every route but ``/healthz`` needs a token whose role the route allows (checked
server-side by `kestrel.api.deps.require`); bad request data is answered 413 or 422 with
the reasons, never 500. Routes are thin: they call `kestrel.api.findings`,
`kestrel.api.entities` and the management tables, which the dashboard pages share.
"""

from kestrel.api.app import PREFIX, create_app
from kestrel.api.auth import Principal, Role, create_token, verify_token
from kestrel.api.deps import FindingQuery, FindingsSource
from kestrel.api.findings_memory import MemoryFindings
from kestrel.api.settings import ApiSettings

__all__ = [
    "PREFIX",
    "ApiSettings",
    "FindingQuery",
    "FindingsSource",
    "MemoryFindings",
    "Principal",
    "Role",
    "create_app",
    "create_token",
    "verify_token",
]
