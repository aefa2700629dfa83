"""One test per command and per relation over the hand-made store (tests/hunt/conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from kestrel.errors import HuntError
from kestrel.hunt.session import Session


def names(session: Session, var: str, attr: str = "name") -> list[object]:
    return sorted(session.variable(var).column(attr).to_pylist())


def test_get_filters_in_sql(session: Session) -> None:
    session.execute("p = GET process WHERE name = 'cmd.exe' AND pid > 100")
    # 500 (CMD.EXE on h2) matches too: net.exe's record names its parent cmd.exe
    assert names(session, "p", "pid") == [200, 500]


def test_get_stix_pattern_form_and_ignore_case(session: Session) -> None:
    session.execute("p = GET process WHERE [process:name ILIKE 'cmd.exe']")
    assert names(session, "p", "pid") == [200, 500]


def test_session_ignore_case(hunt_store: object) -> None:
    with Session(hunt_store, ignore_case=True) as s:  # type: ignore[arg-type]
        s.execute("p = GET process WHERE name = 'CMD.exe'")
        assert names(s, "p", "pid") == [200, 500]


def test_get_every_process_deduplicates_entities(session: Session) -> None:
    session.execute("p = GET process")
    table = session.variable("p")
    # powershell appears in three events (process, network, file) and is one entity; the
    # parents named only as parents (wininit, services) are entities too
    assert table.num_rows == 8
    ps = next(r for r in table.to_pylist() if r["name"] == "powershell.exe")
    assert ps["number_observed"] == 3


def test_get_time_range_and_last(session: Session) -> None:
    session.execute("p = GET process START t'2024-05-01T12:01:00Z' STOP t'2024-05-01T12:03:00Z'")
    assert names(session, "p", "pid") == [100, 200, 300]  # 100 is cmd's parent
    session.execute("q = GET process LAST 58 MINUTES")  # now is 13:00 → from 12:02
    assert 100 not in names(session, "q", "pid")


def test_get_limit_counts_entities(session: Session) -> None:
    session.execute("p = GET process LIMIT 2")
    assert names(session, "p", "pid") == [4, 100]  # the first two by first_observed


def test_get_from_variable(session: Session) -> None:
    session.execute("p = GET process\nq = GET process FROM p WHERE user_name = 'bob'")
    assert names(session, "q", "pid") == [500, 600]


def test_find_parents_and_children_by_guid(session: Session) -> None:
    session.execute("""
        c = GET process WHERE name = 'cmd.exe' AND host = 'h1'
        parents = FIND process CREATED c
        kids = FIND process CREATED BY c
        pp = FIND process PARENT OF c
    """)
    assert names(session, "parents") == ["explorer.exe"]
    assert names(session, "kids") == ["powershell.exe", "whoami.exe"]
    assert names(session, "pp") == ["explorer.exe"]


def test_find_children_by_host_and_pid_without_guid(session: Session) -> None:
    session.execute("c = GET process WHERE pid = 500\nkids = FIND process CHILD OF c")
    assert names(session, "kids") == ["net.exe"]


def test_find_network_and_back(session: Session) -> None:
    session.execute("""
        ps = GET process WHERE name = 'powershell.exe'
        nt = FIND network-traffic CREATED BY ps
        back = FIND process CREATED nt
        dst = FIND ipv4-addr ACCEPTED nt
        src = FIND ipv4-addr CREATED nt
        both = FIND ipv4-addr LINKED ps
    """)
    assert names(session, "nt", "dst_port") == [443]
    assert names(session, "back") == ["powershell.exe"]
    assert names(session, "dst", "value") == ["203.0.113.7"]
    assert names(session, "src", "value") == ["10.0.0.5"]
    assert names(session, "both", "value") == ["10.0.0.5", "203.0.113.7"]


def test_find_file_and_user(session: Session) -> None:
    session.execute("""
        ps = GET process WHERE name = 'powershell.exe'
        f = FIND file LINKED ps
        made = FIND file CREATED BY ps
        u = FIND user-account OWNED ps
        host = FIND x-oca-asset LINKED ps
    """)
    assert names(session, "f") == names(session, "made") == ["a.ps1"]
    assert names(session, "u", "user_name") == ["alice"]
    assert names(session, "host", "hostname") == ["h1"]


def test_cloud_principal_and_calls(session: Session) -> None:
    session.execute("""
        denied = GET cloud-api-call WHERE error_code = 'AccessDenied'
        who = FIND cloud-principal CREATED denied
        calls = FIND cloud-api-call CREATED BY who
    """)
    assert names(session, "who", "arn") == ["arn:aws:iam::1:user/eve"]
    assert names(session, "calls", "operation") == ["GetObject", "ListBuckets"]


def test_filter_with_variable_references(session: Session) -> None:
    session.execute("""
        all = GET process
        c = GET process WHERE name = 'cmd.exe' AND host = 'h1'
        kids = all WHERE parent_pid IN c.pid
        not_kids = all WHERE parent_ref.pid NOT IN c.pid AND host = 'h1'
        mixed = all WHERE pid IN (c.pid, 600)
    """)
    assert names(session, "kids", "pid") == [300, 301]
    assert names(session, "not_kids", "pid") == [100, 200]  # wininit: NULL parent, SQL NULL
    assert names(session, "mixed", "pid") == [200, 600]


def test_sort_default_descending_and_disp_order(session: Session) -> None:
    out = session.execute("p = GET process\ns = SORT p BY pid\nDISP s ATTR pid LIMIT 2")
    assert out[0].table.column("pid").to_pylist() == [600, 500]  # type: ignore[union-attr]
    out = session.execute("DISP p ATTR pid SORT BY pid ASC LIMIT 2 OFFSET 1")
    assert out[0].table.column("pid").to_pylist() == [50, 100]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("agg", "expected"),
    [("COUNT(pid)", 5), ("MIN(pid)", 4), ("MAX(pid)", 301), ("SUM(pid)", 905),
     ("AVG(pid)", 181), ("NUNIQUE(parent_pid)", 3)],
)  # fmt: skip
def test_group_each_aggregation(session: Session, agg: str, expected: float) -> None:
    session.execute(f"p = GET process\ng = GROUP p BY host WITH {agg} AS x")
    rows = {r["host"]: r["x"] for r in session.variable("g").to_pylist()}
    assert float(rows["h1"]) == expected


def test_group_default_alias_and_bin(session: Session) -> None:
    session.execute(
        "p = GET process\ng = GROUP p BY BIN(first_observed, 5 MINUTES) WITH COUNT(pid)"
    )
    rows = session.variable("g").to_pylist()
    assert sorted(r["count_pid"] for r in rows) == [3, 5]


def test_join_merge_copy(session: Session) -> None:
    session.execute("""
        p = GET process
        c = GET process WHERE name = 'cmd.exe' AND host = 'h1'
        j = JOIN p, c BY parent_pid, pid
        m = c + j
        k = COPY c
    """)
    assert names(session, "j", "pid") == [300, 301]
    assert names(session, "m", "pid") == [200, 300, 301]
    assert names(session, "k", "pid") == [200]


def test_new_load_save_roundtrip(session: Session, tmp_path: Path) -> None:
    session.execute(
        'n = NEW process [{"name": "cmd.exe", "pid": 200}, {"name": "x.exe", "pid": 9}]'
    )
    for suffix in ("parquet", "csv", "json"):
        path = tmp_path / f"n.{suffix}"
        session.execute(f"SAVE n TO '{path}'\nl = LOAD '{path}'")
        assert names(session, "l", "pid") == [9, 200]
    session.execute('s = NEW ipv4-addr ["10.0.0.1", "10.0.0.2"]')
    assert names(session, "s", "value") == ["10.0.0.1", "10.0.0.2"]


def test_timestamped_info_describe_explain(session: Session) -> None:
    out = session.execute("p = GET process\nDISP TIMESTAMPED(p) ATTR pid LIMIT 1\nINFO p\n"
                          "DESCRIBE p.name\nEXPLAIN p")  # fmt: skip
    assert out[0].table.column_names == ["pid"]  # type: ignore[union-attr]
    assert "entities" in out[1].table.column("property").to_pylist()  # type: ignore[union-attr]
    assert out[2].table.column("value").to_pylist()[0] == "8"  # type: ignore[union-attr]
    assert "GROUP BY" in out[3].text  # type: ignore[union-attr]


def score(procs: pl.DataFrame, boost: int = 0) -> tuple[pl.DataFrame, str]:
    """An analytics for the APPLY test: a score column and a message."""
    scored = procs.with_columns((pl.col("pid") + boost).alias("x_score"))
    return scored, f"scored {procs.height}"


def test_apply_python_analytics(session: Session) -> None:
    out = session.execute(f"p = GET process WHERE host = 'h2'\n"
                          f"APPLY python://{__name__}.score ON p WITH boost=1\n"
                          f"hi = p WHERE x_score > 550")  # fmt: skip
    # services.exe, CMD.EXE, net.exe
    assert out[0].text == "scored 3"  # type: ignore[union-attr]
    assert names(session, "hi", "pid") == [600]


def test_apply_from_file(session: Session, tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("def f(df):\n    return '<b>hi</b>'\n")
    out = session.execute(f"p = GET process\nAPPLY python://{tmp_path}/a.py:f ON p")
    assert out[0].mime == "text/html"  # type: ignore[union-attr]


def test_analytics_failure_is_a_hunt_error(session: Session) -> None:
    with pytest.raises(HuntError, match="no analytics"):
        session.execute("p = GET process\nAPPLY python://nope.nope ON p")


def test_get_from_a_file_source(session: Session, tmp_path: Path) -> None:
    bundle = {"type": "bundle", "id": "bundle--1", "objects": [{
        "type": "observed-data", "id": "observed-data--1", "first_observed": "2024-01-01T00:00:00Z",
        "last_observed": "2024-01-01T00:00:00Z", "number_observed": 1,
        "objects": {"0": {"type": "process", "pid": 7, "name": "evil.exe"}}}]}  # fmt: skip
    path = tmp_path / "b.json"
    path.write_text(json.dumps(bundle))
    session.execute(f"p = GET process FROM file://{path} WHERE name = 'evil.exe'\nq = GET process")
    assert names(session, "p", "pid") == [7]
    assert names(session, "q", "pid") == [7]  # FROM is remembered, as in Kestrel


SIGMA_RULE = """
title: Whoami execution
id: 8c2a9d4e-0000-4000-8000-000000000001
status: test
logsource: {category: process_creation, product: windows}
detection:
  selection: {CommandLine|contains: 'whoami'}
  condition: selection
level: medium
"""


def test_get_where_sigma(session: Session, tmp_path: Path) -> None:
    rule = tmp_path / "whoami.yml"
    rule.write_text(SIGMA_RULE)
    session.execute(f"p = GET process WHERE SIGMA '{rule}'")
    # the rule matches the records of cmd.exe /c whoami and whoami /all: their processes,
    # and the parents those records name
    assert names(session, "p", "pid") == [100, 200, 300]
