"""Sigma semantics, one behaviour per test: modifiers, conditions, case, NULL-safe negation.

Each test states a rule and the events it must and must not fire on (record ids)."""

from __future__ import annotations

import base64

import pytest


def test_contains_is_case_insensitive(match, event):
    events = [event(1, 1, CommandLine="POWERSHELL -EncodedCommand x"), event(1, 2, CommandLine="a")]
    det = "    sel:\n        CommandLine|contains: 'powershell -enc'\n    condition: sel"
    assert match(det, events) == [1]


def test_startswith_endswith_and_equals(match, event):
    events = [
        event(1, 1, Image="C:\\Windows\\System32\\cmd.exe"),
        event(1, 2, Image="C:\\Temp\\cmd.exe.bak"),
        event(1, 3, Image="c:\\windows\\system32\\CMD.EXE"),
    ]
    det = (
        "    a:\n        Image|startswith: 'C:\\Windows\\'\n"
        "    b:\n        Image|endswith: '\\cmd.exe'\n"
        "    condition: a and b"
    )
    assert match(det, events) == [1, 3]
    assert match(
        "    a:\n        Image: 'c:\\windows\\system32\\cmd.exe'\n    condition: a", events
    ) == [1, 3]


def test_inner_wildcards(match, event):
    events = [event(1, 1, CommandLine="rundll32 x.dll,Entry"), event(1, 2, CommandLine="rundll32")]
    det = "    sel:\n        CommandLine: 'rundll32*.dll,?ntry'\n    condition: sel"
    assert match(det, events) == [1]


def test_cased_modifier_is_case_sensitive(match, event):
    events = [
        event(1, 1, CommandLine="Invoke-Mimikatz"),
        event(1, 2, CommandLine="invoke-mimikatz"),
    ]
    det = "    sel:\n        CommandLine|contains|cased: 'Invoke-Mimikatz'\n    condition: sel"
    assert match(det, events) == [1]


def test_re_with_and_without_ignorecase(match, event):
    events = [event(1, 1, CommandLine="NET USER admin"), event(1, 2, CommandLine="net user admin")]
    det = "    sel:\n        CommandLine|re: 'net\\s+user'\n    condition: sel"
    assert match(det, events) == [2]
    det_i = "    sel:\n        CommandLine|re|i: 'net\\s+user'\n    condition: sel"
    assert match(det_i, events) == [1, 2]


def test_all_modifier_needs_every_value(match, event):
    events = [event(1, 1, CommandLine="a b c"), event(1, 2, CommandLine="a c")]
    det = "    sel:\n        CommandLine|contains|all: ['a', 'b']\n    condition: sel"
    assert match(det, events) == [1]


def test_windash_matches_slash_and_dash(match, event):
    events = [event(1, i, CommandLine=f"whoami {d}priv") for i, d in enumerate("-/x", 1)]
    det = "    sel:\n        CommandLine|windash|contains: ' -priv'\n    condition: sel"
    assert match(det, events) == [1, 2]


def test_base64offset(match, event):
    encoded = base64.b64encode(b"xxIEX (New-Object Net.WebClient)").decode()
    events = [event(1, 1, CommandLine=f"powershell -e {encoded}"), event(1, 2, CommandLine="x")]
    det = (
        "    sel:\n        CommandLine|base64offset|contains: 'IEX (New-Object'\n    condition: sel"
    )
    assert match(det, events) == [1]


def test_utf16le_base64(match, event):
    encoded = base64.b64encode("Invoke-Expression".encode("utf-16le")).decode()
    events = [event(1, 1, CommandLine=f"powershell -enc {encoded}")]
    det = (
        "    sel:\n        CommandLine|wide|base64|contains: 'Invoke-Expression'\n"
        "    condition: sel"
    )
    assert match(det, events) == [1]


def test_cidr(match, event):
    events = [event(3, 1, DestinationIp="10.1.2.3"), event(3, 2, DestinationIp="110.1.2.3")]
    det = "    sel:\n        DestinationIp|cidr: '10.0.0.0/8'\n    condition: sel"
    assert match(det, events, category="network_connection") == [1]


def test_cidr_ipv6(match, event):
    # pySigma expands fe80::/10 to fe8?:* ... feb?:*, "?" one hex digit (found by the 1M
    # agreement with SQLite: it was taken as a literal "?", so no IPv6 range ever matched).
    ips = ["fe80:0:0:0:3816:b2ee:1b9b:324b", "FEBF::1", "fec0::1", "fe8::1", "::1"]
    events = [event(3, i, DestinationIp=ip) for i, ip in enumerate(ips, 1)]
    det = "    sel:\n        DestinationIp|cidr:\n            - 'fe80::/10'\n    condition: sel"
    # fe8::1 (0fe8::1) is outside the range, but the patterns are text: "?" matches its ":",
    # as in pySigma's own backends (SQLite: LIKE 'fe8_:%').
    assert match(det, events, category="network_connection") == [1, 2, 4]
    det = "    sel:\n        DestinationIp|cidr: '::1/128'\n    condition: sel"
    assert match(det, events, category="network_connection") == [5]


