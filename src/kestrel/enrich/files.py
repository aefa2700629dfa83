"""Reading the files that events name, behind an interface (YARA scans their content).

The pipeline reads from the local disk (on the agent, or uploaded samples on the server);
tests use `MemoryFiles`. Either way a read is bounded: a file over ``max_bytes`` is not read
at all (reported as too large), so a 50 GB disk image named by an event cannot stall a batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

DEFAULT_MAX_BYTES = 32 * 1024 * 1024


class FileTooLargeError(Exception):
    """The file is larger than the read limit."""


class FileReader(Protocol):
    """Returns a file's bytes, or raises OSError / `FileTooLargeError`."""

    def read(self, path: str, max_bytes: int) -> bytes:
        """The content of ``path``, at most ``max_bytes`` long."""
        ...


class LocalFiles:
    """The local file system."""

    def fingerprint(self, path: str) -> tuple[int, int, int] | None:
        """(size, mtime in ns, inode): changes whenever the content may have; None if the
        file cannot be stat'ed. One ``stat`` instead of a read and a hash."""
        try:
            st = Path(path).stat()
        except OSError:
            return None
        return (st.st_size, st.st_mtime_ns, st.st_ino)

    def read(self, path: str, max_bytes: int) -> bytes:
        """Read the whole file unless it is larger than ``max_bytes``."""
        p = Path(path)
        if p.stat().st_size > max_bytes:
            raise FileTooLargeError(f"{path}: over {max_bytes} bytes")
        with p.open("rb") as f:
            data = f.read(max_bytes + 1)
        if len(data) > max_bytes:  # grew while we read it
            raise FileTooLargeError(f"{path}: over {max_bytes} bytes")
        return data


@dataclass(frozen=True)
class MemoryFiles:
    """Files held in a dict (path → bytes): the in-memory implementation for tests."""

    files: Mapping[str, bytes]

    def read(self, path: str, max_bytes: int) -> bytes:
        """The stored bytes; FileNotFoundError for an unknown path."""
        if path not in self.files:
            raise FileNotFoundError(path)
        data = self.files[path]
        if len(data) > max_bytes:
            raise FileTooLargeError(f"{path}: over {max_bytes} bytes")
        return data
