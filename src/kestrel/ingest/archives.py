"""Turning paths into sources: folders are walked, zip and gzip are opened, recursively.

A member of an archive is named ``outer.zip!inner/file.json`` so a rejected record's position
says exactly where it is. A damaged compressed stream ends its source early with a recorded
error (the records before the damage are kept) instead of raising from deep inside a reader.
"""

from __future__ import annotations

import gzip
import io
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from kestrel.errors import SourceError
from kestrel.ingest.base import Source

ZIP_MAGIC = b"PK\x03\x04"
GZIP_MAGIC = b"\x1f\x8b"

Opener = Callable[[], IO[bytes]]
_STEP = 16 * 1024


class GuardedStream(io.RawIOBase):
    """A read-only stream that turns a decompression error into end-of-stream, keeping the
    error text so the caller can report the truncation."""

    def __init__(
        self,
        inner: IO[bytes] | gzip.GzipFile,
        name: str,
        errors: dict[str, str],
        under: IO[bytes] | None = None,
    ) -> None:
        self._inner = inner
        self._under = under  # the file a decompressor reads from, closed with it
        self._name = name
        self._errors = errors
        self._failed = False

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        """Read in small steps: a decompressor that fails mid-call loses that call's output,
        so small steps keep all but the last few KiB before the damage."""
        want = size if size >= 0 else 1 << 62
        pieces: list[bytes] = []
        got = 0
        while got < want and not self._failed:
            try:
                piece = self._inner.read(min(_STEP, want - got))
            except (EOFError, OSError, zlib.error, zipfile.BadZipFile) as exc:
                self._errors[self._name] = f"damaged compressed stream: {exc}"
                self._failed = True
                break
            if not piece:
                break
            pieces.append(piece)
            got += len(piece)
        return b"".join(pieces)

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._inner.close()
        if self._under is not None:
            self._under.close()
        super().close()


def sources(path: Path, errors: dict[str, str]) -> Iterator[Source]:
    """Every readable source under ``path``; damaged streams record into ``errors``."""
    if path.is_dir():
        for child in sorted(p for p in path.rglob("*") if p.is_file()):
            yield from sources(child, errors)
        return
    if not path.exists():
        raise SourceError(f"{path}: no such file or folder")
    with path.open("rb") as f:
        magic = f.read(4)
    name = str(path)
    if magic.startswith(ZIP_MAGIC):
        yield from _zip_sources(name, lambda: path.open("rb"), errors)
    elif magic.startswith(GZIP_MAGIC):
        yield _gzip_source(name, lambda: path.open("rb"), errors)
    else:
        yield Source(name, lambda: path.open("rb"), path.stat().st_size)


def _gzip_source(name: str, opener: Opener, errors: dict[str, str]) -> Source:
    def open_() -> IO[bytes]:
        under = opener()
        stream = GuardedStream(gzip.GzipFile(fileobj=under), name, errors, under)
        return io.BufferedReader(stream, 1024 * 1024)

    return Source(name, open_)


def _zip_sources(name: str, opener: Opener, errors: dict[str, str]) -> Iterator[Source]:
    stream = opener()
    try:
        archive = zipfile.ZipFile(stream)
    except (zipfile.BadZipFile, OSError) as exc:
        stream.close()
        raise SourceError(f"{name}: unreadable zip archive ({exc})") from exc
    with stream, archive:
        for info in sorted(archive.infolist(), key=lambda i: i.filename):
            if info.is_dir():
                continue
            yield from _member_sources(f"{name}!{info.filename}", archive, info, errors)


def _member_sources(
    name: str, archive: zipfile.ZipFile, info: zipfile.ZipInfo, errors: dict[str, str]
) -> Iterator[Source]:
    def open_member() -> IO[bytes]:
        stream = GuardedStream(archive.open(info), name, errors)
        return io.BufferedReader(stream, 1024 * 1024)

    with open_member() as f:
        magic = f.read(4)
    if magic.startswith(ZIP_MAGIC):
        data = archive.read(info)  # nested zip: random access needs the bytes
        yield from _zip_sources(name, lambda: io.BytesIO(data), errors)
    elif magic.startswith(GZIP_MAGIC):
        yield _gzip_source(name, open_member, errors)
    else:
        yield Source(name, open_member, info.file_size)
