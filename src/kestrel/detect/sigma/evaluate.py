"""Evaluating the candidate rules of one logsource over its candidate events, as one plan.

Running each rule as its own Polars query costs about a millisecond of fixed overhead per rule
and batch, whatever the number of rows: with a thousand rules that is the whole budget. So the
rules of a logsource are evaluated together: one evaluation frame over the union of their
candidate rows (`frame.py`: source fields extracted and columns lower-cased once), then one
``select`` with one ``row.filter(rule).implode()`` per rule, which Polars runs as one plan.
What is left is a fixed cost per expression node (~10-50 us, whatever the rows), which is why
`compile.py` keeps rules small: one operation per list of values, ``|`` / ``&`` chains.

A rule in a wide select sees every row of the frame, not only its own candidates. That is
correct (the prefilter only ever removes events a rule cannot match) but costs rules x rows,
so rules are put into *jobs* by how many candidates they have (powers of four): a rule with
ten candidates is not evaluated over fifty thousand rows because another rule needed them.
A job whose rules would still do far more row work that way than over their own candidates
(attack-dense data: every event a candidate of a few rules, each rule of few events) runs
*sliced* instead: its candidate pairs gathered into one long frame sorted by rule, each rule
filtering its own slice, all slices collected as one plan.

That fixed cost per node is still ~0.5 ms per rule, most of a micro-batch. So a rule with at
most `PY_CANDIDATES` candidates is not planned at all: its Python predicate (`pyeval.py`,
compiled from the same condition tree, reading the same frame columns) checks each of its
(rule, event) pairs, a few microseconds each. Should a value be one the predicate cannot
judge exactly as Polars would, the rule goes back to Polars for that batch.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from kestrel.detect.sigma.compile import CompiledRule
from kestrel.detect.sigma.frame import ROW, build_frame
from kestrel.detect.sigma.prefilter import PAIR_SCHEMA, RULE
from kestrel.detect.sigma.pyeval import FallbackError

SMALL_JOB_ROWS = 1024  # rules with fewer candidates than this all share one job
SLICED_WASTE = 8  # run sliced when rules x rows exceeds the candidate pairs this many times
PY_CANDIDATES = 256  # a rule with at most this many candidates runs as a Python predicate
GUARD_PAIRS = 256  # a rule with this many candidates checks its guard before decoding `raw`
RAW_SUBSET_ROWS = 256  # above this many frame rows, source fields only where rules read them
_JOB = "__job"
_HIT = "__hit"


@dataclass(frozen=True, slots=True)
class Job:
    """Rules evaluated together, over the union of their candidate rows (sorted)."""

    rules: list[int]
    rows: pl.Series
    pairs: pl.DataFrame | None = None  # (rule, row), sorted; None: every rule on every row

    @property
    def sliced(self) -> bool:
        """Whether the job runs each rule on its own candidates (see the module docstring)."""
        if self.pairs is None or len(self.rows) < SMALL_JOB_ROWS:
            return False
        return len(self.rules) * len(self.rows) > SLICED_WASTE * self.pairs.height


def jobs(pairs: pl.DataFrame, unfiltered: list[int], all_rows: pl.Series) -> list[Job]:
    """The jobs for one logsource: candidate pairs bucketed by rule size, plus the rules that
    need every row of the logsource (``unfiltered``) over ``all_rows``."""
    out = [Job(unfiltered, all_rows.sort())] if unfiltered and len(all_rows) else []
    if pairs.is_empty():
        return out
    if pairs.height < SMALL_JOB_ROWS:  # every rule is small: one job, no bucketing plan
        return [*out, _one_job(pairs)]
    size = pl.len().over(RULE)
    bucket = pl.when(size < SMALL_JOB_ROWS).then(0).otherwise(size.log(4).floor().cast(pl.Int32))
    tagged = pairs.with_columns(bucket.alias(_JOB))
    for (_,), part in tagged.group_by(_JOB, maintain_order=True):
        rules = part.get_column(RULE).unique().sort().to_list()
        pairs_ = part.select(RULE, ROW).sort(RULE, ROW)
        out.append(Job(rules, part.get_column(ROW).unique().sort(), pairs_))
    return out


def _one_job(pairs: pl.DataFrame) -> Job:
    """All of ``pairs`` as one job (what the bucketing gives when every rule is small)."""
    rules = pairs.get_column(RULE).unique().sort().to_list()
    return Job(
        rules, pairs.get_column(ROW).unique().sort(), pairs.select(RULE, ROW).sort(RULE, ROW)
    )


def evaluate(events: pl.DataFrame, rules: Sequence[CompiledRule], todo: list[Job]) -> pl.DataFrame:
    """(rule, row) matches of every job; one evaluation frame for all of them. The rules with
    few candidates run as Python predicates over their candidates (`pyeval.py`), the rest as
    Polars plans."""
    todo = guarded(events, rules, todo)
    if not todo:
        return pl.DataFrame(schema=PAIR_SCHEMA)
    rows = pl.concat([j.rows for j in todo]).unique().sort()
    names = set().union(*(rules[r].columns for j in todo for r in j.rules))
    raw_rows = _raw_rows(rules, todo) if len(rows) > RAW_SUBSET_ROWS else None
    frame = build_frame(events, rows, names, raw_rows)

    def own(found: pl.DataFrame, pairs: pl.DataFrame | None) -> pl.DataFrame:
        """A Polars plan's matches at its rules' own candidates only: where source fields
        were not decoded (``raw_rows``) a rule that reads them may not be judged."""
        if raw_rows is None or pairs is None:
            return found
        return found.join(pairs, on=[RULE, ROW], how="semi")

    found = [pl.DataFrame(schema=PAIR_SCHEMA)]
    small = []
    for job in todo:
        few, rest = split(job, rules)
        small.append(few)
        if rest is not None:
            found.append(own(_job(frame, rows, rules, rest), rest.pairs))
    few = pl.concat(small)
    if few.height:
        matched, failed = _python(frame, rows, rules, few)
        found.append(matched)
        if failed:  # a value Python does not take as Polars does: Polars decides
            mine = few.filter(pl.col(RULE).is_in(failed))
            redo = mine.get_column(ROW).unique().sort()
            found.append(own(_run(frame.gather(rows.search_sorted(redo)), rules, failed), mine))
    return pl.concat(found)


def guarded(events: pl.DataFrame, rules: Sequence[CompiledRule], todo: list[Job]) -> list[Job]:
    """The jobs without the pairs that a rule's guard rejects (`compile.guard`: conditions on
    schema columns that the rule requires), for rules with at least `GUARD_PAIRS` candidates
    that read source fields. One plan over a frame of schema columns only; the pairs left
    are the ones whose source fields must be decoded."""
    out = []
    for job in todo:
        if job.pairs is None or job.pairs.height < GUARD_PAIRS:
            out.append(job)
            continue
        counts = job.pairs.group_by(RULE).len().filter(pl.col("len") >= GUARD_PAIRS)
        ids = [r for r in counts.get_column(RULE).to_list() if rules[r].guard is not None]
        if not ids:
            out.append(job)
            continue
        mine = job.pairs.get_column(RULE).is_in(ids)
        checked = job.pairs.filter(mine)
        at = checked.get_column(ROW).unique().sort()
        names = set().union(*(rules[r].guard_columns for r in ids))
        frame = build_frame(events, at, names)
        exprs = [g.alias(str(r)) for r in ids if (g := rules[r].guard) is not None]
        try:
            flags = frame.select(pl.col(ROW), *exprs)
        except pl.exceptions.PolarsError:  # a guard Polars cannot run: no guarding
            out.append(job)
            continue
        passed = (
            flags.unpivot(index=ROW, variable_name=RULE, value_name=_HIT)
            .filter(pl.col(_HIT))
            .select(pl.col(RULE).cast(pl.UInt32), pl.col(ROW).cast(pl.UInt32))
        )
        kept = checked.join(passed, on=[RULE, ROW], how="semi")
        pairs = pl.concat([job.pairs.filter(~mine), kept]).sort(RULE, ROW)
        if pairs.height:
            rules_ = pairs.get_column(RULE).unique().sort().to_list()
            out.append(Job(rules_, pairs.get_column(ROW).unique().sort(), pairs))
    return out


def _raw_rows(rules: Sequence[CompiledRule], todo: list[Job]) -> pl.Series:
    """The rows (sorted) where some rule that reads source fields is evaluated on its own
    candidates: the only rows whose ``raw`` needs decoding."""
    parts = [pl.Series(ROW, [], dtype=pl.UInt32)]
    for job in todo:
        costly = [r for r in job.rules if rules[r].reads_raw]
        if not costly:
            continue
        if job.pairs is None:
            parts.append(job.rows)
        else:
            parts.append(job.pairs.filter(pl.col(RULE).is_in(costly)).get_column(ROW))
    return pl.concat(parts).unique().sort()


def split(job: Job, rules: Sequence[CompiledRule]) -> tuple[pl.DataFrame, Job | None]:
    """The (rule, row) pairs of the job's rules that run in Python (a predicate and at most
    `PY_CANDIDATES` candidates), and the job of the others (None if there are none)."""
    python = [r for r in job.rules if rules[r].pred is not None]
    if not python:
        return pl.DataFrame(schema=PAIR_SCHEMA), job
    if job.pairs is None:  # every rule on every row: all or nothing
        if len(job.rows) > PY_CANDIDATES:
            return pl.DataFrame(schema=PAIR_SCHEMA), job
        mine = pl.DataFrame({RULE: python}, schema={RULE: pl.UInt32})
        pairs = mine.join(job.rows.to_frame(ROW), how="cross").select(RULE, ROW)
        others = [r for r in job.rules if rules[r].pred is None]
        return pairs, (Job(others, job.rows) if others else None)
    if job.pairs.height <= PY_CANDIDATES * len(job.rules):  # few pairs: count in Python
        per_rule = Counter(job.pairs.get_column(RULE).to_list())
        ours = {r for r, n in per_rule.items() if n <= PY_CANDIDATES and rules[r].pred is not None}
        if len(ours) == len(per_rule):  # the usual case of a small logsource: all in Python
            return job.pairs, None
        if not ours:
            return pl.DataFrame(schema=PAIR_SCHEMA), job
    counts = job.pairs.group_by(RULE).len()
    few = counts.filter((pl.col("len") <= PY_CANDIDATES) & pl.col(RULE).is_in(python))
    chosen = job.pairs.get_column(RULE).is_in(few.get_column(RULE).implode())
    pairs, rest = job.pairs.filter(chosen), job.pairs.filter(~chosen)
    if rest.is_empty():
        return pairs, None
    left = rest.get_column(RULE).unique().sort().to_list()
    return pairs, Job(left, rest.get_column(ROW).unique().sort(), rest)


def _python(
    frame: pl.DataFrame, rows: pl.Series, rules: Sequence[CompiledRule], pairs: pl.DataFrame
) -> tuple[pl.DataFrame, list[int]]:
    """Each (rule, row) pair checked by the rule's predicate; also the rules that raised
    `FallbackError` (their matches are left out: Polars evaluates them)."""
    ids = pairs.get_column(RULE).to_list()
    need = sorted(set().union(*(rules[r].columns for r in set(ids))))
    at = pairs.get_column(ROW).unique().sort()
    sub = frame.gather(rows.search_sorted(at)).select(need)
    cols = {n: sub.get_column(n).to_list() for n in need}
    where = at.search_sorted(pairs.get_column(ROW)).to_list()
    preds = {r: rules[r].pred for r in set(ids)}
    hit_rule, hit_row, failed = [], [], set()
    for r, row, i in zip(ids, pairs.get_column(ROW).to_list(), where, strict=True):
        pred = preds[r]
        if pred is None or r in failed:
            continue
        try:
            if pred(cols, i):
                hit_rule.append(r)
                hit_row.append(row)
        except FallbackError:
            failed.add(r)
    out = pl.DataFrame({RULE: hit_rule, ROW: hit_row}, schema=PAIR_SCHEMA)
    if failed:
        out = out.filter(~pl.col(RULE).is_in(sorted(failed)))
    return out, sorted(failed)


def _job(
    frame: pl.DataFrame, rows: pl.Series, rules: Sequence[CompiledRule], job: Job
) -> pl.DataFrame:
    if job.sliced and job.pairs is not None:
        return _sliced(frame.gather(rows.search_sorted(job.pairs.get_column(ROW))), rules, job)
    return _run(frame.gather(rows.search_sorted(job.rows)), rules, job.rules)


def _sliced(long: pl.DataFrame, rules: Sequence[CompiledRule], job: Job) -> pl.DataFrame:
    """Each rule over its own slice of ``long`` (the job's pairs' rows, sorted by rule)."""
    assert job.pairs is not None
    counts = job.pairs.group_by(RULE, maintain_order=True).len().iter_rows()
    slices, offset = [], 0
    for rule, n in counts:
        slices.append((int(rule), long.slice(offset, n)))
        offset += n
    plans = [part.lazy().select(_found(rules, i)) for i, part in slices]
    try:
        return _long(pl.concat(plans, how="horizontal").collect())
    except pl.exceptions.PolarsError:
        parts = [_run(part, rules, [i]) for i, part in slices]
        return pl.concat([pl.DataFrame(schema=PAIR_SCHEMA), *parts])


def _run(frame: pl.DataFrame, rules: Sequence[CompiledRule], ids: list[int]) -> pl.DataFrame:
    """One plan for all of ``ids``; should it fail, rule by rule (a bad rule stops no other)."""
    try:
        return _wide(frame, rules, ids)
    except pl.exceptions.PolarsError:
        parts = [_one(frame, rules, i) for i in ids]
        return pl.concat([pl.DataFrame(schema=PAIR_SCHEMA), *parts])


def _wide(frame: pl.DataFrame, rules: Sequence[CompiledRule], ids: list[int]) -> pl.DataFrame:
    """One boolean column per rule, then the true cells as (rule, row). Half the plan of a
    ``filter().implode()`` per rule: on small frames the fixed cost per expression node is
    what the batch pays for, not the rows."""
    flags = frame.select(pl.col(ROW), *[rules[i].expr.alias(str(i)) for i in ids])
    long = flags.unpivot(index=ROW, variable_name=RULE, value_name=_HIT).filter(pl.col(_HIT))
    return long.select(pl.col(RULE).cast(pl.UInt32), pl.col(ROW).cast(pl.UInt32))


def _found(rules: Sequence[CompiledRule], i: int) -> pl.Expr:
    """The rows rule ``i`` matches, as one list in a column named after the rule."""
    return pl.col(ROW).filter(rules[i].expr).implode().alias(str(i))


def _long(lists: pl.DataFrame) -> pl.DataFrame:
    """One list column per rule → (rule, row) pairs."""
    long = lists.unpivot(variable_name=RULE, value_name=ROW).explode(ROW).drop_nulls(ROW)
    return long.select(pl.col(RULE).cast(pl.UInt32), pl.col(ROW).cast(pl.UInt32))


def _one(frame: pl.DataFrame, rules: Sequence[CompiledRule], i: int) -> pl.DataFrame:
    try:
        return _wide(frame, rules, [i])
    except pl.exceptions.PolarsError:
        return pl.DataFrame(schema=PAIR_SCHEMA)
