"""The shortcuts the cloud detection path takes for speed give the plain answer.

* `high_runs` ranks only the high windows; a per-window loop over every window is the
  reference, over random windows cut into batches at random points.
* The profiler folds batches in groups (``flush_rows``); folding each batch at once is the
  reference. It aggregates on integer entity codes with NumPy; one Polars group_by over the
  entity strings (`reference_profiles`) is the reference.
* `HourMask` sums the distinct hour bits per key; a set of hours per key is the reference.
* Every cloud detector reads its columns from one conversion per batch (`batch_columns`);
  detectors fed fresh copies of each batch (nothing shared) are the reference.
* The detectors' array state (integer entity codes): `CodedBaseline` / `CodedHourMask`
  against the frame-based `WelfordBaseline` / `HourMask`; a run checkpointed half way
  (tables in the old schemas, rows reversed) against the run that never stopped.
* The sensitive table's JSON tests run only on records whose text can hold what they look
  for; the plain expressions on every row are the reference.
* new_behaviour drops rows whose text lacks what a rule reads (`SensitiveRule.text_gate`)
  before the JSON paths; `match` over every row is the reference. Window starts and UTC
  hours from int64 microseconds in NumPy; Polars' ``dt.truncate`` / ``dt.hour`` are the
  reference.
* The text gate also runs each rule's value patterns on the raw text (`value_gate`); the
  JSON path test itself is the reference, over real records and every kind of JSON value.
"""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pytest

from kestrel.detect.baseline import STATE_SCHEMA
from kestrel.detect.cloud import CLOUD_DETECTORS
from kestrel.detect.cloud.common import RUN_SCHEMA, HourMask, frame, high_runs
from kestrel.detect.profile import (
    EntityProfiler,
    batch_operations,
    batch_profiles,
    reference_profiles,
)
from kestrel.detect.profile import _frame as _profile_frame
from kestrel.events import Batch
from kestrel.findings import Finding

STEP = timedelta(minutes=5)
T0 = datetime(2026, 1, 5, tzinfo=UTC)


Key = tuple[str, datetime]


def _reference_runs(rows: list[tuple[str, datetime, float]], mark: float) -> dict[Key, int]:
    """run per (entity, window): consecutive windows of the entity, ``STEP`` apart, all high."""
    out: dict[Key, int] = {}
    last: dict[str, tuple[datetime, int]] = {}
    for entity, start, util_min in sorted(rows):
        prev = last.get(entity)
        if util_min >= mark:
            run = prev[1] + 1 if prev and prev[1] and start - prev[0] == STEP else 1
        else:
            run = 0
        out[(entity, start)] = run
        last[entity] = (start, run)
    return out


@pytest.mark.parametrize("seed", range(6))
def test_high_runs_match_a_per_window_loop(seed: int) -> None:
    rnd = random.Random(seed)
    rows = []
    for e in range(8):
        for k in range(120):
            if rnd.random() < 0.7:  # gaps: windows without samples
                rows.append((f"gpu-{e}", T0 + k * STEP, rnd.choice([50.0, 95.0, 95.0, 99.0])))
    rows.sort(key=lambda r: r[1])
    cuts = sorted(rnd.sample(range(1, len(rows)), 5))
    runs = pl.DataFrame(schema=RUN_SCHEMA)
    got: dict[Key, int] = {}
    for a, b in zip([0, *cuts], [*cuts, len(rows)], strict=True):
        part = pl.DataFrame(
            rows[a:b], schema={"entity_id": pl.String, "window_start": pl.Datetime("us", "UTC"),
                               "util_min": pl.Float64}, orient="row",
        )  # fmt: skip
        out, runs = high_runs(part, runs, STEP, 90.0)
        assert out.height == part.height
        got.update({(r["entity_id"], r["window_start"]): r["run"] for r in out.to_dicts()})
    want = _reference_runs(rows, 90.0)
    assert got == want
    assert max(want.values()) >= 3  # the random data does hold runs


def _hourly(table: pa.Table) -> list[Batch]:
    table = table.sort_by("time")
    hours = pl.from_arrow(table.column("time")).dt.truncate("1h")  # type: ignore[union-attr]
    bounds = [0, *(hours != hours.shift(1)).arg_true()[1:].to_list(), table.num_rows]
    return [table.slice(a, b - a) for a, b in itertools.pairwise(bounds)]


