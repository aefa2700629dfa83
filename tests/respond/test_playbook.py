"""Playbook loading: the shipped playbooks validate, each malformed case is rejected with
a message naming its field, and matching / templating behave."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.respond.conftest import make_finding

from kestrel.errors import PlaybookError
from kestrel.findings import Severity
from kestrel.respond import load_playbooks, parse_playbook
from kestrel.respond.playbook import finding_context, render, triggered

ROOT = Path(__file__).resolve().parents[2]
CASES = yaml.safe_load((Path(__file__).parent / "cases" / "invalid_playbooks.yml").read_text())


def test_shipped_playbooks_validate():
    names = {pb.name for pb in load_playbooks([ROOT / "playbooks"])}
    assert {"malware-process", "cloud-key-abuse", "notify-critical"} <= names


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_malformed_playbook_names_the_field(case: dict[str, Any]):
    with pytest.raises(PlaybookError) as err:
        parse_playbook(case["yaml"], "case.yml")
    message = str(err.value)
    assert message.startswith("case.yml: ")
    assert case["field"] + ":" in message, message


def test_not_yaml_and_not_a_mapping():
    with pytest.raises(PlaybookError, match="not YAML"):
        parse_playbook("a: [", "p.yml")
    with pytest.raises(PlaybookError, match="a playbook is a mapping"):
        parse_playbook("- 1", "p.yml")


def test_duplicate_names_are_refused(tmp_path: Path):
    text = (ROOT / "playbooks" / "notify-critical.yml").read_text()
    (tmp_path / "a.yml").write_text(text)
    (tmp_path / "b.yaml").write_text(text)
    with pytest.raises(PlaybookError, match="defined twice"):
        load_playbooks([tmp_path])


PB = """
name: t
trigger: {detector: "yara-*", severity: medium, technique: T1059, entity_type: host}
conditions:
  - {field: finding.title, op: contains, value: bad}
  - {field: event.process_pid, op: gt, value: 100}
steps: [{action: kill_process, params: {pid: "{{ event.process_pid }}"}}]
"""


def test_trigger_and_conditions():
    pb = parse_playbook(PB)
    event = {"process_pid": 4242}
    f = make_finding()
    assert triggered(pb, f, finding_context(f, [event]))
    assert not triggered(pb, f, finding_context(f, [{"process_pid": 5}]))
    assert not triggered(pb, f, finding_context(f, []))  # no event: the condition fails
    low = make_finding(severity=Severity.LOW)
    assert not triggered(pb, low, finding_context(low, [event]))
    other = make_finding(detector="sigma")
    assert not triggered(pb, other, finding_context(other, [event]))


def test_render_keeps_types_and_names_missing_paths():
    ctx = finding_context(make_finding(), [{"process_pid": 7, "host": "h"}])
    assert render({"pid": "{{ event.process_pid }}"}, ctx) == {"pid": 7}
    assert render("on {{ event.host }}: {{finding.entity.id}}", ctx) == "on h: web-01"
    assert render(["{{ finding.signals.0.name }}"], ctx) == ["yara:Kestrel_Test"]
    with pytest.raises(KeyError, match=r"event\.nope"):
        render("{{ event.nope }}", ctx)
