"""`kestrel playbook validate|list|test|run` and `kestrel approve RUN_ID`."""

from __future__ import annotations

import getpass
import json
import tempfile
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from kestrel.cli import app, console, err_console

playbook_app = typer.Typer(help="Response playbooks: validate, list, test, run.")
app.add_typer(playbook_app, name="playbook")

POLICY = typer.Option(None, "--policy", help="Response policy YAML (default: all dry run).")
FINDING = typer.Option(..., "--finding", help="A finding as JSON (its export form).")
EVENT = typer.Option(None, "--event", help="Its evidence event as JSON (for {{ event.* }}).")


@playbook_app.command("validate")
def validate(paths: list[Path] = typer.Argument(..., help="Playbook files or folders.")) -> None:
    """Check playbooks against the schema; every error names its file and field."""
    from kestrel.errors import PlaybookError
    from kestrel.respond.playbook import _yaml_files, load_playbook

    files = [f for p in paths for f in (_yaml_files(p) if p.is_dir() else [p])]
    bad = 0
    for f in files:
        try:
            pb = load_playbook(f)
        except PlaybookError as exc:
            bad += 1
            err_console.print(f"[red]invalid[/] {exc}", highlight=False, soft_wrap=True)
            continue
        console.print(f"[green]ok[/] {f}: {pb.name}", highlight=False)
    if bad:
        raise SystemExit(2)  # not typer.Exit: main runs click with standalone_mode=False


@playbook_app.command("list")
def list_playbooks(paths: list[Path] = typer.Argument(..., help="Files or folders.")) -> None:
    """Name, trigger, steps, approval and cooldown of each playbook."""
    from kestrel.respond import load_playbooks

    table = Table(title="playbooks")
    for col in ("name", "trigger", "steps", "approval", "cooldown"):
        table.add_column(col)
    for pb in load_playbooks(paths):
        trigger = ", ".join(f"{k}={v}" for k, v in pb.trigger.model_dump().items() if v)
        steps = " → ".join(s.action for s in pb.steps)
        table.add_row(pb.name, trigger or "any", steps, "yes" if pb.requires_approval else "",
                      f"{pb.cooldown}s" if pb.cooldown else "")  # fmt: skip
    console.print(table)


@playbook_app.command("test")
def test(
    playbook: Path = typer.Argument(..., help="The playbook file."),
    finding: Path = FINDING,
    event: Path | None = EVENT,
    policy: Path | None = typer.Option(None, "--policy", help="Policy (default: allow all)."),
) -> None:
    """Run a playbook against a finding with in-memory actions: nothing is touched; shows
    which steps would run, what the policy decides, and the templated parameters."""
    from kestrel.respond import ACTIONS, Policy, PolicyEngine, load_policy, recording_actions
    from kestrel.respond.local import ResponsePaths, local_executor

    engine = PolicyEngine(load_policy(policy) if policy else
                          Policy(mode="enforce", allow={n: ["*"] for n in ACTIONS}))  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="kestrel-playbook-test-") as tmp:
        ex = local_executor(ResponsePaths(Path(tmp)), None, "playbook-test", recording_actions())
        ex.policy = engine
        runs = _respond(ex, playbook, finding, event)
    _show(runs)


@playbook_app.command("run")
def run(
    playbook: Path = typer.Argument(..., help="The playbook file."),
    finding: Path = FINDING,
    event: Path | None = EVENT,
    policy: Path | None = POLICY,
) -> None:
    """Run a playbook against a finding on this host, under the policy (dry run unless the
    policy allows), writing the audit log; prints the run id for `kestrel approve`."""
    from kestrel.respond.local import default_paths, local_executor

    ex = local_executor(default_paths(), policy, f"cli:{getpass.getuser()}")
    _show(_respond(ex, playbook, finding, event))


@app.command()
def approve(
    run_id: str = typer.Argument(..., help="The run waiting for approval (r-...)."),
    by: str | None = typer.Option(None, "--by", help="Who approves (default: the user)."),
    policy: Path | None = POLICY,
) -> None:
    """Approve a playbook run that waits for approval, and carry it out now."""
    from kestrel.respond.local import default_paths, local_executor

    who = by or f"cli:{getpass.getuser()}"
    _show([local_executor(default_paths(), policy, who).approve(run_id, who)])


def _respond(ex: Any, playbook: Path, finding: Path, event: Path | None) -> list[Any]:
    from kestrel.respond import load_playbook
    from kestrel.respond.local import finding_from_json

    pb = load_playbook(playbook)
    found = finding_from_json(_json(finding))
    events = [_json(event)] if event else []
    runs = ex.respond(found, [pb], events)
    if not runs:
        console.print(f"playbook {pb.name} does not match this finding")
    return list(runs)


def _json(path: Path) -> dict[str, Any]:
    from kestrel.errors import ConfigError

    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    return doc


def _show(runs: list[Any]) -> None:
    for r in runs:
        console.print(f"run [bold]{r.run_id}[/] playbook {r.playbook.name}: {r.status}",
                      highlight=False)  # fmt: skip
        table = Table()
        for col in ("step", "action", "verdict", "ok", "detail / reason", "params"):
            table.add_column(col)
        for o in r.outcomes:
            table.add_row(f"{o.phase}.{o.index}", o.action, o.verdict, "yes" if o.ok else "no",
                          o.detail or o.reason, json.dumps(o.data.get("params", {})))  # fmt: skip
        if r.outcomes:
            console.print(table)
