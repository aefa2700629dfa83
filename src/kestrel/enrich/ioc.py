"""IOC matching as joins: every event column that can hold an indicator is looked up in the
feed with one hash-set membership test and a join on the few rows that hit.

Why not a loop: a batch has 20,000 rows and a feed 10,000+ indicators; `is_in` against the
indicator keys is one pass in Rust per column, and only hitting rows are joined to fetch the
indicator's value and source. Per-value work in Python is limited to host names never seen before
(parent-domain suffixes, remembered in a `FrameMemo`) and unique paths (file-name regexes
through one RE2 set).

Each event keeps its best match: hash, then IP, CIDR, domain, URL, file name, file-name
pattern (the order of `FAMILIES`); ``ioc_field`` says which column matched.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import polars as pl
import pyarrow as pa

from kestrel.enrich.base import fill_nulls
from kestrel.enrich.cache import FrameMemo
from kestrel.enrich.indicators import FilenamePattern, IocFeed
from kestrel.events import Batch

# family → the event columns it is matched against (schema names).
FAMILIES: dict[str, tuple[str, ...]] = {
    "hash": ("process_sha256", "file_sha256", "process_sha1", "file_sha1", "process_md5",
             "file_md5"),
    "ip": ("dst_ip", "src_ip"),
    "cidr": ("dst_ip", "src_ip"),
    "domain": ("dst_hostname", "dns_query"),
    "url": ("process_cmdline", "script_text"),
    "filename": ("process_name", "file_name"),
    "filename_regex": ("process_path", "file_path"),
}  # fmt: skip
_LOWER = {"domain", "filename"}
MATCHED_COLUMNS = tuple(dict.fromkeys(c for cols in FAMILIES.values() for c in cols))
HITS_SCHEMA: dict[str, pl.DataType] = {
    "row": pl.UInt32(),
    "ioc_indicator": pl.String(),
    "ioc_type": pl.String(),
    "ioc_source": pl.String(),
    "ioc_field": pl.String(),
    "prio": pl.Int32(),
}
OUT_COLUMNS = ("ioc_indicator", "ioc_type", "ioc_source", "ioc_field")


@dataclass
class IocEnricher:
    """Fills ``ioc_indicator``, ``ioc_type``, ``ioc_source``, ``ioc_field`` from a feed."""

    name: ClassVar[str] = "ioc"
    columns: ClassVar[tuple[str, ...]] = OUT_COLUMNS

    feed: IocFeed
    _by_family: dict[str, pl.DataFrame] = field(init=False, repr=False)
    _regexes: _PatternSet = field(init=False, repr=False)
    _domains: set[str] = field(init=False, repr=False)
    _hosts: FrameMemo = field(init=False, repr=False)

    def __post_init__(self) -> None:
        table = self.feed.indicators.unique(subset=["family", "key"], keep="first")
        self._by_family = {str(f): t for (f,), t in table.group_by("family")}
        self._regexes = _PatternSet(self.feed.patterns)
        domains = self._by_family.get("domain")
        self._domains = set(domains["key"].to_list()) if domains is not None else set()
        self._hosts = FrameMemo("value", {"value": pl.String, "key": pl.String})

    def enrich(self, batch: Batch) -> Batch:
        """The batch with the IOC columns filled where an indicator matched. Only the
        matched columns are converted to Polars (the whole batch, ``raw`` included, took
        longer to convert than all the matching)."""
        present = [c for c in MATCHED_COLUMNS if c in batch.schema.names]
        hits = self.matches(pl.from_arrow(batch.select(present)))  # type: ignore[arg-type]
        return fill_nulls(batch, _scatter(hits, batch.num_rows))

    def matches(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Every (row, indicator) hit of a frame of events, best first per row."""
        parts = [
            part
            for prio, family in enumerate(FAMILIES)
            for part in self._family_hits(frame, family, prio)
        ]
        if not parts:
            return pl.DataFrame(schema=HITS_SCHEMA)
        return pl.concat(parts).sort(["row", "prio"])

    def _family_hits(self, frame: pl.DataFrame, family: str, prio: int) -> list[pl.DataFrame]:
        # all-null columns (file hashes on process events, ...) cost nothing to skip
        cols = [c for c in FAMILIES[family] if c in frame.columns and _any(frame, c)]
        if family == "filename_regex":
            return [self._regexes.hits(frame, c, prio) for c in cols]
        table = self._by_family.get(family)
        if table is None:
            return []
        finder = self._domain if family == "domain" else _FINDERS[family]
        return [finder(frame, c, table).pipe(_label, c, prio) for c in cols]

    def _domain(self, frame: pl.DataFrame, column: str, table: pl.DataFrame) -> pl.DataFrame:
        """A host name matches an indicator for itself or any parent domain; each name is
        resolved in Python once ever (`FrameMemo`), then a batch is one join."""
        hosts = frame.get_column(column)
        new = self._hosts.missing(hosts).to_list()
        self._hosts.add([(h, _parent_in(h.lower().rstrip("."), self._domains)) for h in new])
        mapped = self._hosts.join(hosts).get_column("key")
        return _join_rows(mapped.is_not_null(), mapped, table)


