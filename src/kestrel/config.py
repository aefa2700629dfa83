"""Paths and defaults in one place."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """Kestrel's state folder: ``$KESTREL_HOME`` or ``~/.kestrel``."""
    return Path(os.environ.get("KESTREL_HOME", Path.home() / ".kestrel"))


def default_db() -> str:
    """The embedded store used when no ``--db`` is given."""
    return str(home() / "kestrel.duckdb")


# Readers give up on one line or one JSON document larger than this and reject it whole,
# without holding it in memory (a 2 GB line must not take the process down).
MAX_RECORD_BYTES = int(os.environ.get("KESTREL_MAX_RECORD_BYTES", 64 * 1024 * 1024))
# Pretty-printed JSON documents (arrays, CloudTrail delivery files) are read whole.
MAX_DOCUMENT_BYTES = int(os.environ.get("KESTREL_MAX_DOCUMENT_BYTES", 1024 * 1024 * 1024))
# Rows per batch handed from a reader to the store.
BATCH_ROWS = 20_000
# How much of a rejected record is kept in the `rejected` table.
REJECTED_RAW_BYTES = 64 * 1024