@pytest.fixture(scope="module")
def generated_day() -> list[Batch]:
    from kestrel.eval.cloud import _ingest
    from kestrel.eval.datasets import generated
    from kestrel.store import DuckDBStore, EventFilter

    store = DuckDBStore(":memory:")
    try:
        _ingest(store, generated("all", hours=24, seed=3).records)
        table = store.events(EventFilter())
    finally:
        store.close()
    return _hourly(table)


def test_profiles_folded_in_groups_equal_folded_per_batch(generated_day: list[Batch]) -> None:
    grouped, single = EntityProfiler(flush_rows=10**9), EntityProfiler(flush_rows=1)
    for b in generated_day:
        grouped.learn(b)
        single.learn(b)
    for name in ("profiles", "operations"):
        g = getattr(grouped, name).sort(pl.all())
        s = getattr(single, name).sort(pl.all())
        assert g.drop(pl.selectors.ends_with("_sum")).equals(s.drop(pl.selectors.ends_with("_sum")))
        for col in [c for c in g.columns if c.endswith("_sum")]:
            assert g[col].to_list() == pytest.approx(s[col].to_list(), rel=1e-12)
    assert grouped.profiles.height > 10


@pytest.mark.parametrize("seed", range(4))
def test_hour_mask_matches_a_set_of_hours_per_key(seed: int) -> None:
    """`HourMask` learns hours as the sum of the distinct hour bits per group (their OR); a
    Python set of hours per key (and the earliest time of the first batch that showed it),
    batch after batch, is the reference."""
    rnd = random.Random(seed)
    mask, hours, first = HourMask(), dict[str, set[int]](), dict[str, datetime]()
    for _ in range(5):
        rows = [(f"k{rnd.randrange(30)}", T0 + timedelta(minutes=rnd.randrange(5000)))
                for _ in range(rnd.randrange(1, 300))]  # fmt: skip
        schema: dict[str, Any] = {"key": pl.String, "time": pl.Datetime("us", "UTC")}
        batch = pl.DataFrame(rows, schema=schema, orient="row")
        batch = batch.with_columns(pl.col("time").dt.hour().alias("hour"))
        seen = mask.seen(batch, "key").to_dicts()
        for row in seen:
            assert row["hour_seen"] == (row["hour"] in hours.get(row["key"], set()))
            assert row["known_since"] == first.get(row["key"])
        mask.learn(batch, "key")
        earliest: dict[str, datetime] = {}
        for key, t in rows:
            hours.setdefault(key, set()).add(t.hour)
            earliest[key] = min(earliest.get(key, t), t)
        for key, t in earliest.items():  # known since the first batch that showed the key
            first.setdefault(key, t)
    got = {r["key"]: r["hours"] for r in mask.state.to_dicts()}
    assert got == {k: sum(1 << h for h in hs) for k, hs in hours.items()}


def _mixed(batches: list[Batch]) -> pl.DataFrame:
    """The profiler's columns of ``batches`` plus rows that stress the integer-code path:
    nulls in every optional column, an entity with only null regions, the bench's GPUs."""
    events = pl.concat([_profile_frame(b) for b in batches], rechunk=False)
    odd = events.head(40).with_columns(
        pl.lit("odd-entity").alias("entity_id"),
        pl.lit(None, pl.String).alias("cloud_region"),
        pl.lit(None, pl.String).alias("entity_type"),
        pl.lit(None, pl.String).alias("cloud_service"),
        pl.when(pl.int_range(pl.len()) % 2 == 0).then(pl.col("metric_value")).alias("metric_value"),
    )
    return pl.concat([events, odd])


