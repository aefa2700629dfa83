"""`kestrel shell`: hunt interactively, one statement at a time, with history and completion.

Built on the standard library's ``readline`` (no extra dependency, and enough for a line
editor with a history file and Tab completion): the history is kept in
``~/.kestrel/hunt_history``; Tab completes keywords, entity types, variable names and, after
``var.`` or ``ATTR``, the variable's attributes. Each line runs as soon as it parses; a line
ending with a backslash continues on the next. Errors are printed and the shell goes on.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType

from kestrel.errors import KestrelError
from kestrel.hunt.display import Display
from kestrel.hunt.entities import TYPE_ALIASES
from kestrel.hunt.parser import KEYWORDS
from kestrel.hunt.session import Session

HISTORY_LINES = 2000
_WORD = re.compile(r"[\w.:-]*$")


def candidates(session: Session, line: str) -> list[str]:
    """What Tab may complete the last word of ``line`` to (case kept for keywords)."""
    word = _WORD.search(line)
    prefix = word.group(0) if word else ""
    if "." in prefix and session.is_variable(prefix.split(".", 1)[0]):
        var = prefix.split(".", 1)[0]
        return [f"{var}.{a}" for a in session.info(var).visible if f"{var}.{a}".startswith(prefix)]
    words: list[str] = [*KEYWORDS, *TYPE_ALIASES, *session.variables]
    if re.search(r"\bATTR\b", line, re.IGNORECASE):
        words += [a for v in session.variables.values() for a in v.visible]
    upper = prefix.upper()
    return sorted(
        {w for w in words if w.startswith(prefix) or (w.isupper() and w.startswith(upper))}
    )


class Shell:
    """A read-run-show loop over one session. ``show`` renders what a statement displays."""

    def __init__(
        self, session: Session, show: Callable[[list[Display]], None], err: Callable[[str], None]
    ) -> None:
        self.session = session
        self.show = show
        self.err = err

    def run_line(self, text: str) -> None:
        """Run one statement (or several); errors are reported, not raised."""
        if not text.strip():
            return
        try:
            self.show(self.session.execute(text))
        except KestrelError as exc:
            self.err(f"error: {exc}")

    def loop(self, lines: Iterable[str]) -> None:
        """Run statements until the input ends or a line says ``exit`` / ``quit``."""
        pending = ""
        for line in lines:
            if line.strip().lower() in ("exit", "quit", r"\q"):
                return
            if line.endswith("\\"):
                pending += line[:-1] + "\n"
                continue
            self.run_line(pending + line)
            pending = ""
        self.run_line(pending)


def prompts(history: Path, complete: Callable[[str], list[str]]) -> Iterable[str]:
    """Lines typed at a ``hunt>`` prompt, with readline history and completion."""
    readline = _readline(history, complete)
    try:
        while True:
            try:
                line = input("hunt> ")
            except EOFError:
                return
            if readline is not None and line.strip():
                readline.add_history(line)  # also when stdin is not a terminal
            yield line
    finally:
        if readline is not None:
            history.parent.mkdir(parents=True, exist_ok=True)
            readline.set_history_length(HISTORY_LINES)
            readline.write_history_file(str(history))


def _readline(history: Path, complete: Callable[[str], list[str]]) -> ModuleType | None:
    """Set up readline (absent on some platforms: then plain ``input``)."""
    try:
        import readline
    except ImportError:
        return None
    if history.exists():
        readline.read_history_file(str(history))
    readline.set_auto_history(False)
    readline.set_completer_delims(" \t\n=,()[]'\"")

    def completer(_text: str, state: int) -> str | None:
        found = complete(readline.get_line_buffer()[: readline.get_endidx()])
        return found[state] if state < len(found) else None

    readline.set_completer(completer)
    readline.parse_and_bind("tab: complete")
    return readline
