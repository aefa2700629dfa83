"""YARA over file *content*: compile rule folders and zips, scan bytes, cache by hash.

The ancestor matched rules against the path string, so a rule looking for a marker inside a
file never fired on the file and fired on any file *named* like the marker. Here the scanner
is only ever given the file's bytes (`YaraScanner.scan_bytes`); the name reaches the rules
only through the documented externals (``filename``, ``filepath``, ``extension``), which
signature-base rules use to narrow a match, never as the data scanned.

Compiling: every ``.yar`` / ``.yara`` file is a namespace named by its relative path. If the
whole set does not compile, each file is compiled alone to find the ones that fail; those
are reported (`CompiledRules.failures`) and skipped, the rest run.
"""

from __future__ import annotations

import hashlib
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any, ClassVar

import polars as pl
import pyarrow as pa
import yara

from kestrel.enrich.base import set_columns
from kestrel.enrich.cache import Cache, MemoryCache
from kestrel.enrich.files import DEFAULT_MAX_BYTES, FileReader, FileTooLargeError, LocalFiles
from kestrel.errors import ConfigError
from kestrel.events import Batch

# The externals signature-base rules use (README of shared/datasets): strings and filemode.
EXTERNALS: dict[str, str | int] = {
    "filename": "", "filepath": "", "extension": "", "filetype": "", "owner": "", "filemode": 0,
}  # fmt: skip
RULE_SUFFIXES = (".yar", ".yara")


@dataclass(frozen=True, slots=True)
class RuleFailure:
    """A rule file that did not compile, and why."""

    path: str
    error: str


@dataclass(frozen=True)
class CompiledRules:
    """Compiled rules plus the report of what was compiled and what was skipped."""

    rules: Any  # yara.Rules (no type information published)
    files: int
    rule_count: int
    failures: tuple[RuleFailure, ...] = ()


def compile_rules(
    paths: Sequence[Path], externals: dict[str, str | int] | None = None
) -> CompiledRules:
    """Compile every rule file under ``paths`` (files, folders or zips)."""
    ext = dict(EXTERNALS if externals is None else externals)
    sources = dict(_rule_sources(paths))
    if not sources:
        raise ConfigError(f"no YARA rule files (*.yar, *.yara) under {[str(p) for p in paths]}")
    failures: list[RuleFailure] = []
    try:
        rules = yara.compile(sources=sources, externals=ext)
    except yara.Error:
        failures = _failing(sources, ext)
        bad = {f.path for f in failures}
        rules = yara.compile(sources={k: v for k, v in sources.items() if k not in bad},
                             externals=ext)  # fmt: skip
    count = sum(1 for _ in rules)
    return CompiledRules(rules, len(sources) - len(failures), count, tuple(failures))


def _failing(sources: dict[str, str], ext: dict[str, str | int]) -> list[RuleFailure]:
    out = []
    for name, text in sources.items():
        try:
            yara.compile(source=text, externals=ext)
        except yara.Error as exc:
            out.append(RuleFailure(name, str(exc)))
    return out


def _rule_sources(paths: Sequence[Path]) -> Iterator[tuple[str, str]]:
    """``(namespace, text)`` for each rule file; namespace = path relative to its root."""
    for root in paths:
        if root.suffix.lower() == ".zip":
            yield from _zip_sources(root)
        elif root.is_dir():
            for p in sorted(root.rglob("*")):
                if p.suffix.lower() in RULE_SUFFIXES and p.is_file():
                    yield p.relative_to(root).as_posix(), p.read_text("utf-8", "replace")
        elif root.is_file():
            yield root.name, root.read_text("utf-8", "replace")
        else:
            raise ConfigError(f"YARA rules not found: {root}")


def _zip_sources(path: Path) -> Iterator[tuple[str, str]]:
    with zipfile.ZipFile(path) as zf:
        for name in sorted(zf.namelist()):
            if name.lower().endswith(RULE_SUFFIXES):
                yield name, zf.read(name).decode("utf-8", "replace")


@dataclass(frozen=True, slots=True)
class YaraHit:
    """One rule that matched, with the matched strings as (identifier, offset, data)."""

    rule: str
    namespace: str
    tags: tuple[str, ...]
    strings: tuple[tuple[str, int, bytes], ...]

    @property
    def qualified(self) -> str:
        """``namespace:rule``, unique across rule files."""
        return f"{self.namespace}:{self.rule}"


@dataclass(frozen=True, slots=True)
class ScanResult:
    """What scanning one file gave: its hash, the hits, or why it was not scanned."""

    path: str
    sha256: str | None
    size: int | None
    hits: tuple[YaraHit, ...] = ()
    error: str | None = None


def name_externals(path: str) -> dict[str, str | int]:
    """The file-name externals for one file (never its content)."""
    pure = PurePath(path.replace("\\", "/"))
    return {"filename": pure.name, "filepath": str(pure.parent),
            "extension": pure.suffix.lower()}  # fmt: skip