def test_integer_code_profiles_equal_the_plain_group_by(generated_day: list[Batch]) -> None:
    """`batch_profiles` / `batch_operations` (dictionary-encoded entities, NumPy bincounts)
    give what one Polars group_by over the strings gives (`reference_profiles`), field by
    field; sums to 1e-12 (a different summation order)."""
    events = _mixed(generated_day)
    got = batch_profiles(events).sort("entity_id")
    want = reference_profiles(events).sort("entity_id")
    assert got.height == want.height > 10 and got.schema == want.schema
    sums = pl.selectors.ends_with("_sum")
    assert got.drop(sums).equals(want.drop(sums))
    for col in [c for c in got.columns if c.endswith("_sum")]:
        assert got[col].to_list() == pytest.approx(want[col].to_list(), rel=1e-12)
    api = events.filter(
        pl.col("class").is_in(["api_activity", "auth"]) & pl.col("cloud_operation").is_not_null()
    ).with_columns(pl.col("cloud_service").fill_null(""))
    ops = (
        api.group_by("entity_id", pl.col("cloud_service").alias("service"),
                     pl.col("cloud_operation").alias("operation"))
        .agg(pl.col("time").min().alias("first_seen"), pl.len().cast(pl.Int64).alias("calls"))
    )  # fmt: skip
    assert batch_operations(events).sort(pl.all()).equals(ops.sort(pl.all()))
    assert batch_profiles(events.clear()).is_empty()
    assert batch_operations(events.clear()).is_empty()


def _keys(findings: list[Finding]) -> list[tuple[object, ...]]:
    return sorted(
        (f.detector, f.entity.id, f.first_seen, f.last_seen, tuple(f.evidence),
         tuple(s.name for s in f.signals), tuple(str(s.value) for s in f.signals))
        for f in findings
    )  # fmt: skip


def test_shared_batch_columns_change_no_finding(generated_day: list[Batch]) -> None:
    shared = {n: c() for n, c in CLOUD_DETECTORS.items()}
    alone = {n: c() for n, c in CLOUD_DETECTORS.items()}
    got, want = [], []
    for b in generated_day:
        for det in shared.values():
            got += det.detect(b)
        for det in alone.values():  # each detector its own copy: nothing converted is shared
            want += det.detect(pa.Table.from_batches(b.to_batches(), b.schema))
    assert _keys(got) == _keys(want)
    assert {f.detector for f in want} >= {"gpu_hijack", "api_abuse"}


def _stored_events(datasets: Path, *names: str) -> pl.DataFrame:
    """The records of the eval datasets ``names`` as a store hands them to new_behaviour."""
    from kestrel.detect.cloud.new_behaviour import _COLUMNS
    from kestrel.eval.cloud import _ingest
    from kestrel.eval.datasets import load
    from kestrel.store import DuckDBStore, EventFilter

    records = [r for name in names for g in load(name, datasets) for r in g.records]
    store = DuckDBStore(":memory:")
    try:
        _ingest(store, records)
        return frame(store.events(EventFilter()), _COLUMNS)
    finally:
        store.close()


def test_gated_sensitive_match_equals_the_full_match(datasets: Path) -> None:
    """`NewBehaviourDetector._match` (rules and rows gated by operation / service / principal
    type before any JSON path) gives exactly `match` over every row and every rule, on real
    CloudTrail records (Stratus detonations and Panther's rule cases, one store each)."""
    from kestrel.detect.cloud.new_behaviour import NewBehaviourDetector
    from kestrel.detect.cloud.sensitive import match

    det = NewBehaviourDetector()
    total = 0
    for name in ("stratus", "panther"):
        events = _stored_events(datasets, name)
        want = match(events, det.rules).sort("event_id", "rule")
        got = det._match(events).sort("event_id", "rule")
        assert got.equals(want), name
        total += want.height
    assert total > 100  # most rows of the table fire on these records


def test_shared_json_tests_equal_the_plain_paths(datasets: Path) -> None:
    """`with_shared` runs the success and AWS-service-event JSON paths only on records whose
    text holds ``Failure`` / ``AwsServiceEvent`` (or a \\u escape); and a one-rule `match`
    with ``params`` skips records without the fields' names. Both against the plain
    expressions on every row: real CloudTrail records plus records that spell the words
    with escapes."""
    from kestrel.detect.cloud.sensitive import (
        _field,
        load_table,
        match,
        service_linked,
        succeeded,
        with_shared,
    )

    events = _stored_events(datasets, "stratus", "panther")
    escaped = events.head(6).with_columns(
        pl.Series("raw", [
            '{"eventType":"AwsService\\u0045vent","responseElements":null}',
            '{"eventType":"AwsApiCall","responseElements":{"ConsoleLogin":"Fail\\u0075re"}}',
            '{"responseElements":{"PasswordUpdated":"Failure"}}',
            '{"eventType":"AwsServiceEvent"}',
            '{"requestParameters":{"k\\u0065y":"HOW_TO_DECRYPT.txt"}}',
            '{"requestParameters":{"withDecryption":true}}',
        ]),
        pl.lit(None, pl.String).alias("cloud_error_code"),
        pl.lit(None, pl.String).alias("outcome"),
    )  # fmt: skip
    events = pl.concat([events, escaped])
    plain = events.select(
        succeeded().alias("_succeeded"),
        service_linked().alias("_linked"),
        (_field("eventType").fill_null("") == "AwsServiceEvent").alias("_aws_event"),
    )
    shared = with_shared(events).select(plain.columns)
    assert shared.equals(plain)
    assert plain["_aws_event"].sum() >= 2 and (~plain["_succeeded"]).sum() > 10
    fired = 0
    for rule in [r for r in load_table() if r.ops and r.params]:
        want = with_shared(events).filter(rule.expr())["event_id"].to_list()
        assert match(events, (rule,))["event_id"].to_list() == want, rule.id
        fired += len(want)
    assert fired > 20


