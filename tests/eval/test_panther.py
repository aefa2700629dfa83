"""Panther's CloudTrail rule cases: what the adapter keeps in scope, how records that are not
CloudTrail are reported instead of scored, and (with the shared data) the figures and the
flagged-negative list the docs quote."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from kestrel.eval.cloud import eval_detectors, evaluate, sigma_cloudtrail_rules
from kestrel.eval.datasets import Group, Record, camel_keys, load, panther
from kestrel.pipeline import default_detectors


def _cases(tmp_path: Path, logs: list[tuple[dict[str, Any], bool]]) -> Path:
    path = tmp_path / "cases.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for i, (log, expected) in enumerate(logs):
            case = {"rule_id": f"R{i}", "test_name": f"t{i}", "expected_result": expected,
                    "log": log}  # fmt: skip
            f.write(json.dumps(case) + "\n")
    return path


STOP = {"eventName": "StopLogging", "eventSource": "cloudtrail.amazonaws.com",
        "eventTime": "2024-05-01T10:00:00Z", "recipientAccountId": "111122223333",
        "userIdentity": {"type": "IAMUser", "userName": "alice",
                         "arn": "arn:aws:iam::111122223333:user/alice"}}  # fmt: skip


def test_non_cloudtrail_cases_are_excluded_with_the_reason(tmp_path: Path) -> None:
    okta = {"eventType": "user.session.start", "p_log_type": "Okta.SystemLog"}
    stub = {"p_enrichment": {}, "p_any_ip_addresses": ["1.2.3.4"]}
    groups = list(panther(_cases(tmp_path, [(STOP, True), (okta, True), (stub, False)])))
    reasons = [g.records[0].excluded for g in groups]
    assert reasons[0] == ""
    assert reasons[1] == "not a CloudTrail record (Okta.SystemLog)"
    assert "no eventName" in reasons[2]


def test_excluded_records_are_reported_not_scored(tmp_path: Path) -> None:
    okta = {"eventType": "user.session.start", "p_log_type": "Okta.SystemLog"}
    groups = panther(_cases(tmp_path, [(STOP, True), (okta, True)]))
    result = evaluate("p", groups, lambda: default_detectors(("sigma",))).as_dict()
    assert result["event"]["tp"] == 1 and result["event"]["fn"] == 0
    assert result["excluded"]["records"] == 1 and result["excluded"]["positive"] == 1
    assert result["excluded"]["by_reason"] == {"not a CloudTrail record (Okta.SystemLog)": 1}
    assert result["without_sigma"]["event"] == result["event"]


def test_lower_cased_cloudtrail_keys_get_their_names_back(tmp_path: Path) -> None:
    lower = {"eventname": "StopLogging", "eventsource": "cloudtrail.amazonaws.com",
             "eventtime": "2024-05-01 10:00:00", "recipientaccountid": "111122223333",
             "useridentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/a",
                              "username": "a"}}  # fmt: skip
    assert camel_keys(lower)["userIdentity"] == {
        "type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/a", "userName": "a"}  # fmt: skip
    groups = list(panther(_cases(tmp_path, [(lower, True)])))
    result = evaluate("p", groups, lambda: default_detectors(("sigma",))).as_dict()
    assert result["event"]["tp"] == 1


def test_a_case_without_event_time_gets_a_placeholder(tmp_path: Path) -> None:
    timeless = {k: v for k, v in STOP.items() if k != "eventTime"}
    with_p = {**timeless, "p_event_time": "2021-08-31 15:46:02.000000000"}
    redacted = {**STOP, "eventTime": "...", "p_event_time": "redacted"}
    groups = list(panther(_cases(tmp_path, [(timeless, True), (with_p, True), (redacted, True)])))
    times = [json.loads(g.records[0].raw)["eventTime"] for g in groups]
    assert times == ["2024-01-15T12:00:00Z", "2021-08-31T15:46:02.000000000",
                     "2024-01-15T12:00:00Z"]  # fmt: skip
    result = evaluate("p", groups, lambda: default_detectors(("sigma",))).as_dict()
    assert result["event"]["tp"] == 3 and result["rejected_by_reader"] == 0


def test_without_sigma_leaves_the_sigma_flags_out() -> None:
    rec = Record(json.dumps(STOP).encode(), False, "R")
    result = evaluate("p", [Group("g", [rec])], lambda: default_detectors(("sigma",)))
    out = result.outcomes[0]
    out.detectors, out.signals = ("sigma",), ("sigma:x",)
    scored = result.as_dict()
    assert scored["event"]["fp"] == 1
    assert scored["without_sigma"]["event"]["fp"] == 0


def test_a_negative_case_of_another_rules_positive_event_is_scored_positive(
    tmp_path: Path,
) -> None:
    """The same event as a positive case of R0 and a negative case of R1 (its time, ids and
    Panther enrichment differ): scored positive, labelled R0, reported as a conflict; the
    scores as written are kept beside. An event that differs in a request field is not."""
    again = {**STOP, "eventTime": "2024-06-01T00:00:00Z", "eventID": "x", "p_any": ["1"]}
    other = {**STOP, "requestParameters": {"name": "trail-2"}}
    groups = list(panther(_cases(tmp_path, [(STOP, True), (again, False), (other, False)])))
    recs = [g.records[0] for g in groups]
    assert [(r.positive, r.label, r.conflict) for r in recs] == [
        (True, "R0", ""), (True, "R0", "R0"), (False, "R2", "")]  # fmt: skip
    result = evaluate("p", groups, lambda: default_detectors(("sigma",))).as_dict()
    conflicts = result["label_conflicts"]
    assert conflicts["records"] == 1 and conflicts["cases"][0]["positive_for"] == "R0"
    assert result["event"]["tp"] == 2 and result["event"]["fp"] == 1
    assert conflicts["event_as_labelled"]["tp"] == 1
    assert conflicts["event_as_labelled"]["fp"] == 2


@pytest.mark.datasets
def test_sigma_cloudtrail_rules_are_medium_or_above(datasets: Path) -> None:
    rules = sigma_cloudtrail_rules(datasets / "sigma" / "sigma_rules_windows_cloud.zip")
    assert len(rules) >= 30
    assert {r.meta.level for r in rules} <= {"medium", "high", "critical"}
    assert all(r.meta.logsource.startswith("aws") or "cloudtrail" in r.meta.logsource
               for r in rules)  # fmt: skip
    assert eval_detectors(datasets)()["sigma"] is not None


@pytest.mark.datasets
def test_panther_figures_and_flagged_negatives(datasets: Path) -> None:
    """The cloud detectors on every in-scope Panther case: the figures quoted in the docs
    (floors, so that an improvement does not break the test), every in-scope record read,
    every flagged negative listed with its signal, and none of them a failed call (rows
    count successful calls unless the attempt is the signal, and no attempt row fired)."""
    groups = load("panther", datasets)
    result = evaluate("panther", groups, lambda: default_detectors(("sigma",))).as_dict()
    assert result["excluded"]["records"] == 65
    assert result["rejected_by_reader"] == 0
    assert result["event"]["precision"] >= 0.88
    assert result["event"]["recall"] >= 0.80
    conflicts = result["label_conflicts"]
    assert conflicts["records"] == 11 and conflicts["flagged"] == 8
    assert conflicts["event_as_labelled"]["precision"] >= 0.84
    assert conflicts["event_as_labelled"]["recall"] >= 0.81
    assert result["by_severity"]["medium"]["recall"] >= 0.70
    raw = {g.records[0].key: json.loads(g.records[0].raw) for g in groups}
    for fp in result["false_positives"]:
        assert fp["signals"] and fp["severity"], fp
        assert not raw[fp["key"]].get("errorCode"), fp
