"""IOC feed readers: plain lists, CSV, STIX 2.1 bundles, MISP JSON exports, signature-base zip.

Every reader returns an `IocFeed`: exact indicators as one Polars frame (type, value, source,
description) plus file-name regular expressions (the LOKI format of Neo23x0's signature-base).
Values are normalised here once (hashes and domains lower-cased, URLs stripped) so matching is
a plain join. Lines that are not indicators are counted in ``skipped``, never raised.
"""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import polars as pl

from kestrel.enrich.indicators import FilenamePattern, IocFeed, classify, indicator_frame
from kestrel.errors import SourceError

Row = tuple[str, str, str]  # (type, value, description)

# STIX 2.1 pattern comparisons: object path → indicator type.
_STIX_PATHS: dict[str, str] = {
    "file:hashes.md5": "md5",
    "file:hashes.sha-1": "sha1",
    "file:hashes.sha1": "sha1",
    "file:hashes.sha-256": "sha256",
    "file:hashes.sha256": "sha256",
    "file:name": "filename",
    "ipv4-addr:value": "ip",
    "ipv6-addr:value": "ip",
    "domain-name:value": "domain",
    "url:value": "url",
}
_STIX_TERM = re.compile(r"([a-z0-9-]+:[a-z0-9_.'\-]+)\s*=\s*'((?:[^'\\]|\\.)*)'", re.IGNORECASE)

# MISP attribute types → indicator type; `a|b` composites give one indicator per part.
_MISP_TYPES: dict[str, str] = {
    "md5": "md5", "sha1": "sha1", "sha256": "sha256", "ip-src": "ip", "ip-dst": "ip",
    "domain": "domain", "hostname": "domain", "url": "url", "uri": "url", "link": "url",
    "filename": "filename",
}  # fmt: skip


def load_feed(path: Path, source: str | None = None) -> IocFeed:
    """Read one feed, its format told from the name and the first bytes."""
    name = source or path.name
    if not path.is_file():
        raise SourceError(f"IOC feed not found: {path}")
    if path.suffix.lower() == ".zip":
        return load_signature_base(path, name)
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix.lower() == ".json" or text.lstrip().startswith("{"):
        return _load_json(text, name, path)
    if path.suffix.lower() == ".csv":
        return load_csv(text, name)
    return load_plain(text, name)


def _load_json(text: str, name: str, path: Path) -> IocFeed:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SourceError(f"{path}: not JSON ({exc})") from exc
    if isinstance(doc, dict) and doc.get("type") == "bundle":
        return load_stix(doc, name)
    if isinstance(doc, dict) and ("Event" in doc or "response" in doc):
        return load_misp(doc, name)
    raise SourceError(f"{path}: JSON that is neither a STIX bundle nor a MISP export")


def load_plain(text: str, source: str) -> IocFeed:
    """One indicator per line, ``value[;comment]``; ``#`` lines are comments (LOKI style).

    >>> load_plain("# c\\n1.2.3.4;c2\\nevil.com\\n", "t").indicators["type"].to_list()
    ['ip', 'domain']
    """
    rows, skipped = _classified(_plain_lines(text))
    return IocFeed(indicator_frame(rows, source), skipped=skipped)


def _plain_lines(text: str) -> Iterator[tuple[str, str]]:
    """``(value, description)``; a comment line becomes the description of what follows."""
    note = ""
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("#"):
            note = line.lstrip("# ").strip()
            continue
        value, _, comment = line.partition(";")
        yield value.strip(), comment.strip() or note


def _classified(pairs: Iterable[tuple[str, str]]) -> tuple[list[Row], int]:
    rows: list[Row] = []
    skipped = 0
    for value, description in pairs:
        kind = classify(value)
        if kind is None:
            skipped += 1
        else:
            rows.append((kind, value, description))
    return rows, skipped


def load_csv(text: str, source: str) -> IocFeed:
    """CSV with a header naming ``indicator`` (or ``value``, ``ioc``), optional ``type`` and
    ``description`` (or ``comment``); without such a header, the first column is the value."""
    reader = csv.DictReader(io.StringIO(text))
    fields = {f.lower().strip(): f for f in reader.fieldnames or ()}
    key = next((fields[k] for k in ("indicator", "value", "ioc") if k in fields), None)
    if key is None:
        return load_plain("\n".join(r[0] for r in csv.reader(io.StringIO(text)) if r), source)
    kind_key, note_key = fields.get("type"), fields.get("description") or fields.get("comment")
    rows: list[Row] = []
    skipped = 0
    for rec in reader:
        value = (rec.get(key) or "").strip()
        kind = _csv_kind(rec.get(kind_key) if kind_key else None, value)
        if kind is None:
            skipped += 1
            continue
        rows.append((kind, value, (rec.get(note_key) or "") if note_key else ""))
    return IocFeed(indicator_frame(rows, source), skipped=skipped)


