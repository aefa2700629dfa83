"""The `finding` entity: GET over Kestrel's stored findings, FIND … LINKED through their
evidence, on hand-made findings over the test store and on real Sigma findings over EVTX
attack samples (../shared/datasets)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.hunt.conftest import T0, hunt_batch
from tests.services import temporary_database

from kestrel.errors import HuntError, HuntNameError
from kestrel.findings.model import Entity, Finding, Severity, Signal
from kestrel.hunt.display import TableDisplay
from kestrel.hunt.session import Session
from kestrel.pipeline.persist import to_row
from kestrel.store import DuckDBStore, Store, open_store
from kestrel.store.findings import FindingsTable


def _finding(title: str, severity: Severity, evidence: list[str], minutes: tuple[int, int],
             techniques: tuple[str, ...] = ()) -> Finding:  # fmt: skip
    return Finding(
        detector="sigma", entity=Entity("host", "h1"), severity=severity, title=title,
        first_seen=T0 + timedelta(minutes=minutes[0]),
        last_seen=T0 + timedelta(minutes=minutes[1]),
        signals=(Signal(f"sigma:{title}", 1.0),), techniques=techniques,
        evidence=tuple(evidence),
    )  # fmt: skip


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.services)])
def with_findings(request: pytest.FixtureRequest) -> Iterator[Session]:
    """The test store with four findings, over DuckDB and over PostgreSQL (the evidence is
    unnested by each engine's own JSON functions)."""
    if request.param == "duckdb":
        store: Store = DuckDBStore(":memory:")
        yield from _with_findings(store)
        return
    with temporary_database() as url:
        yield from _with_findings(open_store(url))


def _with_findings(store: Store) -> Iterator[Session]:
    store.append(hunt_batch())
    # events e01 = cmd.exe (h1), e03 = powershell.exe (h1), e04 = its connection,
    # e07 = net.exe (h2), e09 = an API call: see conftest._ROWS (one minute apart)
    found = [
        _finding("whoami from cmd", Severity.HIGH, ["e01"], (1, 2), ("T1033",)),
        _finding(
            "encoded powershell", Severity.CRITICAL, ["e03", "e04"], (3, 4), ("T1059.001", "T1027")
        ),
        _finding("net user", Severity.MEDIUM, ["e07"], (7, 7), ("T1087",)),
        _finding("listing buckets", Severity.LOW, ["e09"], (9, 9)),
    ]
    FindingsTable(store).replace([], [to_row(f) for f in found])
    try:
        with Session(store) as s:
            yield s
    finally:
        store.close()


def rows(s: Session, text: str, var: str, *attrs: str) -> list[dict[str, Any]]:
    s.execute(text)
    shown = s.execute(f"DISP {var} ATTR {', '.join(attrs)}")[0]
    assert isinstance(shown, TableDisplay)
    return shown.table.to_pylist()


def test_get_finding_by_severity_name_and_level(with_findings: Session) -> None:
    got = rows(with_findings, "f = GET finding WHERE severity = 'high'", "f", "title", "severity")
    assert got == [{"title": "whoami from cmd", "severity": "high"}]
    got = rows(with_findings, "g = GET finding WHERE severity_level >= 3", "g", "title")
    assert [r["title"] for r in got] == ["whoami from cmd", "encoded powershell"]
    # ordered comparisons with a severity name compare ranks, not text ('medium' > 'high')
    for text in (
        "severity >= 'high'",
        "severity > 'Medium'",
        "severity >= 'HIGH' AND severity <= 'critical'",
    ):
        got = rows(with_findings, f"h = GET finding WHERE {text}", "h", "title")
        assert [r["title"] for r in got] == ["whoami from cmd", "encoded powershell"], text
    got = rows(with_findings, "i = GET finding WHERE severity <= 'medium'", "i", "title")
    assert [r["title"] for r in got] == ["net user", "listing buckets"]


def test_finding_attributes(with_findings: Session) -> None:
    got = rows(with_findings, "f = GET finding WHERE techniques LIKE '%T1059%'", "f",
               "detector", "entity_type", "entity_id", "number_observed", "severity_level",
               "first_observed", "last_observed")  # fmt: skip
    assert got == [{"detector": "sigma", "entity_type": "host", "entity_id": "h1",
                    "number_observed": 2, "severity_level": 4,
                    "first_observed": T0 + timedelta(minutes=3),
                    "last_observed": T0 + timedelta(minutes=4)}]  # fmt: skip


def test_get_finding_time_range_overlaps_span_and_limit(with_findings: Session) -> None:
    # the range [minute 2, minute 7) overlaps findings spanning 1-2 (ends at 2) and 3-4;
    # the one at 7 starts at the range's end
    text = "f = GET finding START t'2024-05-01T12:02:00Z' STOP t'2024-05-01T12:07:00Z'"
    assert [r["title"] for r in rows(with_findings, text, "f", "title")] == [
        "whoami from cmd", "encoded powershell"]  # fmt: skip
    got = rows(with_findings, "g = GET finding LIMIT 1", "g", "title")
    assert got == [{"title": "whoami from cmd"}]


def test_find_process_linked_to_findings(with_findings: Session) -> None:
    # the critical finding cites powershell's creation (which names its parent, cmd.exe)
    # and its connection; the high one cites cmd.exe's creation (parent: explorer.exe)
    got = rows(with_findings, "f = GET finding WHERE severity = 'critical'\n"
               "p = FIND process LINKED f", "p", "name", "pid")  # fmt: skip
    assert sorted((r["name"], r["pid"]) for r in got) == [("cmd.exe", 200),
                                                          ("powershell.exe", 301)]  # fmt: skip
    got = rows(with_findings, "h = GET finding WHERE severity = 'high'\n"
               "q = FIND process LINKED h", "q", "name")  # fmt: skip
    assert sorted(r["name"] for r in got) == ["cmd.exe", "explorer.exe"]
    net = rows(with_findings, "n = FIND network-traffic LINKED f", "n", "dst_ip", "dst_port")
    assert net == [{"dst_ip": "203.0.113.7", "dst_port": 443}]
    calls = rows(with_findings, "g = GET finding WHERE severity = 'low'\n"
                 "c = FIND cloud-api-call LINKED g", "c", "operation")  # fmt: skip
    assert calls == [{"operation": "ListBuckets"}]


def test_find_findings_linked_to_entities(with_findings: Session) -> None:
    # 'cmd.exe' names two processes: h1's (actor of e01, parent in e02 / e03) and h2's pid
    # 500 (parent in e07; its own event e06 says CMD.EXE: the key lower-cases the name).
    # Findings cite e01, e03 (+ e04) and e07; none cites e09's neighbour e10
    got = rows(with_findings, "p = GET process WHERE name = 'cmd.exe'\n"
               "f = FIND finding LINKED p", "f", "title")  # fmt: skip
    assert got == [{"title": "whoami from cmd"}, {"title": "encoded powershell"},
                   {"title": "net user"}]  # fmt: skip
    net = rows(with_findings, "n = GET network-traffic WHERE dst_port = 443\n"
               "g = FIND finding LINKED n WHERE severity_level > 3", "g", "title")  # fmt: skip
    assert net == [{"title": "encoded powershell"}]


def test_finding_errors(with_findings: Session) -> None:
    with pytest.raises(HuntNameError, match="no attribute 'severty'") as err:
        with_findings.execute("f = GET finding WHERE severty = 'high'")
    assert err.value.line == 1 and "did you mean severity?" in str(err.value)
    with pytest.raises(HuntError, match="takes no FROM"):
        with_findings.execute("f = GET finding FROM file://x.json")
    with_findings.execute("f = GET finding")
    with pytest.raises(HuntNameError, match="no relation CREATED from finding to process"):
        with_findings.execute("p = FIND process CREATED f")


def test_get_finding_on_a_store_without_findings(hunt_store: DuckDBStore) -> None:
    with Session(hunt_store) as s:
        s.execute("f = GET finding")
        assert s.count("f") == 0


# -- real findings: Sigma over EVTX attack samples ------------------------------------------

_EVTX = (
    "AutomatedTestingTools/Malware/rundll32_cmd_schtask.evtx",
    "AutomatedTestingTools/Malware/DE_timestomp_and_dll_sideloading_and_RunPersist.evtx",
)
_RULES = (
    "rules/windows/process_creation/"
    "proc_creation_win_susp_execution_from_public_folder_as_parent.yml",
    "rules-threat-hunting/windows/file/file_event/file_event_win_scheduled_task_creation.yml",
)
_BUILT: dict[str, Path] = {}


def kestrel(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kestrel", *args], capture_output=True,
                          text=True, timeout=300, check=False)  # fmt: skip


@pytest.fixture
def detected(datasets: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store of two EVTX attack samples, after `kestrel detect` with two Sigma rules."""
    if "db" not in _BUILT:
        work = tmp_path_factory.mktemp("findings")
        for archive, names, into in (
            (datasets / "evtx_attack_samples" / "evtx_attack_samples.zip", _EVTX, "evtx"),
            (datasets / "sigma" / "sigma_rules_windows_cloud.zip", _RULES, "rules"),
        ):
            if not archive.is_file():
                pytest.skip(f"{archive} not found")
            (work / into).mkdir()
            with zipfile.ZipFile(archive) as z:
                for name in names:
                    (work / into / Path(name).name).write_bytes(z.read(name))
        db = str(work / "k.duckdb")
        assert kestrel("ingest", "--db", db, str(work / "evtx")).returncode == 0
        out = kestrel("detect", "--db", db, "--rules", str(work / "rules"))
        assert out.returncode == 0, out.stderr
        _BUILT["db"] = work / "k.duckdb"
    return _BUILT["db"]


@pytest.mark.datasets
def test_sigma_findings_over_evtx(detected: Path) -> None:
    store = open_store(detected)
    try:
        with Session(store) as s:
            stored = FindingsTable(store).select()
            assert stored, "the two rules match these samples"
            s.execute("f = GET finding WHERE detector = 'sigma' AND severity_level >= 0")
            assert s.count("f") == len(stored)
            task = rows(s, "t = GET finding WHERE title LIKE 'Scheduled Task%'", "t",
                        "entity_type", "entity_id", "severity", "techniques")  # fmt: skip
            assert [(r["entity_type"], r["entity_id"]) for r in task] == [("host", "iewin7")]
            level = next(r["severity"] for r in stored if r["title"].startswith("Scheduled Task"))
            assert task[0]["severity"] == str(Severity(level)) and "T1053" in task[0]["techniques"]
            # the rule's evidence is the file-creation events of schtasks' task files: the
            # processes those events name are the ones that wrote them
            procs = rows(s, "p = FIND process LINKED t", "p", "name", "host")
            cited = store.query(
                "SELECT DISTINCT process_name AS name, host FROM events WHERE event_id IN "
                "(SELECT UNNEST(from_json(evidence, '[\"VARCHAR\"]')) FROM findings "
                "WHERE title LIKE 'Scheduled Task%') AND process_name IS NOT NULL"
            ).to_pylist()
            assert procs and {(r["name"], r["host"]) for r in procs} >= {
                (r["name"], r["host"]) for r in cited}  # fmt: skip
            # and back: the findings citing an event of those processes include the task one
            back = rows(s, "b = FIND finding LINKED p", "b", "title")
            assert "Scheduled Task Created - FileCreation" in {r["title"] for r in back}
    finally:
        store.close()
