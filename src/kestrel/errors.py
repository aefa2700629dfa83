"""The exceptions Kestrel raises, one tree with one root.

::

    KestrelError
      ConfigError     bad settings or arguments
      SourceError     a whole source Kestrel cannot read: unknown format, unreadable archive
      StoreError      the store cannot be opened or written

Bad *records* are not exceptions: a reader turns each into a `Rejected` row with its source
position and goes on. Only a source that cannot be read at all raises `SourceError`. The CLI
maps every `KestrelError` to one line and a non-zero exit code; a traceback is a bug.
"""

from __future__ import annotations


class KestrelError(Exception):
    """Root of every error Kestrel raises on purpose."""


class ConfigError(KestrelError):
    """Settings or arguments that cannot work."""


class SourceError(KestrelError):
    """A source that cannot be read at all (unknown format, unreadable archive, missing file)."""


class StoreError(KestrelError):
    """The store cannot be opened, migrated or written."""
