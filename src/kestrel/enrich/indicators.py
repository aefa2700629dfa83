"""Indicator values and their types: the feed's in-memory form, shared by readers and matching.

`IocFeed.indicators` is a Polars frame ``(type, value, key, family, source, description)``:
``key`` is the normalised value that matching joins on, ``family`` groups the types that
can match the same event columns (a sha256 never joins a domain column).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import polars as pl

INDICATOR_TYPES = ("md5", "sha1", "sha256", "ip", "cidr", "domain", "url", "filename")
FAMILY: dict[str, str] = {
    "md5": "hash", "sha1": "hash", "sha256": "hash", "ip": "ip", "cidr": "cidr",
    "domain": "domain", "url": "url", "filename": "filename",
}  # fmt: skip
_HEX = re.compile(r"^[0-9a-fA-F]+$")
_HASH_BY_LEN = {32: "md5", 40: "sha1", 64: "sha256"}
_DOMAIN = re.compile(r"^(?=.{4,253}$)([a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_FILENAME = re.compile(r"^[^\\/:*?\"<>|\s][^\\/:*?\"<>|]*\.[A-Za-z0-9]{1,8}$")
FRAME_SCHEMA: dict[str, pl.DataType] = {
    "type": pl.String(),
    "value": pl.String(),
    "key": pl.String(),
    "family": pl.String(),
    "source": pl.String(),
    "description": pl.String(),
}


def classify(value: str) -> str | None:
    """The indicator type of a bare value, or None when it is none of them.

    >>> [classify(v) for v in ["d41d8cd98f00b204e9800998ecf8427e", "10.0.0.0/8", "a.evil.com",
    ...  "http://x.io/p", "mimikatz.exe", "hello"]]
    ['md5', 'cidr', 'domain', 'url', 'filename', None]
    """
    v = value.strip()
    if _HEX.match(v) and len(v) in _HASH_BY_LEN:
        return _HASH_BY_LEN[len(v)]
    if "://" in v:
        return "url"
    try:
        net = ipaddress.ip_network(v, strict=False)
    except ValueError:
        pass
    else:
        return "cidr" if "/" in v and net.num_addresses > 1 else "ip"
    if _DOMAIN.match(v.lower()) and not _FILENAME_EXT.search(v.lower()):
        return "domain"
    return "filename" if _FILENAME.match(v) else None


# Names that look like domains but end in an executable or document extension are files.
_FILENAME_EXT = re.compile(r"\.(exe|dll|sys|ps1|bat|vbs|js|hta|scr|doc|docx|xls|zip|rar|tmp)$")


def normalise(kind: str, value: str) -> str:
    """The join key: lower-case for everything but URLs (whose path is case-sensitive)
    and file names (lower-cased: Windows names are case-insensitive); IPs canonical."""
    v = value.strip()
    if kind == "url":
        return v
    if kind in ("ip", "cidr"):
        try:
            return str(
                ipaddress.ip_network(v, strict=False) if kind == "cidr" else ipaddress.ip_address(v)
            )
        except ValueError:
            return v
    return v.lower().rstrip(".")


def indicator_frame(rows: Sequence[tuple[str, str, str]], source: str) -> pl.DataFrame:
    """Rows ``(type, value, description)`` of one source as the feed's frame."""
    data = {
        "type": [r[0] for r in rows],
        "value": [r[1].strip() for r in rows],
        "key": [normalise(r[0], r[1]) for r in rows],
        "family": [FAMILY[r[0]] for r in rows],
        "source": [source] * len(rows),
        "description": [r[2] for r in rows],
    }
    return pl.DataFrame(data, schema=FRAME_SCHEMA)


@dataclass(frozen=True, slots=True)
class FilenamePattern:
    """A LOKI file-name IOC: a regex over the full path, a score, and a false-positive regex."""

    regex: str
    score: int
    exclude: str | None
    source: str
    description: str = ""

    @classmethod
    def of(cls, parts: Sequence[str], source: str, description: str = "") -> FilenamePattern:
        """From ``[regex, score?, exclude?]``; raises re.error / ValueError when unusable."""
        regex = parts[0].strip()
        re.compile(regex)
        score = int(parts[1]) if len(parts) > 1 and parts[1].strip() else 50
        exclude = parts[2].strip() if len(parts) > 2 and parts[2].strip() else None
        if exclude:
            re.compile(exclude)
        return cls(regex, score, exclude, source, description)


@dataclass(frozen=True, slots=True)
class IocFeed:
    """Indicators from one or more feeds, ready to match."""

    indicators: pl.DataFrame
    patterns: list[FilenamePattern] = field(default_factory=list)
    skipped: int = 0  # lines that were not indicators

    def __len__(self) -> int:
        return self.indicators.height + len(self.patterns)

    def counts(self) -> dict[str, int]:
        """Indicators per type, file-name patterns as ``filename_regex``."""
        got = dict(self.indicators.group_by("type").len().iter_rows())
        return {**{str(k): int(v) for k, v in got.items()}, "filename_regex": len(self.patterns)}
