"""SigmaHQ's regression data as the oracle for the Sigma engine.

Each test (an ``info.yml`` beside an ``.evtx``) names a rule that must fire on that EVTX. All
tests' events go through the engine as one batch with the *whole* rule set loaded (as in
production: a rule must fire among all the others, not alone), then each test is checked:
its rule compiled, fired on at least one of its events, and on none outside them.
"""

from __future__ import annotations

import tempfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pyarrow as pa
import yaml

from kestrel.detect.sigma import SigmaEngine, compile_rules, load_rules
from kestrel.detect.sigma.engine import RULE
from kestrel.detect.sigma.frame import ROW
from kestrel.errors import ConfigError
from kestrel.events import Batch, empty_batch

ReadEvtx = Callable[[Path], Batch]


@dataclass(frozen=True, slots=True)
class RegressionCase:
    """One positive test: the rule that must fire, and its EVTX."""

    rule_id: str
    title: str
    evtx: Path


@dataclass(slots=True)
class CaseResult:
    """How one test went: events in its EVTX, how many the rule fired on, why it failed."""

    case: RegressionCase
    events: int
    matched: int
    reason: str = ""

    @property
    def passed(self) -> bool:
        """Fired on at least one of its events (the test's own criterion)."""
        return not self.reason


@dataclass(slots=True)
class RegressionReport:
    """All tests: the summary the CLI prints (``--json``) and the per-test rows."""

    results: list[CaseResult] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        """``{"total", "passed", "failed": [{"rule_id", "reason"}]}``."""
        failed = [r for r in self.results if not r.passed]
        return {
            "total": len(self.results),
            "passed": len(self.results) - len(failed),
            "exact": sum(1 for r in self.results if r.passed and r.matched == r.events),
            "failed": [{"rule_id": r.case.rule_id, "reason": r.reason} for r in failed],
        }


def run_regression(
    data: Path, rules: Sequence[Path], read_evtx: ReadEvtx | None = None
) -> RegressionReport:
    """Run every EVTX test under ``data`` (folder or zip) against the rules in ``rules``."""
    read = read_evtx or default_reader()
    with _unpacked(data) as root:
        cases = list(find_cases(root))
        batches = [read(c.evtx) for c in cases]
    loaded = load_rules(rules)
    compiled, issues = compile_rules(loaded.rules)
    failed_compile = {i.rule_id: i.reason for i in issues}
    engine = SigmaEngine(compiled)
    matches = engine.match(pa.concat_tables([empty_batch(), *batches]))
    by_rule = _rows_by_rule(engine, matches)
    report = RegressionReport()
    start = 0
    for case, b in zip(cases, batches, strict=True):
        mine = set(range(start, start + b.num_rows))
        start += b.num_rows
        report.results.append(_check(case, mine, by_rule.get(case.rule_id), failed_compile))
    return report


def _check(
    case: RegressionCase, mine: set[int], fired: set[int] | None, failed: dict[str, str]
) -> CaseResult:
    if case.rule_id in failed:
        return CaseResult(case, len(mine), 0, f"rule did not compile: {failed[case.rule_id]}")
    if fired is None and not mine:
        return CaseResult(case, 0, 0, "the EVTX holds no events the reader could read")
    hits = len(mine & (fired or set()))
    if hits == 0:
        return CaseResult(case, len(mine), 0, f"rule fired on none of the {len(mine)} events")
    return CaseResult(case, len(mine), hits)


def _rows_by_rule(engine: SigmaEngine, matches: pl.DataFrame) -> dict[str, set[int]]:
    out: dict[str, set[int]] = {}
    for rule, row in matches.select(RULE, ROW).iter_rows():
        out.setdefault(engine.rules[rule].meta.id, set()).add(row)
    return out


def find_cases(root: Path) -> Iterator[RegressionCase]:
    """Every EVTX test under ``root`` (``info.yml`` with ``type: evtx``), in path order."""
    for info in sorted(root.rglob("info.yml")):
        doc = yaml.safe_load(info.read_text(encoding="utf-8")) or {}
        meta = (doc.get("rule_metadata") or [{}])[0]
        for test in doc.get("regression_tests_info") or []:
            if test.get("type") == "evtx":
                evtx = info.parent / Path(str(test["path"])).name
                yield RegressionCase(str(meta.get("id")), str(meta.get("title", "")), evtx)


@contextmanager
def _unpacked(path: Path) -> Iterator[Path]:
    """A folder as it is, or a zip unpacked into a temporary folder for the duration."""
    if path.is_dir():
        yield path
        return
    if not zipfile.is_zipfile(path):
        raise ConfigError(f"{path}: not a folder or a zip of regression data")
    with tempfile.TemporaryDirectory(prefix="kestrel-sigma-regression-") as tmp:
        with zipfile.ZipFile(path) as archive:
            archive.extractall(tmp)
        yield Path(tmp)


def default_reader() -> ReadEvtx:
    """Kestrel's own EVTX reader from the reader registry."""
    from kestrel.ingest import Source, readers

    known = readers()
    if "evtx" not in known:
        raise ConfigError("no 'evtx' reader is registered: the Windows readers are not installed")
    reader = known["evtx"]

    def read(path: Path) -> Batch:
        chunks = list(
            reader().read(Source(str(path), lambda: path.open("rb"), path.stat().st_size))
        )
        tables = [c.batch for c in chunks if c.batch.num_rows]
        return pa.concat_tables(tables) if tables else chunks[0].batch if chunks else _empty()

    return read


def _empty() -> Batch:
    from kestrel.events import empty_batch

    return empty_batch()