def _csv_kind(given: str | None, value: str) -> str | None:
    if given:
        kind = given.strip().lower().replace("-", "")
        kind = {"ipv4": "ip", "ipv6": "ip", "hostname": "domain", "file": "filename"}.get(
            kind, kind
        )
        if kind in {"md5", "sha1", "sha256", "ip", "cidr", "domain", "url", "filename"}:
            return "cidr" if kind == "ip" and "/" in value else kind
    return classify(value) if value else None


def load_stix(bundle: dict[str, Any], source: str) -> IocFeed:
    """STIX 2.1 ``indicator`` objects with ``pattern_type`` stix: each ``path = 'value'``
    comparison in the pattern is one indicator (an OR of hashes gives several)."""
    rows: list[Row] = []
    skipped = 0
    for obj in bundle.get("objects", ()):
        if obj.get("type") != "indicator":
            continue
        if obj.get("pattern_type", "stix") != "stix":  # snort, yara, sigma ... patterns
            skipped += 1
            continue
        terms = _STIX_TERM.findall(obj.get("pattern", ""))
        found = [(_STIX_PATHS.get(p.lower().replace("'", "")), v) for p, v in terms]
        skipped += sum(1 for kind, _ in found if kind is None) + (not terms)
        note = obj.get("name") or obj.get("description") or obj.get("id", "")
        rows += [(_ip_or_cidr(k, v), v, note) for k, v in found if k is not None]
    return IocFeed(indicator_frame(rows, source), skipped=skipped)


def _ip_or_cidr(kind: str, value: str) -> str:
    return "cidr" if kind == "ip" and "/" in value else kind


def load_misp(doc: dict[str, Any], source: str) -> IocFeed:
    """A MISP event export (``{"Event": ...}`` or ``{"response": [{"Event": ...}]}``):
    attributes of the event and of its objects; ``to_ids: false`` attributes are skipped."""
    events = [doc["Event"]] if "Event" in doc else [r["Event"] for r in doc.get("response", ())]
    rows: list[Row] = []
    skipped = 0
    for event in events:
        for attr in _misp_attributes(event):
            got = _misp_rows(attr, event.get("info", ""))
            skipped += not got
            rows += got
    return IocFeed(indicator_frame(rows, source), skipped=skipped)


def _misp_attributes(event: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from event.get("Attribute", ())
    for obj in event.get("Object", ()):
        yield from obj.get("Attribute", ())


def _misp_rows(attr: dict[str, Any], info: str) -> list[Row]:
    if attr.get("to_ids") is False:
        return []
    types = str(attr.get("type", "")).split("|")
    values = str(attr.get("value", "")).split("|")
    note = attr.get("comment") or info
    out: list[Row] = []
    for t, v in zip(types, values, strict=False):
        kind = _MISP_TYPES.get(t)
        if kind is not None and v:
            out.append((_ip_or_cidr(kind, v), v, note))
    return out


def load_signature_base(path: Path, source: str) -> IocFeed:
    """Neo23x0 signature-base ``iocs/`` (zip or folder): hash-iocs, c2-iocs (plain lists)
    and filename-iocs (``regex;score[;false-positive regex]``)."""
    texts = _iocs_texts(path)
    rows: list[Row] = []
    skipped = 0
    for name in ("hash-iocs.txt", "c2-iocs.txt"):
        got, bad = _classified(_plain_lines(texts.get(name, "")))
        rows += got
        skipped += bad
    patterns, bad = parse_filename_iocs(texts.get("filename-iocs.txt", ""), source)
    return IocFeed(indicator_frame(rows, source), patterns, skipped + bad)


def _iocs_texts(path: Path) -> dict[str, str]:
    if path.is_dir():
        return {p.name: p.read_text("utf-8", "replace") for p in path.rglob("*.txt")}
    try:
        with zipfile.ZipFile(path) as zf:
            return {
                Path(n).name: zf.read(n).decode("utf-8", "replace")
                for n in zf.namelist()
                if n.endswith(".txt")
            }
    except zipfile.BadZipFile as exc:
        raise SourceError(f"{path}: not a readable zip ({exc})") from exc


def parse_filename_iocs(text: str, source: str) -> tuple[list[FilenamePattern], int]:
    """LOKI filename IOCs, ``regex;score[;false-positive regex]`` with ``#`` comment lines
    naming the case; a regex that Python cannot compile is counted as skipped."""
    out: list[FilenamePattern] = []
    skipped = 0
    note = ""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("#") or not line:
            note = line.lstrip("# ").strip() if line else note
            continue
        try:
            out.append(FilenamePattern.of(line.split(";"), source, note))
        except (re.error, ValueError):
            skipped += 1
    return out, skipped


def merge_feeds(feeds: Iterable[IocFeed]) -> IocFeed:
    """One feed from several; the same (type, value) from two sources is kept from both."""
    feeds = list(feeds)
    frames = [f.indicators for f in feeds]
    merged = pl.concat(frames) if frames else indicator_frame([], "")
    patterns = [p for f in feeds for p in f.patterns]
    return IocFeed(merged, patterns, sum(f.skipped for f in feeds))
