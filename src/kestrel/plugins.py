"""Registries: the built-in dict of a stage plus third-party entry points."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


def load(group: str, builtins: Mapping[str, T]) -> dict[str, T]:
    """Builtins plus entry points in group ``kestrel.<group>``.

    A broken plugin is logged and skipped: a third-party import error must not stop ingest.
    """
    found = dict(builtins)
    for ep in entry_points(group=f"kestrel.{group}"):
        if ep.name in found:
            log.warning("plugin %s/%s ignored: name already taken", group, ep.name)
            continue
        try:
            found[ep.name] = ep.load()
        except Exception as exc:
            log.warning("plugin %s/%s failed to load: %s", group, ep.name, exc)
    return found
