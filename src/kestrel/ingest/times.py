"""Source timestamps that are not ISO-8601 strings, turned into ones.

Readers hand ISO strings to `kestrel.events.parse_times`, which parses a whole column in one
cast and reports the values it cannot read. Agents and metric exporters also write epoch
numbers; this module turns those into ISO strings first, so every reader keeps one time path
and one rejection rule ("unparseable time ...").
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Magnitude thresholds that tell the epoch unit apart. 1e11 seconds is the year 5138 and
# 1e11 milliseconds is 1973, so any present-day value falls clearly on one side.
_MS_FROM = 1e11
_US_FROM = 1e14
_NS_FROM = 1e17


# The microseconds from the epoch that `datetime` can show (years 1 to 9999).
_MIN_US = (datetime.min.replace(tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)
_MAX_US = (datetime.max.replace(tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)


def epoch_micros(value: float) -> int | None:
    """An epoch number (seconds, milliseconds, microseconds or nanoseconds, told apart by
    magnitude) as whole microseconds from the epoch; None when `datetime` cannot hold it
    (out of range, inf, nan). The one unit rule: `epoch_to_iso` and the agent reader's
    one-cast time column both use it."""
    size = abs(value)
    micros = (
        value / 1000 if size >= _NS_FROM
        else value if size >= _US_FROM
        else value * 1000 if size >= _MS_FROM
        else value * 1_000_000
    )  # fmt: skip
    try:
        whole = round(micros)
    except (OverflowError, ValueError):  # inf, nan
        return None
    return whole if _MIN_US <= whole <= _MAX_US else None


def epoch_to_iso(value: float) -> str:
    """An epoch number (see `epoch_micros`) as an ISO-8601 UTC string.

    A value out of range comes back as its own text, which no ISO parser accepts, so the
    record is rejected as an unparseable time like any other bad timestamp.

    >>> epoch_to_iso(1714564800), epoch_to_iso(1714564800123)
    ('2024-05-01T12:00:00+00:00', '2024-05-01T12:00:00.123000+00:00')
    >>> epoch_to_iso(1e300)
    '1e+300'
    """
    micros = epoch_micros(value)
    if micros is None:
        return repr(value)
    return (_EPOCH + timedelta(microseconds=micros)).isoformat()


def to_iso(value: str | float | None) -> str | None:
    """A timestamp as the source gave it (ISO string or epoch number) as an ISO string."""
    if value is None or isinstance(value, str):
        return value
    return epoch_to_iso(value)
