"""Labelled datasets for the cloud evaluation, each as groups of raw records with labels.

A *group* is evaluated on its own (fresh detectors, its own scratch store): one Stratus Red
Team detonation, one Panther test case, one generated day. Labels are per record:

* ``stratus``: every record of a detonation is positive (the authors recorded only the
  attack); the label is the Stratus technique id. There are no negatives.
* ``panther``: each Panther rule test case is one CloudTrail record; positive when the case
  expects *its* rule to fire. A negative is negative for that one rule only, so a flagged
  negative may well be suspicious for another reason: the harness lists them all. A negative
  case whose very event is another rule's positive case is scored positive (`_positive_for`).
* ``generated:<scenario>``: `kestrel.eval.generate` output; records named in the labels file
  are positive (label = scenario), everything else negative. Synthetic.
* ``otrf``: OTRF's CloudGoat S3 exfiltration replay; every record positive (the dataset is
  the attack window), label T1078.004 / T1530.

Harness-only strings (Stratus' ``stratus-red-team_<uuid>`` user agent, resource names that
carry ``stratus``) are rewritten in every record before detection (`scrub`).
"""

from __future__ import annotations

import gzip
import io
import json
import re
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kestrel.errors import ConfigError
from kestrel.eval.generate import SCENARIOS, generate

_HARNESS = re.compile(rb"(?i)stratus[-_ ]?red[-_ ]?team|stratus")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass
class Record:
    """One raw record and its label (``positive`` and a label name)."""

    raw: bytes
    positive: bool
    label: str
    fmt: str = "cloudtrail"
    key: str = ""  # where the record came from (file / case name)
    excluded: str = ""  # why the record is out of the evaluation's scope ("" = in scope)
    # a negative case whose very event is a positive case of these other rules (Panther):
    # scored positive, labelled with the first of them; "" = labelled as written
    conflict: str = ""


@dataclass
class Group:
    """Records evaluated together, with fresh detectors."""

    name: str
    records: list[Record] = field(default_factory=list)


def scrub(raw: bytes) -> bytes:
    """Rewrite strings only a test harness emits, so no detection can key on them.

    >>> scrub(b'{"userAgent":"stratus-red-team_1b2c","bucket":"my-stratus-x"}')
    b'{"userAgent":"redacted_1b2c","bucket":"my-redacted-x"}'
    """
    return _HARNESS.sub(b"redacted", raw)


def load(name: str, root: Path) -> list[Group]:
    """The groups of dataset ``name`` under ``root`` (the shared datasets folder)."""
    if name == "stratus":
        return list(stratus(root / "stratus_red_team" / "stratus_detonation_logs.zip"))
    if name == "panther":
        return list(panther(root / "panther_cloudtrail_tests" /
                            "panther_aws_cloudtrail_rule_tests.jsonl.gz"))  # fmt: skip
    if name == "otrf":
        path = root / "otrf_security_datasets" / "atomic" / "aws" / "collection"
        return [otrf(path / "ec2_proxy_s3_exfiltration.zip")]
    if name.startswith("generated"):
        scenario = name.partition(":")[2] or "all"
        return [generated(scenario)]
    raise ConfigError(f"unknown dataset {name!r}; known: stratus, panther, otrf, "
                      f"generated[:{'|'.join(SCENARIOS)}|all]")  # fmt: skip


def _dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def stratus(path: Path) -> Iterator[Group]:
    """One group per Stratus technique's detonation log."""
    _need(path)
    with zipfile.ZipFile(path) as zf:
        for member in sorted(zf.namelist()):
            if not member.startswith("detonation-logs/") or not member.endswith(".json"):
                continue
            technique = Path(member).stem
            recs = json.loads(zf.read(member))
            yield Group(technique, [Record(_dumps(r), True, technique, key=technique)
                                    for r in recs])  # fmt: skip


def panther(path: Path) -> Iterator[Group]:
    """One group per Panther rule test case.

    Scope: a case is evaluated when its log is a CloudTrail record. Panther's cross-source
    ``Standard.*`` rules list ``AWS.CloudTrail`` among a dozen log types and some of their
    cases are Okta, OneLogin, GSuite, Zoom, ... records, or bare Panther enrichment stubs
    (``p_enrichment`` / ``p_any_*`` fields only): those are kept, marked ``excluded`` with the
    reason, and left out of the scores. CloudTrail records stored with lower-cased keys
    (Panther's data-lake form: ``eventname``, ``useridentity``) get their CloudTrail names
    back (`camel_keys`). A test record without ``eventTime``, or whose ``eventTime`` the case's
    author replaced with text (``"..."``, ``"redacted"``; a real CloudTrail record always has
    a time), gets Panther's ``p_event_time`` or, failing that, a fixed placeholder time
    (`_placeholder_time`), so that it is detected at all; nothing else in a record is changed.
    """
    _need(path)
    with gzip.open(path, "rt", encoding="utf-8") as f:
        cases = [json.loads(line) for line in f]
    positive_for = _positive_for(cases)
    for i, case in enumerate(cases):
        name = f"{case['rule_id']}::{case['test_name']}"
        log = case["log"]
        if "eventName" not in log and "eventname" in log:
            log = camel_keys(log)
        excluded = "" if "eventName" in log else _not_cloudtrail(log)
        if not excluded and not _DATE.match(str(log.get("eventTime") or "")):
            log = {**log, "eventTime": _placeholder_time(log)}
        positive, label, conflict = bool(case["expected_result"]), case["rule_id"], ""
        others = sorted(positive_for.get(_same_event(case["log"]), set()) - {label})
        if not positive and others:
            positive, label, conflict = True, others[0], ", ".join(others)
        rec = Record(_dumps(log), positive, label, key=name, excluded=excluded,
                     conflict=conflict)  # fmt: skip
        yield Group(f"{i:03d} {name}", [rec])


