"""Frozen value classes for the hunt AST, declared like dataclasses but built without `exec`.

`kestrel.hunt.ast` had 29 ``@dataclass(frozen=True, slots=True)`` classes; the decorator
compiles an ``__init__``, ``__repr__``, ``__eq__``, ``__hash__``, ``__setattr__`` and
``__delattr__`` from source text for each, which was ≈ 20-35 ms of every `kestrel hunt`
start-up (measured: bench/RESULTS.md, Hunt). A `Node` subclass is declared the same way
(annotated fields, defaults, ``field(default=…, compare=False)``) and gets the same behaviour
from generic methods here: keyword or positional construction with defaults, equality and
hashing over the compared fields of the same class, a dataclass-style ``repr``, and
`FrozenInstanceError` on assignment. Type checkers read the declarations as dataclasses
(`typing.dataclass_transform`), so constructor calls stay checked.
"""

from __future__ import annotations

import inspect
from dataclasses import FrozenInstanceError
from typing import Any, ClassVar, dataclass_transform

_MISSING: Any = object()


class _Field:
    """What `field` returns: a default and whether the field takes part in ``==``."""

    __slots__ = ("compare", "default")

    def __init__(self, default: Any, compare: bool) -> None:
        self.default = default
        self.compare = compare


def field(*, default: Any, compare: bool = True) -> Any:
    """A field's default, and ``compare=False`` to leave it out of ``==`` and ``hash``."""
    return _Field(default, compare)


@dataclass_transform(eq_default=True, frozen_default=True, field_specifiers=(field,))
class Node:
    """Base of the AST classes: fields in declaration order, frozen, compared by value."""

    __slots__ = ()
    _fields: ClassVar[tuple[str, ...]] = ()
    _compared: ClassVar[tuple[str, ...]] = ()
    _defaults: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        names = tuple(inspect.get_annotations(cls))
        defaults: dict[str, Any] = {}
        compared: list[str] = []
        for name in names:
            value = cls.__dict__.get(name, _MISSING)
            compare = True
            if isinstance(value, _Field):
                compare, value = value.compare, value.default
                setattr(cls, name, value)
            if value is not _MISSING:
                defaults[name] = value
            elif defaults:
                raise TypeError(f"{cls.__name__}.{name}: a field without a default after one with")
            if compare:
                compared.append(name)
        cls._fields, cls._compared, cls._defaults = names, tuple(compared), defaults

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        fields = self._fields
        if len(args) > len(fields):
            raise TypeError(f"{type(self).__name__}() takes {len(fields)} arguments")
        values = dict(zip(fields, args, strict=False))
        for name, value in kwargs.items():
            if name in values or name not in fields:
                raise TypeError(f"{type(self).__name__}() got a bad or repeated argument {name!r}")
            values[name] = value
        for name in fields:
            if name not in values:
                if name not in self._defaults:
                    raise TypeError(f"{type(self).__name__}() missing argument {name!r}")
                values[name] = self._defaults[name]
        self.__dict__.update(values)

    def _key(self) -> tuple[Any, ...]:
        return tuple(self.__dict__[name] for name in self._compared)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Node)
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={self.__dict__[name]!r}" for name in self._fields)
        return f"{type(self).__qualname__}({shown})"

    def __setattr__(self, name: str, value: object) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")


def fields(node: Node) -> tuple[str, ...]:
    """The node's field names, in declaration order."""
    return node._fields
