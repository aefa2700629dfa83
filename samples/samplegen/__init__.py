"""Shared pieces of the sample generators: the account, time format and made-up hashes."""

from __future__ import annotations

import hashlib
from datetime import datetime

ACCOUNT = "111122223333"


def iso(t: datetime) -> str:
    """ISO-8601 UTC with a Z, to the second (how CloudTrail and most exporters write it)."""
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def fake_sha256(name: str) -> str:
    """A well-formed but made-up hash (the SHA-256 of a label), not a real file's."""
    return hashlib.sha256(f"kestrel-sample:{name}".encode()).hexdigest()
