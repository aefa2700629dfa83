"""`kestrel worker`, `kestrel pipeline status`, `kestrel deadletter list|replay`: the
distributed runner (RabbitMQ between the stages, PostgreSQL as the shared store)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import typer
from rich.table import Table

from kestrel.cli import app, console

pipeline_app = typer.Typer(help="The distributed pipeline's queues, consumers and lag.")
app.add_typer(pipeline_app, name="pipeline")
dead_app = typer.Typer(help="Batches the distributed pipeline could not process.")
app.add_typer(dead_app, name="deadletter")
BROKER = typer.Option(..., "--broker", envvar="KESTREL_BROKER", help="amqp://user:pass@host/vhost")
DB = typer.Option(..., "--db", envvar="KESTREL_DB", help="postgresql://… (the shared store)")
PREFIX = typer.Option("kestrel", "--prefix", help="Name prefix of the exchanges and queues.")
PARTITIONS = typer.Option(8, "--partitions", help="Entity partitions (same on every worker).")
JSON = typer.Option(False, "--json", help="Print JSON.")


@app.command("worker")
def worker(
    broker: str = BROKER,
    db: str = DB,
    stages: str = typer.Option("intake,detect", "--stages", help="Stages to consume."),
    skip: str = typer.Option("", "--skip", help="Detectors not to run, comma-separated."),
    prefix: str = PREFIX,
    partitions: int = PARTITIONS,
) -> None:
    """Consume the stages' queues until interrupted; any number of workers may run."""
    from kestrel.pipeline import default_detectors
    from kestrel.pipeline.distributed import run_worker
    from kestrel.pipeline.operations import topology_for

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    names = tuple(s for s in skip.split(",") if s)
    topology = topology_for(prefix, partitions, names)
    wanted = [s.strip() for s in stages.split(",") if s.strip()]
    try:
        asyncio.run(run_worker(broker, db, topology, lambda: default_detectors(names), wanted))
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


@pipeline_app.command("status")
def status(
    broker: str = BROKER, db: str = DB, prefix: str = PREFIX, partitions: int = PARTITIONS,
    as_json: bool = JSON,
) -> None:  # fmt: skip
    """Queue depths, consumers, committed messages, lag and dead letters."""
    report = asyncio.run(_with_transport(broker, prefix, partitions, "status", db=db))
    if as_json:
        console.print_json(json.dumps(report, default=str))
        return
    table = Table("route", "waiting", "consumers", "committed", "last event", "lag (s)")
    for r in report["routes"]:
        table.add_row(r["route"], str(r["messages"]), str(r["consumers"]), str(r["committed"]),
                      str(r["last_event"] or "-"), _num(r["lag_seconds"]))  # fmt: skip
    console.print(table)
    console.print(f"dead letters: {report['dead_letters']}")


@dead_app.command("list")
def dead_list(
    broker: str = BROKER, prefix: str = PREFIX, partitions: int = PARTITIONS,
    limit: int = typer.Option(100, "--limit"), as_json: bool = JSON,
) -> None:  # fmt: skip
    """The dead letters with their route and reason (they stay in the queue)."""
    rows = asyncio.run(_with_transport(broker, prefix, partitions, "list", limit=limit))
    if as_json:
        console.print_json(json.dumps(rows))
        return
    table = Table("message id", "route", "reason", "bytes")
    for r in rows:
        table.add_row(r["message_id"], r["route"], r["reason"], str(r["bytes"]))
    console.print(table)


@dead_app.command("replay")
def dead_replay(
    broker: str = BROKER, prefix: str = PREFIX, partitions: int = PARTITIONS,
    limit: int | None = typer.Option(None, "--limit"),
) -> None:  # fmt: skip
    """Send the dead letters back to their stage (after the cause has been fixed)."""
    n = asyncio.run(_with_transport(broker, prefix, partitions, "replay", limit=limit))
    console.print(f"replayed {n} batch(es)")


async def _with_transport(broker: str, prefix: str, partitions: int, what: str, **kw: Any) -> Any:
    from kestrel.pipeline import operations
    from kestrel.pipeline.transport import RabbitTransport
    from kestrel.store import open_store

    transport = await RabbitTransport(broker, operations.topology_for(prefix, partitions)).open()
    try:
        if what == "status":
            store = open_store(kw["db"])
            try:
                return await operations.pipeline_status(transport, store)
            finally:
                store.close()
        if what == "list":
            return await operations.list_dead_letters(transport, kw["limit"])
        return await operations.replay_dead_letters(transport, kw["limit"])
    finally:
        await transport.close()


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"