def _shifted(batch: Batch, by: timedelta) -> Batch:
    """``batch`` with every time ``by`` later."""
    import pyarrow.compute as pc

    i = batch.schema.get_field_index("time")
    moved = pc.add(batch.column("time"), pa.scalar(by, pa.duration("us")))
    return batch.set_column(i, batch.schema.field(i), moved.cast(batch.schema.field(i).type))


def _low(name: str) -> dict[str, Any]:
    """Thresholds low enough that every path of the detector fires on a generated day."""
    low: dict[str, dict[str, Any]] = {
        "gpu_hijack": {"high_util": 60.0, "min_samples": 3, "z": 1.0, "min_util_delta": 5.0,
                       "cycle_hours": 1},
        "api_abuse": {"burst_calls": 3, "min_samples": 3, "z": 1.0, "min_ratio": 1.5,
                      "max_regions": 1, "min_errors": 1, "error_rate": 0.01,
                      "hours_warmup_h": 1},
        "new_behaviour": {"min_history": 1},
    }  # fmt: skip
    return low.get(name, {})


@pytest.mark.parametrize("name", ["gpu_hijack", "api_abuse", "new_behaviour"])
def test_a_checkpoint_mid_run_changes_no_finding(name: str, generated_day: list[Batch]) -> None:
    """The array state (integer entity codes) leaves as the tables it always had and loads
    from them whatever their row order: a run stopped half way, its state checkpointed
    (rows reversed) and loaded into a fresh detector, finds what the run that never
    stopped finds."""
    schemas = {
        "gpu_hijack": {"baseline": STATE_SCHEMA, "regions": {"entity_id": pl.String(),
                       "cloud_region": pl.String()}, "since": {"entity_id": pl.String(),
                       "since": pl.Datetime("us", "UTC")}, "runs": RUN_SCHEMA},
        "api_abuse": {"baseline": STATE_SCHEMA, "hours": HourMask.SCHEMA},
        "new_behaviour": {"seen": {"entity_id": pl.String(), "key": pl.String()},
                          "counts": {"entity_id": pl.String(), "n": pl.Int64()}},
    }[name]  # fmt: skip
    # the day, then the same day again a day later: what the first day taught matters
    later = [_shifted(b, timedelta(days=1)) for b in generated_day]
    days, half = [*generated_day, *later], len(generated_day)
    whole = CLOUD_DETECTORS[name](**_low(name))
    first = CLOUD_DETECTORS[name](**_low(name))
    want = [f for b in days for f in whole.detect(b)]
    got = [f for b in days[:half] for f in first.detect(b)]
    saved = first.state()
    assert {k: dict(pl.DataFrame(t).schema) for k, t in saved.items()} == schemas
    resumed = first.clone()
    resumed.load_state({k: t.take(list(range(t.num_rows))[::-1]) for k, t in saved.items()})
    got += [f for b in days[half:] for f in resumed.detect(b)]
    assert _keys(got) == _keys(want) and want
    # and the state carried something: a detector that forgot it finds otherwise
    forgot = CLOUD_DETECTORS[name](**_low(name))
    late = [f for b in later for f in forgot.detect(b)]
    start = later[0]["time"][0].as_py()
    assert _keys(late) != _keys([f for f in want if f.last_seen >= start])
    for key, table in whole.state().items():  # the baselines: floats, compared elsewhere
        if key != "baseline":
            mine, theirs = pl.DataFrame(resumed.state()[key]), pl.DataFrame(table)
            assert mine.sort(pl.all()).equals(theirs.sort(pl.all())), key


