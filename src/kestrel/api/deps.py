"""What every route shares: the application state (store, management tables, findings,
metrics), the caller's `Principal`, and the role check.

`FindingsSource` is the small protocol the routes read findings through. The API does not
care who keeps findings (the in-memory `MemoryFindings` today, the pipeline's findings table
when it lands), so switching is one line in `create_app`, not a rewrite of the routes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Protocol

from fastapi import Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from kestrel.api.auth import Principal, Role, verify_token
from kestrel.api.metrics import ApiMetrics
from kestrel.api.settings import ApiSettings
from kestrel.api.spool import SpoolWriter
from kestrel.api.writer import GroupWriter
from kestrel.events import Batch
from kestrel.findings import Finding, Severity
from kestrel.store import DuckDBStore, Store
from kestrel.store.management import ManagementStore

if TYPE_CHECKING:
    from kestrel.api.broker_intake import BrokerIntake

COOKIE = "kestrel_token"
AGENT_SEEN_EVERY = 5.0


@dataclass(frozen=True, slots=True)
class FindingQuery:
    """Filters for the findings list; every field optional, all given ones must hold."""

    min_severity: Severity | None = None
    detector: str | None = None
    technique: str | None = None
    entity: str | None = None  # an entity id, or "type:id"
    start: datetime | None = None  # last seen at or after
    end: datetime | None = None  # first seen before


def matches(f: Finding, q: FindingQuery) -> bool:
    """Whether ``f`` passes every filter of ``q`` (shared by the in-memory source)."""
    return (
        (q.min_severity is None or f.severity >= q.min_severity)
        and (q.detector is None or f.detector == q.detector)
        and (q.technique is None or any(t.startswith(q.technique) for t in f.techniques))
        and (q.entity is None or q.entity in (f.entity.id, str(f.entity)))
        and (q.start is None or f.last_seen >= q.start)
        and (q.end is None or f.first_seen < q.end)
    )


class FindingsSource(Protocol):
    """Where the API reads findings from."""

    def findings(self, query: FindingQuery) -> list[Finding]:
        """Findings matching ``query``, newest first."""
        ...

    def finding(self, finding_id: str) -> Finding | None:
        """One finding by id, or None."""
        ...


DetectHook = Callable[[Batch], list[Finding]]
"""Runs detection over a batch just stored (the pipeline runner, when one is wired in)."""

BaselineSource = Callable[[str, str], list[dict[str, Any]]]
"""(entity type, entity id) → baseline rows (metric, n, mean, std), from the pipeline."""


@dataclass(slots=True)
class ApiState:
    """Everything a request handler needs, built once by `create_app`."""

    settings: ApiSettings
    store: Store
    mgmt: ManagementStore
    findings: FindingsSource
    metrics: ApiMetrics
    detect: DetectHook | None = None
    baselines: BaselineSource | None = None
    # One connection serves every request: DuckDB connections are not safe to share
    # between threads, so store calls take this lock (appends are short; parsing is not
    # done under it).
    lock: threading.RLock = field(default_factory=threading.RLock)
    _tokens: dict[str, tuple[Principal, float]] = field(default_factory=dict)
    live_runs: dict[str, Any] = field(default_factory=dict)  # kestrel.api.live.LiveRun by id
    writer: GroupWriter | SpoolWriter | BrokerIntake = field(init=False)
    # When each agent's inventory row was last written (monotonic seconds): last seen is
    # written at most every `AGENT_SEEN_EVERY` seconds per agent, not on every request.
    agent_marks: dict[str, float] = field(default_factory=dict)
    # Token checks and agents' last-seen writes go through a connection of their own over
    # DuckDB (`side`, with its lock): under the store lock they waited for the writer's
    # appends (every client at once when the token cache expired).
    _side: ManagementStore | None = None
    _side_lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        s, store = self.settings, self.store
        if s.broker is not None:  # scale-out: publish intake to the pipeline's broker
            from kestrel.api.broker_intake import BrokerIntake

            self.writer = BrokerIntake(s.broker, store, self.lock)
        elif s.spool and isinstance(store, DuckDBStore) and store.path != ":memory:":
            # acknowledge after a durable spool beside the file (kestrel.api.spool); a
            # spool left by a crash is replayed into the store here, before serving
            folder = Path(f"{Path(store.path).expanduser()}.spool")
            self.writer = SpoolWriter(store, self.lock, folder, s.max_decoded_bytes,
                                      s.max_events)  # fmt: skip
        else:
            if isinstance(store, DuckDBStore):  # both id checks skip DuckDB for new ids
                with self.lock:
                    store.index_event_ids()
            self.writer = GroupWriter(store, self.lock)

    def cached_principal(self, token: str) -> Principal | None:
        """The principal of ``token`` if it was verified in the last ``token_cache_seconds``."""
        hit = self._tokens.get(token)
        return hit[0] if hit and hit[1] > time.monotonic() else None

    def authenticate(self, token: str) -> Principal | None:
        """The principal of ``token``, cached for ``token_cache_seconds``."""
        if (hit := self.cached_principal(token)) is not None:
            return hit
        with self.side() as mgmt:
            found = verify_token(mgmt, token)
        if found is not None:
            self._tokens[token] = (found, time.monotonic() + self.settings.token_cache_seconds)
        return found

    def close(self) -> None:
        """Stop the writer (storing what it holds) and close the readers' connections."""
        self.writer.close()
        with self._side_lock:
            if self._side is not None:
                self._side.store.close()
                self._side = None

    @contextmanager
    def side(self) -> Iterator[ManagementStore]:
        """The management tables for a short read or write beside intake: on a connection
        of their own over DuckDB (opened on first use), else on the shared one under the
        store lock."""
        if not isinstance(self.store, DuckDBStore):
            with self.lock:
                yield self.mgmt
            return
        with self._side_lock:
            if self._side is None:
                with self.lock:
                    self._side = ManagementStore(self.store.cursor())
            yield self._side

    def forget_tokens(self) -> None:
        """Drop cached verifications (after a revoke)."""
        self._tokens.clear()


