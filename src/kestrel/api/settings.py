"""The API's settings: one frozen dataclass, so `create_app(settings)` says what runs."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kestrel.api.broker_intake import BrokerTarget

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """Where the store is and how much one intake request may carry.

    The limits are what keeps one sender from taking the server down: a body over
    ``max_body_bytes`` (as sent) or over ``max_decoded_bytes`` (after gunzip; a gzip bomb)
    is refused with 413 before it is parsed, and so is a request over ``max_events``.
    """

    db: str = ":memory:"
    max_body_bytes: int = 16 * MIB
    max_decoded_bytes: int = 64 * MIB
    max_events: int = 100_000
    # How long a verified token is trusted without asking the store again (revoking a
    # token in this process clears it at once; another process sees it after this long).
    token_cache_seconds: float = 5.0
    secure_cookies: bool = False  # set behind TLS so the dashboard cookie is HTTPS-only
    # Run the detectors over newly stored events every this many seconds inside the server
    # (kestrel.api.detection); 0 turns it off. Off by default for an app built in code
    # (tests, embedding); `kestrel serve` turns it on.
    detect_every: float = 0.0
    # Over a DuckDB file, intake answers once the body is in a write-ahead spool beside it
    # (<db>.spool/, fdatasync'd, replayed at start) and the store appends in large groups
    # (kestrel.api.spool); False ($KESTREL_API_SPOOL=0): answer after the DuckDB commit
    # (kestrel.api.writer).
    spool: bool = field(default_factory=lambda: os.environ.get("KESTREL_API_SPOOL", "1") != "0")
    # A hunt (POST /api/v1/hunts, the hunt console) is stopped after this many seconds and
    # answered 422 with reason time_limit; $KESTREL_HUNT_SECONDS sets the default.
    hunt_seconds: float = field(
        default_factory=lambda: float(os.environ.get("KESTREL_HUNT_SECONDS", "30"))
    )
    # The responder (kestrel.respond): playbook files / folders that /api/v1/playbooks lists,
    # the folder whose runs/ and audit.jsonl `kestrel playbook run` and `kestrel approve`
    # share (None: no responder, so no runs), and the response policy approvals run under
    # (None: every action is a dry run).
    playbooks: tuple[str, ...] = ()
    response_home: str | None = None
    response_policy: str | None = None
    # Sigma rule sets (files, folders, zips) the rules page switches on and off; empty:
    # $KESTREL_SIGMA_RULES, as `kestrel detect` without --rules.
    sigma_rules: tuple[str, ...] = ()
    # Scale-out (`kestrel serve --broker`): intake is published to the distributed
    # pipeline's broker (kestrel.api.broker_intake) and `kestrel worker`s store it.
    broker: BrokerTarget | None = None
