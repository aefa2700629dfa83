"""``POST /api/v1/events``: batched intake for agents and shippers."""

from __future__ import annotations

import json
import threading
from time import monotonic, perf_counter
from typing import Annotated, Any

import pyarrow.compute as pc
from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool

from kestrel.api.auth import Principal, Role
from kestrel.api.deps import AGENT_SEEN_EVERY, ApiState, Sender, State
from kestrel.api.intake import IntakeError, Parsed, gunzip, parse_body, rejection_list
from kestrel.api.routes import AUTH_ERRORS
from kestrel.api.schemas import IntakeResult, Problem
from kestrel.api.spool import SpoolWriter
from kestrel.ingest.base import rejected_table
from kestrel.store import AppendResult

router = APIRouter(tags=["events"], responses=AUTH_ERRORS)

_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "Events: a JSON array, JSON Lines, or either gzip-compressed "
        "(Content-Encoding: gzip or a gzip body). Agent envelopes, CloudTrail records, "
        "metric rows: any format `kestrel ingest` reads.",
        "content": {
            "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
            "application/x-ndjson": {"schema": {"type": "string"}},
            "application/gzip": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}
# One request body parsed at a time. The parse holds the GIL nearly throughout (msgspec,
# the Python column loops), so parsing four bodies at once on the request threads ran no
# faster and cost more CPU per event in GIL hand-offs between them (bench.api, 4 senders,
# six interleaved pairs at load 5-7: 28-38 us of server CPU per event with this lock against
# 33-43 without; bench/RESULTS.md, API). A gzip body is inflated outside it (zlib lets go
# of the GIL), and the store hand-off and the rest of the request run unserialized.
_PARSING = threading.Lock()

FormatParam = Annotated[
    str,
    Query(
        pattern="^[a-z][a-z0-9-]{0,31}$",
        description="Reader: auto (sniffed), agent, cloudtrail, metrics, ...",
    ),
]


@router.post(
    "/events",
    response_model=IntakeResult,
    openapi_extra=_BODY_DOC,
    responses={413: {"model": Problem, "description": "Body or record count over the limit"}},
)
async def post_events(
    request: Request, state: State, who: Sender, format: FormatParam = "auto"
) -> IntakeResult:
    """Store a batch of events; duplicates (same ``event_id``) are counted, not stored.

    Answers 200 when at least one record was read (rejected ones are listed), 422 when
    none could be, 413 when the body is over the limit.
    """
    try:
        body = await _read_capped(request, state.settings.max_body_bytes)
        version = request.headers.get("x-kestrel-agent-version")
        result = await run_in_threadpool(accept, state, who, body, format, version)
    except IntakeError as exc:
        state.metrics.requests.labels(str(exc.status)).inc()
        raise
    state.metrics.requests.labels("200").inc()
    return result


async def _read_capped(request: Request, limit: int) -> bytes:
    """The body, refusing (413) anything over ``limit`` without holding more of it."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise IntakeError(413, f"body larger than {limit} bytes")
    parts: list[bytes] = []
    size = 0
    async for piece in request.stream():
        size += len(piece)
        if size > limit:
            raise IntakeError(413, f"body larger than {limit} bytes")
        parts.append(piece)
    return b"".join(parts)


def accept(
    state: ApiState, who: Principal, body: bytes, fmt: str, version: str | None
) -> IntakeResult:
    """Parse, store, note the agent, run detection: one request's work, off the event loop."""
    s = state.settings
    started = perf_counter()
    data = gunzip(body, s.max_decoded_bytes)
    inflated = perf_counter() - started
    with _PARSING:  # the stage's time is the work, not the wait for the lock
        began = perf_counter()
        parsed = parse_body(data, fmt, f"api/{who.name}", s.max_events)
        parse_seconds = inflated + perf_counter() - began
    state.metrics.stage_seconds.labels("parse").observe(parse_seconds)
    result = _store(state, parsed, body, f"api/{who.name}")
    if who.role is Role.AGENT and who.agent_id:
        _note_agent(state, who.agent_id, parsed, version)
    if state.detect is not None and parsed.batch.num_rows:
        _detect(state, parsed)
    _count(state, parsed, result)
    return IntakeResult(
        format=parsed.format, read=parsed.read, stored=result.stored,
        duplicates=result.duplicates, rejected=len(parsed.rejected),
        rejections=rejection_list(parsed.rejected),
    )  # fmt: skip


def _store(state: ApiState, parsed: Parsed, body: bytes, name: str) -> AppendResult:
    """Hand the batch to the writer: the spool (answered once the body is durable there)
    or the group writer (answered after the store commit, with other requests' batches)."""
    rejected = rejected_table(parsed.rejected, parsed.format) if parsed.rejected else None
    started = perf_counter()
    writer = state.writer
    if isinstance(writer, SpoolWriter):
        if parsed.batch.num_rows == 0 and rejected is None:
            return AppendResult(0, 0)  # "[]": nothing to keep
        result = writer.submit(parsed.batch, rejected, parsed.format, name, body)
        state.metrics.queue_depth.set(writer.pending())
    else:
        state.metrics.queue_depth.inc()
        try:
            result = writer.submit(parsed.batch, rejected)
        finally:
            state.metrics.queue_depth.dec()
    state.metrics.stage_seconds.labels("store").observe(perf_counter() - started)
    return result


def _detect(state: ApiState, parsed: Parsed) -> None:
    assert state.detect is not None
    started = perf_counter()
    for finding in state.detect(parsed.batch):
        state.metrics.findings_new.labels(str(finding.severity)).inc()
    state.metrics.stage_seconds.labels("detect").observe(perf_counter() - started)


def _count(state: ApiState, parsed: Parsed, result: AppendResult) -> None:
    m, fmt = state.metrics, parsed.format
    m.events_received.labels(fmt).inc(parsed.read)
    m.events_stored.labels(fmt).inc(result.stored)
    m.events_duplicate.labels(fmt).inc(result.duplicates)
    m.events_rejected.labels(fmt).inc(len(parsed.rejected))


def _note_agent(state: ApiState, agent_id: str, parsed: Parsed, version: str | None) -> None:
    """Inventory: last seen now, and host facts from the newest ``system`` event. Written
    when facts come, else at most every `AGENT_SEEN_EVERY` seconds per agent."""
    facts = _facts(parsed)
    now = monotonic()
    if facts is None and now - state.agent_marks.get(agent_id, -1e9) < AGENT_SEEN_EVERY:
        return
    state.agent_marks[agent_id] = now
    hosts = parsed.batch.column("host").drop_null()
    host = hosts[-1].as_py() if len(hosts) else None
    with state.side() as mgmt:
        mgmt.agent_seen(agent_id, host, version, facts)


def _facts(parsed: Parsed) -> dict[str, Any] | None:
    """Host facts from the newest ``system`` event. Filtered in Arrow: this runs on every
    agent request, and turning a thousand raw records into Python strings to find none
    cost more than the rest of the bookkeeping."""
    batch = parsed.batch
    if batch.num_rows == 0:
        return None
    system = batch.column("raw").filter(pc.equal(batch.column("class"), "system"))
    if len(system) == 0:
        return None
    payload = json.loads(system[-1].as_py()).get("payload", {})
    return {k: v for k, v in payload.items() if k != "hostname"} or None