@pytest.mark.parametrize("seed", range(4))
def test_coded_baseline_equals_the_frame_baseline(seed: int) -> None:
    """`CodedBaseline` (arrays by entity code) against `WelfordBaseline` (Polars frames):
    the same z, baseline mean and n for every row, batch after batch, and the same state
    (to 1e-9); a `WelfordBaseline` checkpoint loads into it."""
    import numpy as np

    from kestrel.detect.baseline import WelfordBaseline
    from kestrel.detect.cloud.arrays import CodeBook, CodedBaseline

    rng = np.random.default_rng(seed)
    book = CodeBook()
    coded, frames = CodedBaseline(book, ("calls",), 3, 2.0), WelfordBaseline(3, min_std=2.0)
    for _ in range(6):
        n = int(rng.integers(1, 400))
        names = [f"p{i}" for i in rng.integers(0, 40, n)]
        values = rng.gamma(2.0, 10.0, n).round(int(rng.integers(0, 3)))
        batch = pl.DataFrame({"entity_id": names, "metric": ["calls"] * n, "value": values})
        want = frames.score_then_learn(batch)
        codes = book.encode(names)
        z, mean, base_n = coded.score(0, codes, values, np.ones(n, dtype=np.bool_))
        coded.learn(0, codes, values)
        assert np.allclose(z, want["z"].fill_null(np.nan).to_numpy(), rtol=1e-9, equal_nan=True)
        assert np.allclose(mean, want["base_mean"].fill_null(np.nan).to_numpy(), rtol=1e-9,
                           equal_nan=True)  # fmt: skip
        assert (base_n == want["base_n"].fill_null(-1).to_numpy()).all()
    a = coded.state.sort("entity_id")
    b = frames.state.sort("entity_id")
    assert a["entity_id"].equals(b["entity_id"]) and a["n"].equals(b["n"])
    for col in ("mean", "m2"):
        assert np.allclose(a[col].to_numpy(), b[col].to_numpy(), rtol=1e-9)
    loaded = CodedBaseline(CodeBook(), ("calls",), 3, 2.0)
    loaded.load_arrow(frames.to_arrow())
    assert loaded.state.sort("entity_id").equals(b.select(a.columns).cast(a.schema))


@pytest.mark.parametrize("seed", range(4))
def test_coded_hour_mask_equals_the_frame_mask(seed: int) -> None:
    """`CodedHourMask` against `HourMask`: the same hour seen / known since per row, batch
    after batch, and the same state; a `HourMask` checkpoint loads into it."""

    from kestrel.detect.cloud.arrays import CodeBook, CodedHourMask, micros_series, to_micros

    rnd = random.Random(seed)
    book = CodeBook()
    coded, frames = CodedHourMask(book), HourMask()
    for _ in range(5):
        rows = [(f"k{rnd.randrange(30)}", T0 + timedelta(minutes=rnd.randrange(5000)))
                for _ in range(rnd.randrange(1, 300))]  # fmt: skip
        schema: dict[str, Any] = {"key": pl.String, "time": pl.Datetime("us", "UTC")}
        batch = pl.DataFrame(rows, schema=schema, orient="row")
        batch = batch.with_columns(pl.col("time").dt.hour().alias("hour"))
        want = frames.seen(batch, "key")
        frames.learn(batch, "key")
        codes = book.encode(batch["key"].to_list())
        hours = batch["hour"].cast(pl.Int64).to_numpy()
        seen, since = coded.seen(codes, hours)
        coded.learn(codes, hours, to_micros(batch["time"]))
        assert (seen == want["hour_seen"].to_numpy()).all()
        assert micros_series(since, "known_since").equals(want["known_since"])
    assert coded.state.sort("key").equals(frames.state.sort("key"))
    loaded = CodedHourMask(CodeBook())
    loaded.load_arrow(frames.state.to_arrow())
    assert loaded.state.equals(coded.state.sort("key"))


