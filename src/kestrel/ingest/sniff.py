"""Format auto-detection from the first bytes of a (decompressed) source.

Detection looks at structure first (EVTX magic, Prometheus text, CSV headers) and then at
the keys of the first JSON record. It never guesses: a source that matches nothing is
reported as unknown, with the formats the user can name with ``--format``.
"""

from __future__ import annotations

import msgspec

from kestrel.ingest.base import Source

EVTX_MAGIC = b"ElfFile\x00"
_HEAD = 64 * 1024

# (format, keys that must all be present in the first JSON record), first match wins.
JSON_SIGNATURES: tuple[tuple[str, frozenset[str]], ...] = (
    ("agent", frozenset({"agent_id", "event_type", "payload"})),
    ("cloudtrail", frozenset({"Records"})),
    ("cloudtrail", frozenset({"eventSource", "eventName"})),
    ("winlog-json", frozenset({"Event"})),
    ("winlog-json", frozenset({"winlog"})),
    ("winlog-json", frozenset({"EventID", "Channel"})),
    ("winlog-json", frozenset({"EventID", "SourceName"})),
    ("metrics", frozenset({"gpu_util"})),
    ("metrics", frozenset({"power_watts"})),
    ("metrics", frozenset({"metric_name", "metric_value"})),
)


def sniff(source: Source) -> str | None:
    """The format name of ``source``, or None when it is not recognised."""
    with source.open() as stream:
        head = stream.read(_HEAD)
    if head.startswith(EVTX_MAGIC):
        return "evtx"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text[:1] in (b"{", b"["):
        return _sniff_json(text)
    return _sniff_text(text)


def _sniff_json(text: bytes) -> str | None:
    keys = _first_record_keys(text)
    for fmt, required in JSON_SIGNATURES:
        if required <= keys:
            return fmt
    return None


def _first_record_keys(text: bytes) -> set[str]:
    """Keys of the first JSON object (of the first line, or of the first array element),
    falling back to every quoted key in the head when the head cuts a record short."""
    line = text.split(b"\n", 1)[0]
    for candidate in (line, text):
        try:
            value = msgspec.json.decode(candidate)
        except (msgspec.DecodeError, UnicodeDecodeError):  # bytes that are not UTF-8 too
            continue
        if isinstance(value, list) and value and isinstance(value[0], dict):
            return set(value[0])
        if isinstance(value, dict):
            return set(value)
    return _quoted_keys(text)


def _quoted_keys(text: bytes) -> set[str]:
    keys: set[str] = set()
    for piece in text.split(b'":')[:-1]:
        start = piece.rfind(b'"')
        if start >= 0:
            keys.add(piece[start + 1 :].decode("utf-8", errors="replace"))
    return keys


def _sniff_text(text: bytes) -> str | None:
    first = text.split(b"\n", 1)[0].decode("utf-8", errors="replace").strip()
    if first.startswith(("# HELP", "# TYPE", "DCGM_FI_", "# kestrel-")):
        return "metrics"
    if "utilization.gpu" in first or (first.startswith("timestamp, ") and "gpu" in first):
        return "metrics"
    return None
