"""Reputation of hashes and addresses from VirusTotal v3 (and any client of the same shape).

Side effects sit behind two interfaces: `Transport` (HTTP; `UrllibTransport` in production,
any local server in tests) and `Cache` (`DiskCache` so the API quota is not spent twice on
the same hash across restarts). The client paces itself (``rate_per_minute``, VirusTotal's
public API allows 4), retries 429 / 5xx / network errors with exponential back-off, and
without an API key it logs one notice and answers nothing, so the stage keeps running.

`ReputationEnricher` asks about each value once (answers kept in a `FrameMemo`, a batch is
one join), with a per-batch ``budget``: a batch never waits for more than ``budget`` API
calls; values left over stay null and are asked about when they appear again. A value the
client could not answer is left alone for ``retry_s``; a client without a key is not asked.
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import polars as pl

from kestrel.enrich.base import set_columns
from kestrel.enrich.cache import Cache, FrameMemo, MemoryCache
from kestrel.enrich.geoip import PublicMask, remote_ip
from kestrel.events import Batch

log = logging.getLogger(__name__)
VT_URL = "https://www.virustotal.com/api/v3"
_VT_PATHS = {"hash": "files", "ip": "ip_addresses", "domain": "domains"}
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class Verdict:
    """How many engines flag a value, out of how many gave a verdict (0/0: unknown)."""

    malicious: int
    engines: int


@dataclass(frozen=True, slots=True)
class Response:
    """An HTTP answer: status and body."""

    status: int
    body: bytes


class Transport(Protocol):
    """Performs one HTTP GET."""

    def get(self, url: str, headers: Mapping[str, str], timeout: float) -> Response:
        """The response; raises OSError when no answer came at all."""
        ...


class UrllibTransport:
    """HTTP through the standard library (no extra dependency for one GET)."""

    def get(self, url: str, headers: Mapping[str, str], timeout: float) -> Response:
        """GET ``url``; an HTTP error status is a `Response`, not an exception."""
        request = urllib.request.Request(url, headers=dict(headers))
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                return Response(answer.status, answer.read())
        except urllib.error.HTTPError as exc:
            return Response(exc.code, exc.read())


class ReputationClient(Protocol):
    """Answers "is this bad?" for a hash, IP or domain; None when it cannot say now."""

    @property
    def name(self) -> str:
        """The service asked (for reports)."""
        ...

    def lookup(self, kind: str, value: str) -> Verdict | None:
        """The verdict for one value of ``kind`` (hash, ip, domain)."""
        ...


@dataclass(frozen=True)
class MemoryReputation:
    """Verdicts from a dict ``{(kind, value): Verdict}``: the in-memory implementation."""

    table: Mapping[tuple[str, str], Verdict]
    name: str = "memory"

    def lookup(self, kind: str, value: str) -> Verdict | None:
        """The stored verdict, or None."""
        return self.table.get((kind, value))


@dataclass
class VirusTotalClient:
    """VirusTotal API v3: ``last_analysis_stats`` of files, IP addresses and domains."""

    api_key: str | None = field(default_factory=lambda: os.environ.get("VT_API_KEY"))
    base_url: str = VT_URL
    transport: Transport = field(default_factory=UrllibTransport)
    cache: Cache = field(default_factory=MemoryCache)
    rate_per_minute: float = 4.0
    retries: int = 3
    backoff_s: float = 2.0
    timeout_s: float = 20.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    name: str = "virustotal"
    calls: int = field(default=0, init=False)
    _next_at: float = field(default=0.0, init=False, repr=False)
    _disabled: str | None = field(default=None, init=False, repr=False)

    def lookup(self, kind: str, value: str) -> Verdict | None:
        """Cached verdict, else one paced API call (with retries); None when unavailable."""
        key = f"vt:{kind}:{value.lower()}"
        cached = self.cache.get(key)
        if cached is not None:
            return Verdict(int(cached[0]), int(cached[1]))
        if not self._usable():
            return None
        verdict = self._fetch(kind, value)
        if verdict is not None:
            self.cache.put(key, [verdict.malicious, verdict.engines])
        return verdict

    def usable(self) -> bool:
        """Whether lookups can reach the API (a key, not refused); says why once if not.
        Cached answers are kept by the enricher, so a disabled client is not asked at all."""
        return self._usable()

    def _usable(self) -> bool:
        if self._disabled is None and not self.api_key:
            self._disable("no VirusTotal API key (set VT_API_KEY): reputation lookups skipped")
        return self._disabled is None

    def _disable(self, why: str) -> None:
        self._disabled = why
        log.warning("%s", why)  # once: later lookups return quietly

    def _fetch(self, kind: str, value: str) -> Verdict | None:
        url = f"{self.base_url}/{_VT_PATHS[kind]}/{value}"
        for attempt in range(self.retries + 1):
            self._pace()
            answer = self._get(url)
            if answer is not None and answer.status not in _RETRY_STATUS:
                return self._verdict(answer)
            if attempt < self.retries:
                self.sleep(self.backoff_s * 2**attempt)
        log.info("VirusTotal gave no answer for %s after %d tries", value, self.retries + 1)
        return None

    def _get(self, url: str) -> Response | None:
        self.calls += 1
        try:
            return self.transport.get(url, {"x-apikey": self.api_key or ""}, self.timeout_s)
        except OSError as exc:
            log.info("VirusTotal request failed: %s", exc)
            return None

    def _pace(self) -> None:
        now = self.clock()
        if now < self._next_at:
            self.sleep(self._next_at - now)
            now = self._next_at
        self._next_at = now + 60.0 / self.rate_per_minute

    def _verdict(self, answer: Response) -> Verdict | None:
        if answer.status == 404:  # VirusTotal has never seen it: a real, cacheable answer
            return Verdict(0, 0)
        if answer.status in (401, 403):
            self._disable(f"VirusTotal refused the API key (HTTP {answer.status}): skipped")
            return None
        if answer.status != 200:
            return None
        return _stats(json.loads(answer.body))


def _stats(doc: dict[str, Any]) -> Verdict:
    stats = doc.get("data", {}).get("attributes", {}).get("last_analysis_stats", {})
    voted = sum(int(stats.get(k, 0)) for k in ("malicious", "suspicious", "harmless", "undetected"))
    return Verdict(int(stats.get("malicious", 0)), voted)


@dataclass
class ReputationEnricher:
    """Fills ``rep_malicious`` and ``rep_engines`` for the event's hash, else its remote IP."""

    name: ClassVar[str] = "reputation"
    columns: ClassVar[tuple[str, ...]] = ("rep_malicious", "rep_engines")

    client: ReputationClient
    budget: int = 4  # API calls one batch may spend (cache hits are free)
    retry_s: float = 3600.0  # how long a value the client could not answer is left alone
    clock: Callable[[], float] = time.monotonic
    _memo: FrameMemo = field(init=False, repr=False)
    _unanswered: dict[str, float] = field(init=False, repr=False, default_factory=dict)
    _public: PublicMask = field(init=False, repr=False, default_factory=PublicMask)

    def __post_init__(self) -> None:
        self._memo = FrameMemo("s", {"s": pl.String, "m": pl.Int64, "e": pl.Int64})

    def enrich(self, batch: Batch) -> Batch:
        """Ask about the unique (kind, value)s not answered before, within the budget; one
        join answers the batch. Without a usable client nothing is asked (no Python loop)."""
        subjects = _subjects(batch, self._public)
        if getattr(self.client, "usable", lambda: True)():
            answers = self._answers(self._to_ask(subjects))
            self._memo.add([(k, v.malicious, v.engines) for k, v in answers.items()])
        got = self._memo.join(subjects)
        return set_columns(batch, {"rep_malicious": got["m"].to_arrow(),
                                   "rep_engines": got["e"].to_arrow()})  # fmt: skip

    def _to_ask(self, subjects: pl.Series) -> list[str]:
        now = self.clock()
        new = self._memo.missing(subjects).to_list()
        return [s for s in new if now - self._unanswered.get(s, -1e18) >= self.retry_s]

    def _answers(self, subjects: list[str]) -> dict[str, Verdict]:
        out: dict[str, Verdict] = {}
        calls_before = getattr(self.client, "calls", 0)
        for subject in subjects:
            if getattr(self.client, "calls", 0) - calls_before >= self.budget:
                break  # left for a later batch: not marked unanswered
            kind, _, value = subject.partition(":")
            verdict = self.client.lookup(kind, value)
            if verdict is None:
                self._unanswered[subject] = self.clock()
            else:
                out[subject] = verdict
        return out


def _subjects(batch: Batch, public_mask: PublicMask) -> pl.Series:
    """``hash:<sha256>`` where the event has one, else ``ip:<public remote address>``."""
    frame = pl.from_arrow(batch.select(["file_sha256", "process_sha256"]))
    assert isinstance(frame, pl.DataFrame)
    ips = remote_ip(batch)
    public = public_mask(ips)
    sha = frame.select(pl.coalesce("file_sha256", "process_sha256")).to_series()
    ip = pl.when(public).then(pl.lit("ip:") + ips)
    return pl.select(
        pl.when(sha.is_not_null()).then(pl.lit("hash:") + sha).otherwise(ip)
    ).to_series()