@dataclass
class YaraScanner:
    """Scans bytes with compiled rules, with a size limit, a timeout and a cache by hash."""

    compiled: CompiledRules
    max_bytes: int = DEFAULT_MAX_BYTES
    timeout_s: int = 10
    max_strings: int = 8  # matched instances kept per string identifier (for reports)
    cache: Cache = field(default_factory=MemoryCache)

    def scan_bytes(self, data: bytes, path: str = "") -> tuple[YaraHit, ...]:
        """Hits of the rules on ``data``; cached by SHA-256 + the name externals."""
        ext = name_externals(path) if path else {}
        key = hashlib.sha256(data).hexdigest() + "|" + "|".join(str(v) for v in ext.values())
        cached = self.cache.get(key)
        if cached is not None:
            return tuple(_hit_from_json(h) for h in cached)
        found = self.compiled.rules.match(data=data, externals=ext, timeout=self.timeout_s)
        hits = tuple(self._hit(m) for m in found)
        self.cache.put(key, [_hit_to_json(h) for h in hits])
        return hits

    def scan_file(self, path: str, files: FileReader | None = None) -> ScanResult:
        """Read and scan one file; unreadable, too large or timed out → ``error``."""
        try:
            data = (files or LocalFiles()).read(path, self.max_bytes)
        except (OSError, FileTooLargeError) as exc:
            return ScanResult(path, None, None, error=f"not scanned: {exc}")
        digest = hashlib.sha256(data).hexdigest()
        try:
            hits = self.scan_bytes(data, path)
        except yara.TimeoutError:
            return ScanResult(path, digest, len(data), error=f"timeout after {self.timeout_s}s")
        except yara.Error as exc:
            return ScanResult(path, digest, len(data), error=f"scan failed: {exc}")
        return ScanResult(path, digest, len(data), hits)

    def _hit(self, match: Any) -> YaraHit:
        strings = tuple(
            (s.identifier, i.offset, bytes(i.matched_data))
            for s in match.strings
            for i in s.instances[: self.max_strings]
        )
        return YaraHit(match.rule, match.namespace, tuple(match.tags), strings)


def _hit_to_json(h: YaraHit) -> list[Any]:
    return [h.rule, h.namespace, list(h.tags), [[i, o, d.hex()] for i, o, d in h.strings]]


def _hit_from_json(v: list[Any]) -> YaraHit:
    strings = tuple((i, int(o), bytes.fromhex(d)) for i, o, d in v[3])
    return YaraHit(v[0], v[1], tuple(v[2]), strings)


# Which column names the file whose content an event's YARA scan reads, per class.
FILE_COLUMN: dict[str, str] = {
    "file": "file_path",
    "module": "file_path",
    "process": "process_path",
}
_NO_CONTENT = ("delete", "terminate")  # the file is gone or the event says nothing new


@dataclass
class YaraEnricher:
    """Fills ``yara_rules`` for file / process events whose file can be read."""

    name: ClassVar[str] = "yara"
    columns: ClassVar[tuple[str, ...]] = ("yara_rules",)

    scanner: YaraScanner
    files: FileReader = field(default_factory=LocalFiles)
    recheck_s: float = 60.0  # how long an unreadable path is left alone
    clock: Callable[[], float] = time.monotonic
    _seen: MemoryCache = field(default_factory=MemoryCache, init=False, repr=False)
    _unreadable: dict[str, float] = field(default_factory=dict, init=False, repr=False)

    def enrich(self, batch: Batch) -> Batch:
        """One scan per unique path in the batch; a file whose size, mtime and inode did not
        change since it was scanned is neither read nor hashed again (`_rules`)."""
        paths = _paths(batch)
        rules = {p: self._rules(p) for p in paths.drop_nulls().unique().to_list()}
        found = {p: r for p, r in rules.items() if r}
        values = paths.replace_strict(found, default=None, return_dtype=pl.String)
        return set_columns(batch, {"yara_rules": values.to_arrow().cast(pa.string())})

    def _rules(self, path: str) -> str | None:
        """The rules matching ``path``'s content. Why the fingerprint: the same binaries are
        named batch after batch, and reading + hashing them dominated the stage."""
        now = self.clock()
        if now - self._unreadable.get(path, -1e18) < self.recheck_s:
            return None
        mark = _fingerprint(self.files, path)
        seen = self._seen.get(path)
        if mark is not None and seen is not None and seen[0] == list(mark):
            return seen[1]  # type: ignore[no-any-return]
        result = self.scanner.scan_file(path, self.files)
        rules = ",".join(h.qualified for h in result.hits) or None
        if result.error is not None and result.sha256 is None:
            self._unreadable[path] = now
        elif mark is not None:
            self._seen.put(path, [list(mark), rules])
        return rules


def _fingerprint(files: FileReader, path: str) -> tuple[int, ...] | None:
    """The reader's cheap identity of a file (size, mtime, inode), when it has one."""
    stat = getattr(files, "fingerprint", None)
    return stat(path) if callable(stat) else None


def _paths(batch: Batch) -> pl.Series:
    frame = pl.from_arrow(batch.select(["class", "activity", "file_path", "process_path"]))
    assert isinstance(frame, pl.DataFrame)
    column = pl.col("class").replace_strict(FILE_COLUMN, default=None, return_dtype=pl.String)
    gone = pl.col("activity").fill_null("").is_in(list(_NO_CONTENT))
    path = (
        pl.when(column == "file_path")
        .then(pl.col("file_path"))
        .when(column == "process_path")
        .then(pl.col("process_path"))
    )
    return frame.select(pl.when(gone).then(None).otherwise(path).alias("p")).get_column("p")
