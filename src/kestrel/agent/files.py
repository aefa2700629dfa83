"""File create / modify / delete / move under configured folders (recursive), with
watchdog (inotify on Linux, ReadDirectoryChangesW on Windows, FSEvents on macOS).

Events arrive on watchdog's thread and are queued; `FileCollector.poll` drains them on the
agent's loop, folding repeated modifications of one file into one event per poll (an
editor or a logger writes many times a second) and hashing files that still exist.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from kestrel.agent.collectors import HashCache, Observation

_ACTIONS = {"created": "create", "modified": "modify", "deleted": "delete", "moved": "move"}


class _Queue(FileSystemEventHandler):
    """Collects watchdog events (files only) under a lock."""

    def __init__(self, ignore: Sequence[Path], clock: Callable[[], float]) -> None:
        self.ignore = [str(p) for p in ignore]
        self.clock = clock
        self.lock = threading.Lock()
        self.items: list[tuple[str, str, str | None, float]] = []

    def on_any_event(self, event: FileSystemEvent) -> None:
        action = _ACTIONS.get(event.event_type)
        if action is None or event.is_directory:
            return
        path = _text(event.dest_path if action == "move" else event.src_path)
        if any(path.startswith(prefix) for prefix in self.ignore):
            return
        old = _text(event.src_path) if action == "move" else None
        with self.lock:
            self.items.append((action, path, old, self.clock()))


def _text(path: str | bytes) -> str:
    return path.decode("utf-8", "replace") if isinstance(path, bytes) else path


@dataclass(slots=True)
class FileCollector:
    """Watches ``folders``; ``ignore`` holds paths whose events are dropped (the agent's
    own spool, so sending events does not make more events)."""

    folders: Sequence[Path]
    ignore: Sequence[Path] = ()
    hashes: HashCache = field(default_factory=lambda: HashCache(limit=32 * 1024 * 1024))
    clock: Callable[[], float] = time.time
    _queue: _Queue | None = None
    _observer: Any = None

    def start(self) -> None:
        """Begin watching (a no-op without folders)."""
        self._queue = _Queue([p.resolve() for p in self.ignore], self.clock)
        if not self.folders:
            return
        self._observer = Observer()
        for folder in self.folders:
            self._observer.schedule(self._queue, str(folder), recursive=True)
        self._observer.start()

    def stop(self) -> None:
        """Stop watching and wait for watchdog's thread."""
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)

    def poll(self) -> list[Observation]:
        if self._queue is None:
            return []
        with self._queue.lock:
            items, self._queue.items = self._queue.items, []
        return [self._observe(*item) for item in _fold(items)]

    def _observe(self, action: str, path: str, old: str | None, at: float) -> Observation:
        payload: dict[str, Any] = {"action": action, "path": path}
        if old is not None:
            payload["old_path"] = old
        if action != "delete":
            digest = self.hashes.sha256(path)
            if digest:
                payload["sha256"] = digest
        return Observation("file", payload, at)


def _fold(
    items: list[tuple[str, str, str | None, float]],
) -> list[tuple[str, str, str | None, float]]:
    """Drop a modify that follows a create or modify of the same path in this batch."""
    out: list[tuple[str, str, str | None, float]] = []
    last_action: dict[str, str] = {}
    for item in items:
        action, path = item[0], item[1]
        if action == "modify" and last_action.get(path) in ("create", "modify"):
            continue
        last_action[path] = action
        out.append(item)
    return out
