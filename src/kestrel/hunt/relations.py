"""FIND relations as data: which role of the input entity to match in the events, and
which roles of the output entity to project from the events that matched.

``FIND out RELATION [BY] in`` reads "out RELATION in" (``FIND process CREATED procs``: the
processes that created procs, i.e. their parents) or, with BY, "out is RELATION BY in"
(``FIND network-traffic CREATED BY procs``: connections the processes made). Kestrel 1.x and
2.x use these words; PARENT OF / CHILD OF are plain-English spellings of the process tree.
Any two types are also LINKED when they appear in the same event.
"""

from __future__ import annotations

from dataclasses import dataclass

from kestrel.hunt.entities import ENTITY_TYPES


@dataclass(frozen=True, slots=True)
class Relation:
    """Match ``input_roles`` of the input variable; project ``output_roles``."""

    input_roles: tuple[str, ...]
    output_roles: tuple[str, ...]
    activity: str | None = None  # events must have this activity (file CREATED / DELETED …)


# (output type, relation, input type, reversed with BY)
Key = tuple[str, str, str, bool]

_PROC = "process"
_NET = "network-traffic"
_FILE_VERBS = {"CREATED": "create", "DELETED": "delete", "READ": "read", "UPDATED": "modify",
               "WRITTEN": "modify", "LOADED": "load", "ACCESSED": None, "LINKED": None}  # fmt: skip

RELATIONS: dict[Key, Relation] = {
    # the process tree (identity: GUID, else host + pid)
    (_PROC, "CREATED", _PROC, False): Relation(("actor",), ("parent",)),
    (_PROC, "CREATED", _PROC, True): Relation(("parent",), ("actor",)),
    (_PROC, "PARENT", _PROC, False): Relation(("actor",), ("parent",)),
    (_PROC, "PARENT", _PROC, True): Relation(("actor",), ("parent",)),  # PARENT OF v
    (_PROC, "CHILD", _PROC, True): Relation(("parent",), ("actor",)),  # CHILD OF v
    # processes and their connections
    (_NET, "CREATED", _PROC, True): Relation(("actor",), ("connection",)),
    (_PROC, "CREATED", _NET, False): Relation(("connection",), ("actor",)),
    (_NET, "OPENED", _PROC, True): Relation(("actor",), ("connection",)),
    # connections and their addresses
    ("ipv4-addr", "CREATED", _NET, False): Relation(("connection",), ("src",)),
    ("ipv4-addr", "ACCEPTED", _NET, False): Relation(("connection",), ("dst",)),
    (_NET, "CREATED", "ipv4-addr", True): Relation(("src",), ("connection",)),
    (_NET, "ACCEPTED", "ipv4-addr", True): Relation(("dst",), ("connection",)),
    # users
    ("user-account", "OWNED", _PROC, False): Relation(("actor",), ("actor",)),
    ("user-account", "CREATED", _PROC, False): Relation(("actor",), ("actor",)),
    (_PROC, "OWNED", "user-account", True): Relation(("actor",), ("actor",)),
    (_PROC, "CREATED", "user-account", True): Relation(("actor",), ("actor",)),
    # cloud: principals and the API calls they made
    ("cloud-principal", "CREATED", "cloud-api-call", False): Relation(("call",), ("actor",)),
    ("cloud-api-call", "CREATED", "cloud-principal", True): Relation(("actor",), ("call",)),
}
for _verb, _activity in _FILE_VERBS.items():
    RELATIONS[("file", _verb, _PROC, True)] = Relation(("actor",), ("file",), _activity)
    RELATIONS[(_PROC, _verb, "file", False)] = Relation(("file",), ("actor",), _activity)


def lookup(output: str, relation: str, input_: str, reversed_: bool) -> Relation | None:
    """The relation, or LINKED (same event, every role) when it is LINKED; else None."""
    found = RELATIONS.get((output, relation, input_, reversed_))
    if found is None and relation == "LINKED":
        found = Relation(
            tuple(r.name for r in ENTITY_TYPES[input_].primary),
            tuple(r.name for r in ENTITY_TYPES[output].primary),
        )
    return found


def known(output: str, input_: str) -> list[str]:
    """Relation words defined between two types (for "did you mean")."""
    words = {
        rel + (" BY" if rev else "")
        for (o, rel, i, rev) in RELATIONS
        if o == output and i == input_
    }
    return sorted(words | {"LINKED"})