# what does not make two Panther test records different events: the ids and time a case's
# author filled in, and Panther's own enrichment (``p_*``)
_CASE_NOISE = {"eventTime", "eventID", "requestID", "sharedEventID"}


def _same_event(log: Mapping[str, Any]) -> str:
    """A key equal for two test records that describe the same event."""
    kept = {k: v for k, v in log.items() if k not in _CASE_NOISE and not k.startswith("p_")}
    return json.dumps(kept, sort_keys=True)


def _positive_for(cases: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Per event (`_same_event`), the rules whose positive cases hold it.

    Why: Panther's labels are per rule, and several records are written twice, once as a
    positive case of one rule and once as a negative case of another (a successful root
    login is a positive of ``AWS.Console.RootLogin`` and a negative of
    ``AWS.Console.RootLoginFailed``). The dataset itself says such an event should raise an
    alert, so the evaluation counts it positive (`Record.conflict` names the rules, and the
    scores as labelled case by case are reported beside)."""
    out: dict[str, set[str]] = {}
    for case in cases:
        if case["expected_result"]:
            out.setdefault(_same_event(case["log"]), set()).add(case["rule_id"])
    return out


# CloudTrail's field names, by their lower-cased form (top level and userIdentity)
_CLOUDTRAIL_KEYS = {k.lower(): k for k in (
    "eventVersion", "userIdentity", "eventTime", "eventSource", "eventName", "awsRegion",
    "sourceIPAddress", "userAgent", "errorCode", "errorMessage", "requestParameters",
    "responseElements", "additionalEventData", "requestID", "eventID", "readOnly",
    "resources", "eventType", "apiVersion", "managementEvent", "recipientAccountId",
    "serviceEventDetails", "sharedEventID", "vpcEndpointId", "eventCategory", "tlsDetails",
    "sessionCredentialFromConsole", "type", "principalId", "arn", "accountId",
    "accessKeyId", "userName", "invokedBy", "sessionContext", "sessionIssuer",
    "webIdFederationData", "attributes", "creationDate", "mfaAuthenticated",
)}  # fmt: skip


def camel_keys(log: Mapping[str, Any]) -> dict[str, Any]:
    """A CloudTrail record with lower-cased keys, with CloudTrail's own key names again
    (top level and ``userIdentity``; request / response bodies are left alone).

    >>> camel_keys({"eventname": "CreateIPSet", "useridentity": {"accountid": "1"}})
    {'eventName': 'CreateIPSet', 'userIdentity': {'accountId': '1'}}
    """
    out: dict[str, Any] = {}
    for key, value in log.items():
        name = _CLOUDTRAIL_KEYS.get(key, key)
        if name == "userIdentity" and isinstance(value, dict):
            value = {_CLOUDTRAIL_KEYS.get(k, k): v for k, v in value.items()}
        out.setdefault(name, value)
    return out


def _placeholder_time(log: dict[str, object]) -> str:
    """``p_event_time`` as ISO 8601, else a fixed working-hours time (a placeholder only:
    every Panther case is its own group, so no other record is near it in time)."""
    stamp = str(log.get("p_event_time") or "")
    if not _DATE.match(stamp):
        stamp = "2024-01-15T12:00:00Z"
    return stamp.replace(" ", "T", 1) if "T" not in stamp else stamp


def _not_cloudtrail(log: dict[str, object]) -> str:
    kind = log.get("p_log_type")
    if kind and kind != "AWS.CloudTrail":
        return f"not a CloudTrail record ({kind})"
    return "not a CloudTrail record (no eventName; Panther enrichment fields only)"


def otrf(path: Path) -> Group:
    """The CloudGoat S3 exfiltration replay (JSON lines in a zip), all positive."""
    _need(path)
    group = Group("otrf:ec2_proxy_s3_exfiltration")
    with zipfile.ZipFile(path) as zf:
        for member in zf.namelist():
            if member.endswith((".json", ".jsonl")):
                for line in io.TextIOWrapper(zf.open(member), encoding="utf-8"):
                    if line.strip():
                        group.records.append(Record(line.strip().encode(), True, "T1530"))
    return group


def generated(scenario: str, hours: int = 24, seed: int = 7) -> Group:
    """A generated day (normal traffic plus ``scenario``), labelled from its labels file."""
    gen = generate(scenario, hours, seed)
    labels = {str(lab["id"]): str(lab["scenario"]) for lab in gen.labels}
    group = Group(f"generated:{scenario}")
    for rec in gen.cloudtrail:
        label = labels.get(rec["eventID"], "normal")
        group.records.append(Record(_dumps(rec), label != "normal", label, "cloudtrail"))
    for row in gen.metrics:
        label = labels.get(str(row.get("sample_id")), "normal")
        group.records.append(Record(_dumps(row), label != "normal", label, "metrics"))
    return group


def _need(path: Path) -> None:
    if not path.is_file():
        raise ConfigError(f"dataset file not found: {path}")
