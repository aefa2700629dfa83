"""Scanning files and folders with YARA and IOC feeds: the engine behind `kestrel scan`.

The same pieces serve the pipeline: `YaraScanner` on each file's bytes, and the IOC
matching of `IocEnricher` on one row per file (path, name, MD5 / SHA-1 / SHA-256), so a file
scanned here and a file event in a batch are judged by the same code.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath

import polars as pl

from kestrel.enrich.files import FileReader, FileTooLargeError, LocalFiles
from kestrel.enrich.ioc import IocEnricher
from kestrel.enrich.yara import YaraScanner


@dataclass(frozen=True, slots=True)
class ScanHit:
    """One thing that matched a file: a YARA rule or an IOC indicator."""

    path: str
    kind: str  # "yara" or "ioc"
    name: str  # namespace:rule, or the indicator
    detail: str  # matched strings with offsets, or indicator type + source + field


@dataclass
class ScanReport:
    """All hits, plus the files scanned and those that could not be."""

    hits: list[ScanHit] = field(default_factory=list)
    scanned: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)


def walk(paths: Sequence[Path]) -> Iterator[Path]:
    """Every regular file under ``paths`` (files as given, folders recursively, sorted)."""
    for p in paths:
        if p.is_dir():
            yield from (f for f in sorted(p.rglob("*")) if f.is_file())
        else:
            yield p


def scan_paths(
    paths: Sequence[Path],
    scanner: YaraScanner | None = None,
    iocs: IocEnricher | None = None,
    files: FileReader | None = None,
) -> ScanReport:
    """Scan each file's content with YARA and its hashes and name with the IOC feed."""
    reader = files or LocalFiles()
    report = ScanReport()
    rows: list[dict[str, str]] = []
    limit = scanner.max_bytes if scanner else 256 * 1024 * 1024
    for path in walk(paths):
        name = str(path)
        try:
            data = reader.read(name, limit)
        except (OSError, FileTooLargeError) as exc:
            report.errors.append((name, str(exc)))
            continue
        report.scanned += 1
        rows.append(_file_row(name, data))
        if scanner is not None:
            report.hits += _yara_hits(scanner, name, data, report)
    if iocs is not None and rows:
        report.hits += _ioc_hits(iocs, rows)
    report.hits.sort(key=lambda h: (h.path, h.kind, h.name))
    return report


def _file_row(path: str, data: bytes) -> dict[str, str]:
    return {
        "file_path": path,
        "file_name": PurePath(path).name,
        "file_md5": hashlib.md5(data, usedforsecurity=False).hexdigest(),
        "file_sha1": hashlib.sha1(data, usedforsecurity=False).hexdigest(),
        "file_sha256": hashlib.sha256(data).hexdigest(),
    }


def _yara_hits(scanner: YaraScanner, path: str, data: bytes, report: ScanReport) -> list[ScanHit]:
    import yara

    try:
        found = scanner.scan_bytes(data, path)
    except yara.Error as exc:  # TimeoutError is a yara.Error
        report.errors.append((path, f"yara: {exc}"))
        return []
    return [ScanHit(path, "yara", h.qualified, _strings(h.strings)) for h in found]


def _strings(strings: tuple[tuple[str, int, bytes], ...]) -> str:
    return ", ".join(f"{i}@{o}={d[:40]!r}" for i, o, d in strings)


def _ioc_hits(iocs: IocEnricher, rows: list[dict[str, str]]) -> list[ScanHit]:
    frame = pl.DataFrame(rows)
    hits = iocs.matches(frame)
    paths = frame.get_column("file_path")
    return [
        ScanHit(paths[row], "ioc", ind, f"{typ} from {src} ({fld})")
        for row, ind, typ, src, fld, _ in hits.iter_rows()
    ]