def test_text_gates_hold_wherever_their_rule_matches(datasets: Path) -> None:
    """`SensitiveRule.text_gate` (the request fields' names and ``when`` patterns, tested on
    the record's text) is true on every row its rule matches, so `NewBehaviourDetector`
    may drop the other rows before the JSON paths; and `_match`, which does, equals
    `match` over every row. Real CloudTrail records plus records that spell the field
    names with escapes or hold a ``when`` pattern."""
    from kestrel.detect.cloud.new_behaviour import NewBehaviourDetector
    from kestrel.detect.cloud.sensitive import match, with_shared

    events = _stored_events(datasets, "stratus", "panther")
    crafted = events.head(4).with_columns(
        pl.Series("raw", [
            '{"requestParameters":{"k\\u0065y":"HOW_TO_DECRYPT.txt"}}',
            '{"requestParameters":{"withDecryption":"true"}}',
            '{"requestParameters":{"key":"a/how_to_decrypt.txt",'
            '"x-amz-server-side-encryption-customer-algorithm":"AES256"}}',
            '{"requestParameters":{"key":"a/report.txt"}}',
        ]),
        pl.Series("cloud_operation", ["PutObject", "GetParameter", "PutObject", "PutObject"]),
        pl.lit("s3", pl.String).alias("cloud_service"),
        pl.lit(None, pl.String).alias("cloud_error_code"),
        pl.lit(None, pl.String).alias("outcome"),
    )  # fmt: skip
    events = pl.concat([events, crafted])
    shared = with_shared(events)
    det = NewBehaviourDetector()
    gated = 0
    for rule in det.rules:
        text = rule.text_gate()
        if text is None:
            continue
        hits = shared.filter(rule.expr())
        assert hits.filter(text).height == hits.height, rule.id
        gated += hits.height
    assert gated >= 5
    want = match(events, det.rules).sort("event_id", "rule")
    got = det._match(events).sort("event_id", "rule")
    assert got.equals(want)
    assert {"ransom-note-uploaded", "s3-customer-key-encryption"} <= set(got["rule"])


@pytest.mark.parametrize("minutes", [1, 5, 7, 90, 1500])
def test_numpy_windows_and_hours_equal_polars(minutes: int) -> None:
    """new_behaviour's window starts and the profiler's UTC hours come from the int64
    microseconds in NumPy (floor division); Polars' ``dt.truncate`` / ``dt.hour`` are the
    reference, on random times before and after 1970 and windows that do not divide an
    hour or a day."""
    import numpy as np

    from kestrel.detect.cloud.new_behaviour import NewBehaviourDetector
    from kestrel.detect.profile import _utc_hour

    rng = np.random.default_rng(minutes)
    t = rng.integers(-(10**15), 4 * 10**15, 5000)
    batch = pa.table({"time": pa.array(t, pa.timestamp("us", tz="UTC"))})
    rows = np.flatnonzero(rng.random(len(t)) < 0.7)
    det = NewBehaviourDetector(window_minutes=minutes)
    got = det._window_start(batch, rows)
    assert isinstance(got, pl.Series)
    times = pl.Series("time", t).cast(pl.Datetime("us", "UTC"))
    want = times.gather(rows).dt.truncate(timedelta(minutes=minutes)).alias("window_start")
    assert got.equals(want)
    hours = _utc_hour(times.to_frame(), t)
    assert hours.tolist() == times.dt.hour().to_list()


# values put at each rule's request paths: strings the rules look for and their near
# misses, escapes, true / false / null, numbers the JSON path prints anew, objects, arrays
_VALUES: list[Any] = [
    "true", "false", True, False, None, 0, 1e5, -3, 1.50, "", "*", "No", "Yes", "Failure",
    "userData", "Suspended", "Disabled", "enabled", "PUBLIC_READ", "device_code",
    "0.0.0.0/0", "10.0.0.0/8", "allow", "deny", "HOW_TO_DECRYPT.txt", "x/Recover_Files.HTML",
    "ransom/a.txt", "notes/ransom.txt.bak", "uploads/batch-4411.json", 'a"b', "a\\b", "é/ransom.md",
    "arn:aws:iam::aws:policy/AdministratorAccess", "arn:aws:iam::aws:policy/ReadOnlyAccess",
    "p4d.24xlarge", "t3.micro", {"value": "g5.xlarge"}, {"items": [{"group": "all"}]},
    {"items": [{"userId": "123456789012"}]}, ["123456789012"], [], {"Days": 3},
    {"Rules": [{"Expiration": {"Days": 3}, "Status": "Enabled"}]}, {"Status": "Suspended"},
    '{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject"}]}',
    {"Statement": [{"Effect": "Allow", "Action": ["*"]}]}, {"AWS": ["*"]},
]  # fmt: skip


