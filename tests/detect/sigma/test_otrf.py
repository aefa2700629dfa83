"""The OTRF evaluation's bookkeeping: which technique ids count as named, and the table."""

from __future__ import annotations

from kestrel.eval.sigma_otrf import DatasetResult, markdown, names


def test_a_technique_is_named_by_itself_its_parent_or_its_subtechnique():
    assert names("T1003.002", "T1003.002")
    assert names("T1003.002", "T1003")
    assert names("T1003", "T1003.001")
    assert not names("T1003.002", "T1003.001")
    assert not names("T1003", "T1030")


def test_markdown_counts_labelled_techniques_once():
    rows = [
        DatasetResult("a", "A", ("T1059",), 10, 2, 2, True),
        DatasetResult("b", "B", ("T1059",), 5, 0, 0, False),
        DatasetResult("c", "C", ("T1003.001",), 7, 1, 1, False),
    ]
    text = markdown(rows)
    assert "| A | T1059 | 10 | 2 | 2 | yes |" in text
    assert text.endswith("1 of 2 labelled techniques named by a finding.")
