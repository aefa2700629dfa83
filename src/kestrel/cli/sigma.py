"""`kestrel rules list|test|stats`, `kestrel detect`, `kestrel eval sigma-regression`."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from kestrel.cli import app, console
from kestrel.config import default_db

if TYPE_CHECKING:
    from kestrel.detect.sigma import CompiledRule, RuleIssue

rules_app = typer.Typer(help="Sigma rules: list them, test them, count what compiles.")
eval_app = typer.Typer(help="Evaluate detection on labelled public data.")
app.add_typer(rules_app, name="rules")
app.add_typer(eval_app, name="eval")

RULES_OPTION = typer.Option(
    None, "--rules", help="Rule files, folders or zips (default: $KESTREL_SIGMA_RULES)."
)


def _rule_paths(rules: list[Path] | None) -> list[Path]:
    from kestrel.detect.sigma.detector import default_rule_paths
    from kestrel.errors import ConfigError

    paths = list(rules or []) or [Path(p) for p in default_rule_paths()]
    if not paths:
        raise ConfigError("no Sigma rules: pass --rules PATH or set KESTREL_SIGMA_RULES")
    return paths


def _compile(paths: list[Path]) -> tuple[list[CompiledRule], list[RuleIssue]]:
    from kestrel.detect.sigma import compile_rules, load_rules

    loaded = load_rules(paths)
    compiled, issues = compile_rules(loaded.rules)
    return compiled, loaded.issues + issues


@rules_app.command("list")
def rules_list(
    rules: list[Path] | None = RULES_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Every compiled rule: id, level, logsource, title."""
    compiled, _ = _compile(_rule_paths(rules))
    rows = [(r.meta.id, r.meta.level, r.meta.logsource, r.meta.title) for r in compiled]
    if as_json:
        keys = ("id", "level", "logsource", "title")
        print(json.dumps([dict(zip(keys, row, strict=True)) for row in rows]))
        return
    table = Table(title=f"{len(rows):,} rules")
    for col in ("id", "level", "logsource", "title"):
        table.add_column(col)
    for row in rows:
        table.add_row(*row)
    console.print(table)


@rules_app.command("stats")
def rules_stats(
    rules: list[Path] | None = RULES_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """How many rules compile, which do not and why, and what the engine can dispatch."""
    compiled, issues = _compile(_rule_paths(rules))
    summary = _stats(compiled, issues)
    if as_json:
        print(json.dumps(summary))
        return
    console.print(
        f"{summary['compiled']:,} of {summary['total']:,} rules compiled; "
        f"{summary['no_reader']:,} have no Kestrel reader for their logsource yet; "
        f"{summary['no_literal']:,} run without a literal prefilter"
    )
    for issue in summary["not_compiled"]:  # type: ignore[attr-defined]
        console.print(f"[yellow]{issue['source']}[/]: {issue['reason']}", highlight=False)


def _stats(compiled: list[CompiledRule], issues: list[RuleIssue]) -> dict[str, object]:
    by_logsource = Counter(r.meta.logsource for r in compiled)
    return {
        "total": len(compiled) + len(issues),
        "compiled": len(compiled),
        "no_reader": sum(1 for r in compiled if r.dispatch.never),
        "no_literal": sum(1 for r in compiled if r.literals is None),
        "by_logsource": dict(by_logsource.most_common()),
        "not_compiled": [{"source": i.source, "rule_id": i.rule_id, "reason": i.reason}
                         for i in issues],
    }  # fmt: skip


@rules_app.command("test")
def rules_test(
    path: Path = typer.Argument(..., help="A rule file or folder, with regression data beside."),
    rules: list[Path] | None = RULES_OPTION,
) -> None:
    """Run the regression data (``info.yml`` + ``.evtx``) found under PATH."""
    from kestrel.eval.sigma_regression import run_regression

    report = run_regression(path, list(rules or []) or [path])
    _print_regression(report.as_dict())


@eval_app.command("sigma-regression")
def eval_sigma_regression(
    path: Path = typer.Argument(..., help="SigmaHQ regression data: a folder or a zip."),
    rules: list[Path] | None = RULES_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Does every SigmaHQ regression test's EVTX fire its rule (with all rules loaded)?"""
    from kestrel.eval.sigma_regression import run_regression

    summary = run_regression(path, _rule_paths(rules)).as_dict()
    if as_json:
        print(json.dumps(summary))
    else:
        _print_regression(summary)


@eval_app.command("sigma-otrf")
def eval_sigma_otrf(
    path: Path = typer.Argument(..., help="OTRF Security-Datasets folder (with manifest.csv)."),
    rules: list[Path] | None = RULES_OPTION,
) -> None:
    """Findings per OTRF Windows dataset, and which labelled techniques a finding names."""
    from kestrel.eval.sigma_otrf import markdown, run_otrf

    print(markdown(run_otrf(path, _rule_paths(rules))))


def _print_regression(summary: dict[str, object]) -> None:
    console.print(f"{summary['passed']} of {summary['total']} regression tests passed")
    for fail in summary["failed"]:  # type: ignore[attr-defined]
        console.print(f"[red]failed[/] {fail['rule_id']}: {fail['reason']}", highlight=False)


@app.command()
def detect(
    rules: list[Path] | None = RULES_OPTION,
    db: str | None = typer.Option(None, "--db", help="Store (default ~/.kestrel/kestrel.duckdb)."),
    as_json: bool = typer.Option(False, "--json", help="Print findings as JSON lines."),
    policy: Path | None = typer.Option(
        None, "--policy", help="Policy YAML whose `enrich` section configures the enrichers."
    ),
    enrich: bool = typer.Option(True, "--enrich/--no-enrich", help="Enrich before detecting."),
    sigma_level: str | None = typer.Option(
        None,
        "--sigma-level",
        help="Run only Sigma rules of this level or above "
        "(informational, low, medium, high, critical; default: every rule).",
    ),
) -> None:
    """Run Sigma and every other registered detector over the stored events not yet seen
    (the pipeline's embedded runner), enriched first (IOC, GeoIP; YARA and reputation when
    configured), store the findings and print them."""
    from kestrel.cli.detect import run_detect
    from kestrel.detect.sigma.detector import LEVELS, default_rule_paths

    if sigma_level is not None and sigma_level not in LEVELS:
        raise typer.BadParameter(f"one of {', '.join(LEVELS)}", param_hint="--sigma-level")
    paths = [str(p) for p in (rules or [])] or list(default_rule_paths())
    run_detect(db or default_db(), paths, as_json, policy, enrich, sigma_level)
