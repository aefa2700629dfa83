"""The exceptions Kestrel raises, one tree with one root.

::

    KestrelError
      ConfigError     bad settings or arguments
      SourceError     a whole source Kestrel cannot read: unknown format, unreadable archive
      StoreError      the store cannot be opened or written
      HuntError       a hunt that cannot run (hunt language)
        HuntSyntaxError   malformed statement: line, column, what was expected, a hint
        HuntNameError     unknown variable, entity type, relation or attribute ("did you mean")
      PlaybookError   a playbook or response policy that does not validate: file and field
      ActionError     a response action refused by policy, rate-limited, or failed

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


class HuntError(KestrelError):
    """A hunt that cannot run: the message names the statement's line and column."""

    def __init__(self, message: str, line: int = 0, col: int = 0, hint: str = "") -> None:
        self.message, self.line, self.col, self.hint = message, line, col, hint
        where = f"line {line}, column {col}: " if line else ""
        super().__init__(where + message + (f" ({hint})" if hint else ""))


class HuntSyntaxError(HuntError):
    """A malformed statement; ``expected`` lists what the parser could have taken there."""

    def __init__(
        self, message: str, line: int, col: int, expected: tuple[str, ...] = (), hint: str = ""
    ) -> None:
        self.expected = expected
        super().__init__(message, line, col, hint)


class HuntNameError(HuntError):
    """An unknown variable, entity type, relation or attribute, with a "did you mean"."""


class PlaybookError(KestrelError):
    """A playbook or response policy that does not validate; the message names the file and
    the field (``steps.0.action``) so the author knows what to fix."""


class ActionError(KestrelError):
    """A response action that failed or was refused; the executor audits it and applies the
    playbook's ``on_error``."""
