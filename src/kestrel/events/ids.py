"""Deterministic event ids.

The id is derived from the record's content only, never from the file it came in or its
position, so re-ingesting the same data (in another file, another archive, another order)
adds nothing.
"""

from __future__ import annotations

from hashlib import blake2b


def event_id(source: str, canonical: bytes) -> str:
    """Return the 128-bit BLAKE2b of ``source`` and the record's canonical bytes, as hex.

    ``canonical`` is the record as the reader keeps it in ``raw`` (JSON with insignificant
    whitespace removed), so records that differ only in indentation share an id.

    >>> a = event_id("cloudtrail", b'{"eventName":"DeleteTrail"}')
    >>> a == event_id("cloudtrail", b'{"eventName":"DeleteTrail"}'), len(a)
    (True, 32)
    >>> a == event_id("agent", b'{"eventName":"DeleteTrail"}')
    False
    """
    h = blake2b(canonical, digest_size=16, person=source.encode()[:16])
    return h.hexdigest()
