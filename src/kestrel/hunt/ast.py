"""The hunt AST: what a hunt-flow says, as frozen value classes with source positions.

The parser makes these, the compiler turns them into SQL and `format` turns them back into
text. Every node carries a `Span`, so an error found after parsing (an unknown variable, an
attribute the entity does not have) still points at the line and column the hunter wrote.
Names are kept as written (``parent_ref.name``, ``process:pid``); resolving them to columns
is the compiler's job, so the same AST serves Kestrel 1.x (STIX) and 2.x (OCSF) spellings.
"""

from __future__ import annotations

from typing import TypeAlias

from kestrel.hunt.node import Node, field


class Span(Node):
    """Where a node starts in the hunt text: 1-based line and column."""

    line: int = 0
    col: int = 0

    def __str__(self) -> str:
        return f"line {self.line}, column {self.col}"


NOWHERE = Span()

# -- values ------------------------------------------------------------------------------------

Scalar: TypeAlias = str | int | float | bool | None


class Literal(Node):
    """A constant: string, number, boolean or NULL."""

    value: Scalar
    span: Span = field(default=NOWHERE, compare=False)


class Reference(Node):
    """``var.attr`` (every value of an attribute of a variable) or a bare word.

    A bare word (``attr`` is None) is Kestrel's unquoted string: ``name = cmd.exe`` is
    ``name = 'cmd.exe'`` unless a variable of that name exists.
    """

    variable: str
    attr: str | None
    span: Span = field(default=NOWHERE, compare=False)


class ListValue(Node):
    """``(a, b, c)`` or ``[a, b, c]``."""

    items: tuple[Literal | Reference, ...]
    span: Span = field(default=NOWHERE, compare=False)


Value: TypeAlias = Literal | Reference | ListValue

# -- WHERE expressions -------------------------------------------------------------------------


class Comparison(Node):
    """``attr op value``; ``op`` is upper-case (``=``, ``NOT IN``, ``IS NOT`` ...)."""

    attr: str
    op: str
    value: Value
    span: Span = field(default=NOWHERE, compare=False)


class BoolOp(Node):
    """``left AND right`` or ``left OR right``."""

    op: str
    left: Expr
    right: Expr
    span: Span = field(default=NOWHERE, compare=False)


class SigmaMatch(Node):
    """``SIGMA 'rule id or path'``: the entities of the events a Sigma rule matches."""

    rule: str
    span: Span = field(default=NOWHERE, compare=False)


Expr: TypeAlias = Comparison | BoolOp | SigmaMatch


class Where(Node):
    """A WHERE clause; ``stix`` records the bracketed STIX-pattern form for `format`."""

    expr: Expr
    stix: bool = False
    span: Span = field(default=NOWHERE, compare=False)


# -- clauses -----------------------------------------------------------------------------------


class TimeRange(Node):
    """``START t'…' STOP t'…'`` (ISO strings) or ``LAST n unit`` (unit: days, hours …)."""

    start: str | None = None
    stop: str | None = None
    last: int | None = None
    unit: str | None = None
    span: Span = field(default=NOWHERE, compare=False)


class VarExpr(Node):
    """A variable with an optional transform and DISP / filter clauses."""

    variable: str
    transform: str | None = None
    where: Where | None = None
    attrs: tuple[str, ...] = ()
    sort: str | None = None
    direction: str | None = None
    limit: int | None = None
    offset: int | None = None
    span: Span = field(default=NOWHERE, compare=False)


class GroupKey(Node):
    """A GROUP BY key: an attribute, or ``BIN(attr, size [unit])``."""

    attr: str
    bin_size: int | None = None
    bin_unit: str | None = None


class Aggregation(Node):
    """``FUNC(attr) [AS alias]``; func is upper-case."""

    func: str
    attr: str
    alias: str | None = None


# -- commands ----------------------------------------------------------------------------------