def _any(frame: pl.DataFrame, column: str) -> bool:
    return frame.get_column(column).null_count() < frame.height


def _exact(frame: pl.DataFrame, column: str, table: pl.DataFrame) -> pl.DataFrame:
    """Rows whose value equals an indicator key: `is_in`, then a join on the hits only."""
    values = frame.get_column(column)
    if table["family"][0] in _LOWER:
        values = values.str.to_lowercase()
    mask = values.is_in(table["key"].implode())
    return _join_rows(mask, values, table)


def _join_rows(mask: pl.Series, keys: pl.Series, table: pl.DataFrame) -> pl.DataFrame:
    rows = pl.DataFrame({"row": pl.int_range(0, len(mask), dtype=pl.UInt32, eager=True),
                         "key": keys}).filter(mask.fill_null(False))  # fmt: skip
    return rows.join(table, on="key", how="inner")


def _parent_in(host: str, keys: set[str]) -> str | None:
    labels = host.split(".")
    for i in range(len(labels) - 1):
        candidate = ".".join(labels[i:])
        if candidate in keys:
            return candidate
    return None


def _cidr(frame: pl.DataFrame, column: str, table: pl.DataFrame) -> pl.DataFrame:
    """IPv4 addresses inside an indicator network: one masked join per prefix length."""
    ips = frame.get_column(column)
    uniq = ips.drop_nulls().unique()
    as_int = _ipv4_int(uniq)
    nets = _cidr_table(table)
    found: dict[str, str] = {}
    for plen in nets["plen"].unique().sort(descending=True).to_list():
        shift = 32 - int(plen)
        cand = pl.DataFrame({"ip": uniq, "net": as_int // (1 << shift)}).with_columns(
            pl.lit(plen, pl.Int64).alias("plen")
        )
        got = cand.join(nets, on=["plen", "net"], how="inner")
        for ip, key in got.select("ip", "key").iter_rows():
            found.setdefault(ip, key)
    if not found:
        return table.clear().with_columns(pl.lit(0, pl.UInt32).alias("row"))
    mapped = ips.replace_strict(found, default=None, return_dtype=pl.String)
    return _join_rows(mapped.is_not_null(), mapped, table)


def _ipv4_int(ips: pl.Series) -> pl.Series:
    """Dotted quads as integers (null for anything else: IPv6 is matched exactly only)."""
    parts = ips.str.split_exact(".", 3).struct.unnest()
    octets = [parts[c].cast(pl.Int64, strict=False) for c in parts.columns]
    ok = pl.all_horizontal([(o >= 0) & (o <= 255) for o in octets])
    value = octets[0] * 16777216 + octets[1] * 65536 + octets[2] * 256 + octets[3]
    return pl.select(pl.when(ok).then(value).cast(pl.Int64)).to_series()


def _cidr_table(table: pl.DataFrame) -> pl.DataFrame:
    v4 = table.filter(~pl.col("key").str.contains(":"))
    net = v4["key"].str.split("/")
    plen = net.list.get(1).cast(pl.Int64)
    base = _ipv4_int(net.list.get(0))
    return pl.DataFrame({"key": v4["key"], "plen": plen, "net": base // (2 ** (32 - plen))})


def _url(frame: pl.DataFrame, column: str, table: pl.DataFrame) -> pl.DataFrame:
    """URLs that appear inside a command line or script (Aho-Corasick over the column)."""
    text = frame.get_column(column)
    keys = table["key"].to_list()
    mask = text.str.contains_any(keys)
    if not mask.any():
        return table.clear().with_columns(pl.lit(0, pl.UInt32).alias("row"))
    first = text.str.extract_many(keys).list.first()
    return _join_rows(mask, first, table)


_FINDERS = {"hash": _exact, "ip": _exact, "filename": _exact, "cidr": _cidr,
            "url": _url}  # fmt: skip


def _label(hits: pl.DataFrame, column: str, prio: int) -> pl.DataFrame:
    return hits.select(
        pl.col("row").cast(pl.UInt32),
        pl.col("value").alias("ioc_indicator"),
        pl.col("type").alias("ioc_type"),
        pl.col("source").alias("ioc_source"),
        pl.lit(column).alias("ioc_field"),
        pl.lit(prio, pl.Int32).alias("prio"),
    )


def _scatter(hits: pl.DataFrame, n: int) -> dict[str, pa.Array]:
    """The first hit of each row, as full-length columns (null where nothing matched)."""
    best = hits.unique(subset="row", keep="first", maintain_order=True)
    full = pl.DataFrame({"row": pl.int_range(0, n, dtype=pl.UInt32, eager=True)}).join(
        best, on="row", how="left"
    )
    return {c: full.get_column(c).to_arrow() for c in OUT_COLUMNS}


class _PatternSet:
    """LOKI file-name regexes as one RE2 set, searched once per *unique* path."""

    def __init__(self, patterns: Sequence[FilenamePattern]) -> None:
        import re2

        self.patterns: list[FilenamePattern] = []
        self._set = re2.Set.SearchSet()
        for p in patterns:
            try:
                self._set.Add(p.regex)
            except re2.error:  # RE2 lacks look-around; those few patterns are not matched
                continue
            self.patterns.append(p)
        self._set.Compile()
        self._excludes = {
            i: re.compile(p.exclude) for i, p in enumerate(self.patterns) if p.exclude
        }

    def first(self, path: str) -> int | None:
        """Index of the highest-scoring pattern matching ``path`` (after exclusions)."""
        found = [i for i in self._set.Match(path) or () if not self._excluded(i, path)]
        return max(found, key=lambda i: self.patterns[i].score) if found else None

    def _excluded(self, i: int, path: str) -> bool:
        rx = self._excludes.get(i)
        return rx is not None and rx.search(path) is not None

    def hits(self, frame: pl.DataFrame, column: str, prio: int) -> pl.DataFrame:
        """Rows whose path matches a pattern, labelled like the other families."""
        if not self.patterns:
            return pl.DataFrame(schema=HITS_SCHEMA)
        paths = frame.get_column(column)
        found = {p: self.first(p) for p in paths.drop_nulls().unique().to_list()}
        table = self._table({p: i for p, i in found.items() if i is not None})
        mapped = paths.replace_strict(table["key"], table["key"], default=None)
        return _join_rows(mapped.is_not_null(), mapped, table).pipe(_label, column, prio)

    def _table(self, found: dict[str, int]) -> pl.DataFrame:
        pats = [self.patterns[i] for i in found.values()]
        return pl.DataFrame(
            {"key": list(found), "value": [p.regex for p in pats],
             "type": ["filename"] * len(pats), "source": [p.source for p in pats]},
            schema={"key": pl.String, "value": pl.String, "type": pl.String, "source": pl.String},
        )  # fmt: skip
