"""Where GET reads events: the store's ``events`` table, or files turned into event tables.

A source is named in ``GET … FROM``: ``store`` (or nothing) is the Kestrel store; anything
else is a path or ``file://`` URI — a STIX bundle (Kestrel 1.x data), or any file, folder or
archive that `kestrel.ingest` can read. A file is read once per session into an Arrow table
with the event schema and registered under a name of its own, so the compiled SQL is the
same whether a hunt runs over the store or over files.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

import pyarrow as pa

from kestrel.errors import HuntError, SourceError
from kestrel.events import SCHEMA
from kestrel.hunt import ast
from kestrel.store import Store

STORE_NAMES = ast.STORE_NAMES


def is_store(name: str) -> bool:
    """Whether a FROM names the Kestrel store itself."""
    return name.lower() in STORE_NAMES


def local_path(name: str) -> Path:
    """``file:///a/b.json``, ``file://rel/b.json`` or a plain path → a local path."""
    if name.startswith("file://"):
        parsed = urlparse(name)
        return Path(unquote(parsed.netloc + parsed.path))
    if "://" in name:
        raise HuntError(f"unsupported source {name!r}: use a file path, file:// or store")
    return Path(name).expanduser()


def read_events(paths: list[Path]) -> pa.Table:
    """Every event in ``paths`` (STIX bundles or ingestible files) as one table."""
    from kestrel.hunt.stix import is_bundle, read_bundle

    tables: list[pa.Table] = []
    for path in paths:
        if not path.exists():
            raise HuntError(f"source {path} does not exist")
        if path.is_file() and is_bundle(path):
            tables.append(read_bundle(path))
        else:
            tables.extend(_ingest(path))
    return pa.concat_tables(tables) if tables else SCHEMA.empty_table()


def _ingest(path: Path) -> list[pa.Table]:
    from kestrel.ingest import read_source
    from kestrel.ingest.archives import sources

    errors: dict[str, str] = {}
    out: list[pa.Table] = []
    for source in sources(path, errors):
        try:
            _, chunks = read_source(source)
        except SourceError as exc:
            raise HuntError(f"cannot read source {source.name}: {exc}") from exc
        out.extend(chunk.batch for chunk in chunks if chunk.batch.num_rows)
    return out


class SourceTables:
    """The session's source tables: one registered Arrow table per distinct FROM."""

    def __init__(self, store: Store, prefix: str) -> None:
        self._store = store
        self._prefix = prefix
        self._tables: dict[tuple[str, ...], str] = {}

    def table(self, names: tuple[str, ...]) -> str:
        """The table to read for these FROM names (registered on first use)."""
        if all(is_store(n) for n in names):
            return "events"
        if any(is_store(n) for n in names):
            raise HuntError("cannot mix the store with files in one FROM")
        if names not in self._tables:
            table = read_events([local_path(n) for n in names])
            name = f"{self._prefix}src_{len(self._tables) + 1}"
            self._store.register(name, table)
            self._tables[names] = name
        return self._tables[names]

    def close(self) -> None:
        """Forget the registered tables."""
        for name in self._tables.values():
            self._store.unregister(name)
        self._tables.clear()
