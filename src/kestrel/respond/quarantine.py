"""A quarantine folder: a suspicious file is moved out of reach with what is needed to put
it back exactly (path, mode, owner, times, hash), and restored on request.

Why move rather than delete: a false positive must be undoable, and an analyst needs the
sample. The stored copy loses every permission bit but owner-read, so it cannot be run from
the quarantine by accident.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from kestrel.errors import ActionError

BLOB = "file"
META = "meta.json"


@dataclass(frozen=True, slots=True)
class Quarantined:
    """One quarantined file's metadata (``meta.json`` beside the stored bytes)."""

    quarantine_id: str
    original_path: str
    sha256: str
    size: int
    mode: int
    uid: int
    gid: int
    mtime: float
    quarantined_at: float
    reason: str = ""


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class Quarantine:
    """The quarantine folder; every method checks its input and raises `ActionError`."""

    folder: Path

    def put(self, path: Path, reason: str = "") -> Quarantined:
        """Move ``path`` into the quarantine; returns its metadata (with the id to restore)."""
        if not path.is_file() or path.is_symlink():
            raise ActionError(f"quarantine_file: {path} is not a regular file")
        st = path.stat()
        qid = f"{int(time.time())}-{secrets.token_hex(4)}"
        item = Quarantined(qid, str(path.resolve()), sha256_file(path), st.st_size,
                           st.st_mode & 0o7777, st.st_uid, st.st_gid, st.st_mtime,
                           time.time(), reason)  # fmt: skip
        home = self.folder / qid
        home.mkdir(parents=True, mode=0o700)
        (home / META).write_text(json.dumps(asdict(item), indent=1))
        shutil.move(str(path), home / BLOB)
        (home / BLOB).chmod(0o400)
        return item

    def get(self, quarantine_id: str) -> Quarantined:
        """The metadata of one quarantined file."""
        meta = self._home(quarantine_id) / META
        if not meta.is_file():
            raise ActionError(f"no quarantined file {quarantine_id!r} in {self.folder}")
        return Quarantined(**json.loads(meta.read_text()))

    def restore(self, quarantine_id: str) -> Quarantined:
        """Put a file back where it was, with its mode, owner and times; refuses to
        overwrite a file that has appeared there since."""
        item = self.get(quarantine_id)
        target = Path(item.original_path)
        if target.exists():
            raise ActionError(f"restore: {target} exists; move it away first")
        blob = self._home(quarantine_id) / BLOB
        if sha256_file(blob) != item.sha256:
            raise ActionError(f"restore: quarantined bytes of {quarantine_id} changed")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(blob), target)
        self._reown(target, item)
        shutil.rmtree(self._home(quarantine_id))
        return item

    def list(self) -> list[Quarantined]:
        """Every quarantined file, oldest first."""
        if not self.folder.is_dir():
            return []
        metas = sorted(self.folder.glob(f"*/{META}"))
        return [Quarantined(**json.loads(m.read_text())) for m in metas]

    def _home(self, quarantine_id: str) -> Path:
        if not quarantine_id or "/" in quarantine_id or quarantine_id.startswith("."):
            raise ActionError(f"not a quarantine id: {quarantine_id!r}")
        return self.folder / quarantine_id

    @staticmethod
    def _reown(target: Path, item: Quarantined) -> None:
        target.chmod(item.mode)
        if hasattr(os, "chown") and os.geteuid() == 0:
            os.chown(target, item.uid, item.gid)
        os.utime(target, (item.mtime, item.mtime))