async def get_state(request: Request) -> ApiState:
    """The app's `ApiState`. The dependencies here are ``async``: FastAPI runs a plain
    ``def`` dependency on a worker thread, a hand-off each way for a few microseconds of
    work, and every request resolves four of them."""
    state: ApiState = request.app.state.kestrel
    return state


State = Annotated[ApiState, Depends(get_state)]

_bearer = HTTPBearer(
    auto_error=False,
    description="A Kestrel token (`kestrel token create --role admin|analyst|agent`).",
)
_SAFE = frozenset({"GET", "HEAD"})


def _presented(request: Request, creds: HTTPAuthorizationCredentials | None) -> str | None:
    """The bearer token, else the dashboard cookie. The cookie counts for a state-changing
    request only with htmx's ``HX-Request`` header, which another site cannot add without
    a CORS preflight this server never grants (a CSRF guard beside SameSite=Strict)."""
    if creds is not None:
        return creds.credentials
    cookie = request.cookies.get(COOKIE)
    if cookie and (request.method in _SAFE or request.headers.get("hx-request") == "true"):
        return cookie
    return None


async def reject_unknown_query(request: Request) -> None:
    """422 for a query parameter the route does not declare: a misspelt filter
    (``?severty=high``) must not quietly return everything."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    unknown = set(request.query_params) - _declared_query(dependant)
    if unknown:
        raise HTTPException(422, f"unknown query parameter(s): {', '.join(sorted(unknown))}")


def _declared_query(dependant: Any) -> set[str]:
    names = {f.alias for f in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _declared_query(sub)
    return names


async def get_principal(
    request: Request,
    state: State,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller; 401 for a missing, malformed, unknown, revoked or expired token. A
    token verified lately is answered from the cache on the event loop; one that needs the
    store is verified on a worker thread."""
    token = _presented(request, creds)
    found = None
    if token:
        found = state.cached_principal(token)
        if found is None:
            found = await run_in_threadpool(state.authenticate, token)
    if found is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing, invalid or expired token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return found


def require(*roles: Role) -> Callable[[Principal], Coroutine[Any, Any, Principal]]:
    """A dependency that lets only ``roles`` through (403 for the others)."""
    allowed = frozenset(roles)

    async def check(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if principal.role not in allowed:
            names = ", ".join(sorted(allowed))
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, f"role {principal.role} may not do this ({names} may)"
            )
        return principal

    return check


STAFF = (Role.ADMIN, Role.ANALYST)
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
Staff = Annotated[Principal, Depends(require(*STAFF))]
Sender = Annotated[Principal, Depends(require(Role.ADMIN, Role.AGENT))]
Agent = Annotated[Principal, Depends(require(Role.AGENT))]
Anyone = Annotated[Principal, Depends(get_principal)]
