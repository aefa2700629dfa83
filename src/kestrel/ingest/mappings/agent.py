"""Endpoint agent envelope: event_type and payload action → the schema's class and activity.

The payload field → column renames live on the typed structs in `kestrel.ingest.agent`
(``msgspec.field(name=...)``: the struct attribute *is* the schema column), so this table
only holds what is not a rename.
"""

from __future__ import annotations

# (event_type, payload action) → activity, OCSF activity names.
ACTIVITY: dict[tuple[str, str | None], str] = {
    ("process", "start"): "create",
    ("process", "stop"): "terminate",
    ("file", "create"): "create",
    ("file", "modify"): "update",
    ("file", "delete"): "delete",
    ("file", "move"): "rename",
    ("network", "connect"): "connect",
    ("network", "listen"): "listen",
    ("system", None): "inventory",
}

# The psutil connection status of a listening socket (every other status is a connection).
LISTEN_STATUS = "LISTEN"
