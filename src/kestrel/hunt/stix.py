"""STIX 2.0 / 2.1 bundles of observed-data → event batches, so Kestrel 1.x data can be hunted.

Kestrel 1.x hunted STIX bundles: each ``observed-data`` holds a small graph of cyber
observables (a process, its binary file, parent process, user, connection, addresses).
Here each observed-data becomes one flat event in `kestrel.events.SCHEMA` — the process in
``process_*``, its ``parent_ref`` in ``parent_*``, the connection in ``src_*`` / ``dst_*``, a
standalone file in ``file_*`` — so GET and FIND work on bundles exactly as on the store.
STIX 2.1 SCOs at the top level of the bundle are resolved the same way as 2.0 embedded ones.
Bundles are small (Kestrel's own test data is 1.8 MB), so plain Python is fine here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from kestrel.errors import SourceError
from kestrel.events import Batch, make_batch, parse_times

Obj = Mapping[str, Any]


def is_bundle(path: Path) -> bool:
    """Whether ``path`` looks like a STIX bundle (JSON object with ``"type": "bundle"``)."""
    try:
        with path.open("rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    return head.lstrip().startswith(b"{") and b'"bundle"' in head


def read_bundle(path: Path) -> Batch:
    """One event per observed-data of the bundle at ``path``."""
    try:
        bundle = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise SourceError(f"{path}: not a readable STIX bundle: {exc}") from exc
    top = {str(o.get("id")): o for o in bundle.get("objects", []) if isinstance(o, dict)}
    rows = [_event(o, top) for o in bundle.get("objects", []) if o.get("type") == "observed-data"]
    return _batch(rows, str(path))


def _batch(rows: list[dict[str, Any]], name: str) -> Batch:
    columns: dict[str, Any] = {}
    for i, row in enumerate(rows):
        for key, value in row.items():
            columns.setdefault(key, [None] * len(rows))[i] = value
    times, _ = parse_times(columns.pop("time", [None] * len(rows)))
    columns["time"] = times
    columns["source"] = ["stix"] * len(rows)
    return make_batch(columns, len(rows))


def _objects(od: Obj, top: Mapping[str, Obj]) -> dict[str, Obj]:
    """The observed-data's objects by ref: 2.0 embeds them, 2.1 points at top-level SCOs."""
    if isinstance(od.get("objects"), dict):
        return dict(od["objects"])
    return {ref: top[ref] for ref in od.get("object_refs", []) if ref in top}


def _event(od: Obj, top: Mapping[str, Obj]) -> dict[str, Any]:
    objs = _objects(od, top)
    row: dict[str, Any] = {"time": od.get("first_observed"), "source_event": "observed-data"}
    processes = [o for o in objs.values() if o.get("type") == "process"]
    parents = {o.get("parent_ref") for o in processes}
    actor = next((p for p in processes if _id_of(p, objs) not in parents), None)
    if actor:
        _process(row, actor, objs, "process")
        parent = objs.get(str(actor.get("parent_ref")))
        if parent:
            _process(row, parent, objs, "parent")
    for o in objs.values():
        _FILL.get(str(o.get("type")), _skip)(row, o, objs)
    row["class"] = _class(row)
    row["event_id"] = hashlib.blake2b(
        json.dumps(od, sort_keys=True).encode(), digest_size=16
    ).hexdigest()
    row["raw"] = json.dumps(od, separators=(",", ":"))
    return row


def _id_of(obj: Obj, objs: Mapping[str, Obj]) -> str | None:
    return next((k for k, v in objs.items() if v is obj), None)


def _process(row: dict[str, Any], p: Obj, objs: Mapping[str, Obj], prefix: str) -> None:
    binary = objs.get(str(p.get("binary_ref")), {})
    name = p.get("name") or binary.get("name")
    directory = objs.get(str(binary.get("parent_directory_ref")), {}).get("path")
    row[f"{prefix}_pid"] = p.get("pid")
    row[f"{prefix}_name"] = name
    row[f"{prefix}_cmdline"] = p.get("command_line")
    row[f"{prefix}_guid"] = p.get("x_unique_id")
    row[f"{prefix}_path"] = f"{directory}\\{name}" if directory and name else None
    if prefix == "process":
        row["process_cwd"] = p.get("cwd")
        for algo, column in _HASHES.items():
            row[column] = binary.get("hashes", {}).get(algo)
        user = objs.get(str(p.get("creator_user_ref")), {})
        row["user_id"] = user.get("user_id")
        row["user_name"] = user.get("account_login") or user.get("user_id")


_HASHES = {"MD5": "process_md5", "SHA-1": "process_sha1", "SHA-256": "process_sha256"}


def _network(row: dict[str, Any], o: Obj, objs: Mapping[str, Obj]) -> None:
    row["src_ip"] = objs.get(str(o.get("src_ref")), {}).get("value")
    row["dst_ip"] = objs.get(str(o.get("dst_ref")), {}).get("value")
    row["src_port"] = o.get("src_port")
    row["dst_port"] = o.get("dst_port")
    row["protocol"] = ",".join(o.get("protocols", [])).lower() or None
    row["bytes_out"] = o.get("src_byte_count")
    row["bytes_in"] = o.get("dst_byte_count")


def _file(row: dict[str, Any], o: Obj, objs: Mapping[str, Obj]) -> None:
    if any(p.get("binary_ref") and objs.get(p["binary_ref"]) is o for p in objs.values()):
        return  # a process's executable, already in process_*
    directory = objs.get(str(o.get("parent_directory_ref")), {}).get("path")
    row["file_name"] = o.get("name")
    row["file_path"] = f"{directory}\\{o.get('name')}" if directory else o.get("name")
    for algo, column in (("MD5", "file_md5"), ("SHA-1", "file_sha1"), ("SHA-256", "file_sha256")):
        row[column] = o.get("hashes", {}).get(algo)


def _asset(row: dict[str, Any], o: Obj, objs: Mapping[str, Obj]) -> None:
    row["host"] = o.get("hostname") or o.get("name")


def _user(row: dict[str, Any], o: Obj, objs: Mapping[str, Obj]) -> None:
    if row.get("user_id") is None and row.get("user_name") is None:
        row["user_id"] = o.get("user_id")
        row["user_name"] = o.get("account_login") or o.get("user_id")


def _domain(row: dict[str, Any], o: Obj, objs: Mapping[str, Obj]) -> None:
    row["dns_query"] = o.get("value")


def _skip(row: dict[str, Any], o: Obj, objs: Mapping[str, Obj]) -> None:
    return None


_FILL = {"network-traffic": _network, "file": _file, "x-oca-asset": _asset,
         "user-account": _user, "domain-name": _domain}  # fmt: skip


def _class(row: Mapping[str, Any]) -> str:
    if row.get("src_ip") or row.get("dst_ip"):
        return "network"
    if row.get("process_pid") is not None or row.get("process_name"):
        return "process"
    if row.get("file_name"):
        return "file"
    return "other"


def iter_bundles(paths: list[Path]) -> Iterator[Batch]:
    """A batch per bundle."""
    for path in paths:
        yield read_bundle(path)