def _nested(path: str, value: Any) -> dict[str, Any]:
    out: Any = value
    for key in reversed(path.split(".")):
        out = {key: out}
    return dict(out)


def test_value_gates_pass_every_record_whose_value_matches(datasets: Path) -> None:
    """`value_gate` (a rule's value pattern rewritten to run on the raw text, no JSON path)
    is true wherever the JSON test it stands in front of is: every table pattern over real
    CloudTrail records and over records holding each of `_VALUES` at the pattern's path,
    written compact, with spaces, indented and with every non-ASCII character escaped, beside
    a ``readOnly: true`` and a number under the same field name elsewhere. And it drops
    records: the gate is no plain ``True``."""
    import json

    from kestrel.detect.cloud.sensitive import _field, load_table, value_gate

    real = _stored_events(datasets, "stratus", "panther")["raw"].to_list()
    params = [p for r in load_table() for p in (*r.params, *r.params_unless)]
    gated = dropped = matched = 0
    for path, pattern in params:
        gate = value_gate(path, pattern)
        if gate is None:
            continue
        gated += 1
        name = path.rsplit(".", 1)[-1]
        raws = list(real)
        for value in _VALUES:
            doc = {"eventName": "X", "readOnly": True, **_nested(path, value)}
            doc["elsewhere"] = {"x": 1, name + "Count": 2}
            raws += [
                json.dumps(doc, separators=(",", ":"), ensure_ascii=False),
                json.dumps(doc, ensure_ascii=False),
                json.dumps(doc, indent=2, ensure_ascii=False),
                json.dumps(doc),
            ]
        frame = pl.DataFrame({"raw": raws})
        got = frame.select(
            _field(path).str.contains(pattern).fill_null(False).alias("want"),
            gate.alias("gate"),
        )
        missed = got.filter(pl.col("want") & ~pl.col("gate"))
        assert missed.is_empty(), (path, pattern, frame.filter(got["want"] & ~got["gate"]))
        matched += int(got["want"].sum())
        dropped += int((~got["gate"]).sum())
    assert gated >= 30 and matched > 100 and dropped > 10_000


@pytest.mark.parametrize("seed", range(4))
def test_interned_codes_equal_plain_lookups(seed: int) -> None:
    """`global_codes` through a shared intern book (`Coded.interned`, what `coded_column`
    gives) assigns every book the codes the plain lookup does: batches of random values,
    row subsets, values a book was given straight through ``encode`` between batches, two
    books behind one intern book, and a book fed from two intern books."""
    import numpy as np

    from kestrel.detect.cloud.arrays import CodeBook, Coded, encode_column, global_codes

    rnd = random.Random(seed)
    interns = [CodeBook(), CodeBook()]
    interned = [CodeBook(), CodeBook()]
    plain = [CodeBook(), CodeBook()]
    for step in range(30):
        values = [rnd.choice([None, *(f"v{rnd.randrange(60)}" for _ in range(3))])
                  for _ in range(rnd.randrange(1, 80))]  # fmt: skip
        coded = encode_column(pa.array(values, pa.string()))
        intern = interns[step % 2]
        shared = Coded(coded.codes, coded.values, intern.encode(coded.values), intern)
        rows = None
        if rnd.random() < 0.5:
            rows = np.array(sorted(rnd.sample(range(len(values)), rnd.randrange(len(values) + 1))),
                            dtype=np.int64)  # fmt: skip
        for a, b in zip(interned, plain, strict=True):
            assert global_codes(shared, a, rows).tolist() == global_codes(coded, b, rows).tolist()
            if rnd.random() < 0.3:
                extra = [f"v{rnd.randrange(80)}" for _ in range(3)]
                assert a.encode(extra).tolist() == b.encode(extra).tolist()
    for a, b in zip(interned, plain, strict=True):
        assert a.decode(np.arange(len(a))).to_list() == b.decode(np.arange(len(b))).to_list()
        assert len(a) > 40