class Get(Node):
    """``GET type [FROM source, …] [WHERE …] [time range] [LIMIT n]``."""

    entity_type: str
    sources: tuple[str, ...] = ()
    where: Where | None = None
    time: TimeRange | None = None
    limit: int | None = None
    span: Span = field(default=NOWHERE, compare=False)


class Find(Node):
    """``FIND type RELATION [BY] var [WHERE …] [time range] [LIMIT n]``."""

    entity_type: str
    relation: str
    reversed: bool
    variable: str
    where: Where | None = None
    time: TimeRange | None = None
    limit: int | None = None
    span: Span = field(default=NOWHERE, compare=False)


class Group(Node):
    """``GROUP var BY keys [WITH aggregations]``."""

    variable: str
    keys: tuple[GroupKey, ...]
    aggs: tuple[Aggregation, ...] = ()
    span: Span = field(default=NOWHERE, compare=False)


class Join(Node):
    """``JOIN left, right [BY left_attr, right_attr]``."""

    left: str
    right: str
    left_attr: str | None = None
    right_attr: str | None = None
    span: Span = field(default=NOWHERE, compare=False)


class Load(Node):
    """``LOAD path [AS type]``."""

    path: str
    entity_type: str | None = None
    span: Span = field(default=NOWHERE, compare=False)


class New(Node):
    """``NEW [type] [...]``: rows given inline (strings or flat JSON objects)."""

    entity_type: str | None
    rows: tuple[tuple[tuple[str, Scalar], ...], ...]
    strings: bool = False
    span: Span = field(default=NOWHERE, compare=False)


class Sort(Node):
    """``SORT var BY attr [ASC|DESC]``; no direction means descending, as in Kestrel."""

    variable: str
    attr: str
    direction: str | None = None
    span: Span = field(default=NOWHERE, compare=False)


class Copy(Node):
    """``COPY var``: an independent copy of a variable."""

    variable: str
    span: Span = field(default=NOWHERE, compare=False)


class Merge(Node):
    """``a + b + …``: the union of variables of one entity type."""

    variables: tuple[str, ...]
    span: Span = field(default=NOWHERE, compare=False)


class Apply(Node):
    """``APPLY uri ON var, … [WITH k=v, …]``."""

    uri: str
    variables: tuple[str, ...]
    args: tuple[tuple[str, Value], ...] = ()
    span: Span = field(default=NOWHERE, compare=False)


class Disp(Node):
    """``DISP var-expression``."""

    expr: VarExpr
    span: Span = field(default=NOWHERE, compare=False)


class Info(Node):
    """``INFO var``."""

    variable: str
    span: Span = field(default=NOWHERE, compare=False)


class Save(Node):
    """``SAVE var TO path``."""

    variable: str
    path: str
    span: Span = field(default=NOWHERE, compare=False)


class Describe(Node):
    """``DESCRIBE var.attr``."""

    variable: str
    attr: str
    span: Span = field(default=NOWHERE, compare=False)


class Explain(Node):
    """``EXPLAIN var``: the SQL that made the variable."""

    variable: str
    span: Span = field(default=NOWHERE, compare=False)


Command: TypeAlias = (
    Get | Find | Group | Join | Load | New | Sort | Copy | Merge | VarExpr
    | Apply | Disp | Info | Save | Describe | Explain
)  # fmt: skip
# The names a FROM gives the Kestrel store itself (compared in lower case).
STORE_NAMES = ("store", "kestrel", "kestrel://store")

VALUE_COMMANDS = (Get, Find, Group, Join, Load, New, Sort, Copy, Merge, VarExpr)


class Statement(Node):
    """One statement: a command, with the variable it assigns (None for DISP, INFO …)."""

    command: Command
    target: str | None = None
    span: Span = field(default=NOWHERE, compare=False)


class Hunt(Node):
    """A whole hunt-flow (a huntbook or one `-e` string)."""

    statements: tuple[Statement, ...]
