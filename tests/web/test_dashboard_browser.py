"""The dashboard in headless Chromium: log in, see the seeded findings, open one,
acknowledge it, run the live scenario and see a finding appear. Screenshots of each step
are kept under test-artifacts/screenshots/."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def log_in(page: Any, served: Any) -> None:
    page.goto(f"{served.url}/ui/")
    expect(page).to_have_url(re.compile(r"/ui/login$"))
    page.fill("#token", served.token)
    page.click("button[type=submit]")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()


def test_login_findings_open_and_acknowledge(page: Any, served: Any, shot: Any) -> None:
    log_in(page, served)
    expect(page.get_by_test_id("severity-tiles")).to_contain_text("1")
    expect(page.get_by_test_id("heatmap")).to_contain_text("T1059.004")
    page.wait_for_selector("canvas[data-drawn]")
    shot(page, "01-overview")
    page.click("text=Findings")
    row = page.get_by_test_id("findings").get_by_role("link", name="Web server spawned a shell")
    expect(row).to_be_visible()
    shot(page, "02-findings")
    row.click()
    expect(page.get_by_test_id("signals")).to_contain_text("cmdline.zscore")
    expect(page.get_by_test_id("evidence")).to_contain_text("process")
    expect(page.get_by_test_id("status")).to_have_text("new")
    page.fill("#note", "triaging in the browser")
    page.click("button[value=acknowledged]")
    expect(page.get_by_test_id("status")).to_have_text("acknowledged")
    expect(page.locator(".history")).to_contain_text("triaging in the browser")
    shot(page, "03-finding-acknowledged")
    page.click("text=web-01")
    expect(page.get_by_test_id("profile")).to_contain_text("agent")
    shot(page, "04-entity")


def test_live_scenario_shows_a_finding_appear(page: Any, served: Any, shot: Any) -> None:
    log_in(page, served)
    page.click("text=Live scenario")
    page.select_option("[data-testid=scenario]", "gpu_hijack")
    page.click("[data-testid=start]")
    expect(page.get_by_test_id("verdict")).to_have_text("malicious", timeout=60_000)
    expect(page.get_by_test_id("live-findings")).to_contain_text("GPU hijack")
    shot(page, "05-live-scenario")


def test_hunt_console_runs_a_hunt_and_shows_a_row(page: Any, served: Any, shot: Any) -> None:
    log_in(page, served)
    page.click("text=Hunt")
    page.fill("[data-testid=hunt-text]", "procs = GET process\nDISP procs ATTR name, pid")
    page.click("[data-testid=run-hunt]")
    table = page.get_by_test_id("hunt-table")
    expect(table.get_by_role("cell", name="gunicorn", exact=True)).to_be_visible()
    shot(page, "06-hunt-console")
    page.fill("[data-testid=hunt-text]", "procs = GET process WHERE")
    page.click("[data-testid=run-hunt]")
    expect(page.get_by_test_id("hunt-error")).to_contain_text("line 1, column")


def test_playbooks_and_rules_pages_render_cleanly(page: Any, served: Any, shot: Any) -> None:
    """No responder or rule sets on this server: the pages say so, with no CSP or script
    errors in the console (the page fixture fails the test on any)."""
    log_in(page, served)
    page.click("nav >> text=Playbooks")
    expect(page.get_by_test_id("playbooks")).to_contain_text("No playbooks configured")
    expect(page.get_by_test_id("runs")).to_contain_text("No runs yet")
    shot(page, "07-playbooks")
    page.click("nav >> text=Rules")
    expect(page.get_by_test_id("rule-sets")).to_be_visible()
    shot(page, "08-rules")