def test_numeric_comparisons(match, event):
    events = [event(3, i, DestinationPort=p) for i, p in enumerate((22, 4444, 8080), 1)]
    det = (
        "    sel:\n        DestinationPort|gte: 4444\n        DestinationPort|lt: 8000\n"
        "    condition: sel"
    )
    assert match(det, events, category="network_connection") == [2]


def test_exists_and_null(match, event):
    events = [event(1, 1, Image="a.exe", OriginalFileName=""), event(1, 2, Image="b.exe")]
    has = "    sel:\n        OriginalFileName|exists: true\n    condition: sel"
    assert match(has, events) == [1]
    null = "    sel:\n        OriginalFileName: null\n    condition: sel"
    assert match(null, events) == [1, 2]


def test_fieldref(match, event):
    events = [
        event(1, 1, Image="C:\\x\\a.exe", ParentImage="C:\\x\\a.exe"),
        event(1, 2, Image="C:\\x\\a.exe", ParentImage="C:\\x\\b.exe"),
    ]
    det = "    sel:\n        Image|fieldref: ParentImage\n    condition: sel"
    assert match(det, events) == [1]


def test_not_is_null_safe(match, event):
    """An event without the excluded field is not excluded (SQL NOT over NULL would drop it)."""
    events = [
        event(1, 1, Image="C:\\a\\cmd.exe", ParentImage="C:\\explorer.exe"),
        event(1, 2, Image="C:\\a\\cmd.exe"),
        event(1, 3, Image="C:\\a\\cmd.exe", ParentImage="C:\\Windows\\svchost.exe"),
    ]
    det = (
        "    sel:\n        Image|endswith: '\\cmd.exe'\n"
        "    filter:\n        ParentImage|endswith: '\\svchost.exe'\n"
        "    condition: sel and not filter"
    )
    assert match(det, events) == [1, 2]


def test_one_of_and_all_of_with_wildcards(match, event):
    events = [event(1, 1, CommandLine="aaa"), event(1, 2, CommandLine="aaa bbb")]
    sels = (
        "    sel_a:\n        CommandLine|contains: 'aaa'\n"
        "    sel_b:\n        CommandLine|contains: 'bbb'\n"
    )
    assert match(sels + "    condition: 1 of sel_*", events) == [1, 2]
    assert match(sels + "    condition: all of sel_*", events) == [2]


def test_keywords_search_the_whole_record(match, event):
    events = [
        event(1, 1, CommandLine="x", Description="Mimikatz tool"),
        event(1, 2, CommandLine="y"),
    ]
    det = "    keywords:\n        - 'mimikatz'\n    condition: keywords"
    assert match(det, events) == [1]


def test_rule_only_sees_its_logsource(match, event):
    """A file_event rule does not fire on a process creation with the same path."""
    events = [event(1, 1, Image="C:\\evil.exe"), event(11, 2, TargetFilename="C:\\evil.exe")]
    proc = "    sel:\n        Image|endswith: 'evil.exe'\n    condition: sel"
    assert match(proc, events) == [1]
    file = "    sel:\n        TargetFilename|endswith: 'evil.exe'\n    condition: sel"
    assert match(file, events, category="file_event") == [2]


def test_security_4688_is_process_creation(match, event):
    events = [event(4688, 1, channel="Security", NewProcessName="C:\\Windows\\cmd.exe")]
    det = "    sel:\n        Image|endswith: '\\cmd.exe'\n    condition: sel"
    assert match(det, events) == [1]


def test_registry_delete_needs_delete_event_type(match, event):
    events = [
        event(12, 1, EventType="DeleteKey", TargetObject="HKLM\\Run\\x"),
        event(12, 2, EventType="CreateKey", TargetObject="HKLM\\Run\\x"),
    ]
    det = "    sel:\n        TargetObject|contains: '\\Run\\'\n    condition: sel"
    assert match(det, events, category="registry_delete") == [1]


@pytest.mark.parametrize("value", ["", "x" * 2])
def test_short_literals_are_not_a_prefilter(match, event, value):
    """A rule whose literals are too short to filter on still runs on every event."""
    events = [event(1, 1, CommandLine=f"a{value}b")]
    det = f"    sel:\n        CommandLine|contains: 'a{value}b'\n    condition: sel"
    assert match(det, events) == [1]
