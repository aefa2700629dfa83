"""`kestrel serve` (the API and dashboard) and `kestrel token create|list|revoke`.

``kestrel serve --broker amqp://… --db postgresql://…`` is the scale-out front: intake is
published to the distributed pipeline (kestrel.api.broker_intake; answered after the
broker's confirm, 503 when it cannot confirm), ``kestrel worker`` processes store and
detect, and the API reads findings and entities from the PostgreSQL store they write.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.table import Table

from kestrel.cli import app, console, err_console
from kestrel.config import default_db

if TYPE_CHECKING:
    from fastapi import FastAPI

DB_OPTION = typer.Option(
    None, "--db", help="Store: a DuckDB file (default ~/.kestrel/kestrel.duckdb) or postgresql://…"
)
token_app = typer.Typer(help="API tokens (hashed at rest; a secret is shown once).")
app.add_typer(token_app, name="token")


@app.command()
def serve(
    db: str | None = DB_OPTION,
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    detect_every: float = typer.Option(
        10.0,
        "--detect-every",
        min=0.0,
        help="Run the detectors over newly received events every N seconds (0: off).",
    ),
    enrich: bool = typer.Option(True, "--enrich/--no-enrich", help="Enrich before detecting."),
    playbooks: list[str] = typer.Option(
        [], "--playbooks", help="Playbook files or folders the dashboard lists (repeatable)."
    ),
    response_policy: str | None = typer.Option(
        None, "--response-policy", help="Response policy approvals run under (default: dry run)."
    ),
    broker: str | None = typer.Option(
        None,
        "--broker",
        envvar="KESTREL_BROKER",
        help="amqp://… : publish intake to the distributed pipeline (kestrel worker stores and "
        "detects; needs --db postgresql://…).",
    ),
    prefix: str = typer.Option("kestrel", "--prefix", help="With --broker: queue name prefix."),
    partitions: int = typer.Option(8, "--partitions", help="With --broker: entity partitions."),
    skip: str = typer.Option("", "--skip", help="With --broker: the workers' --skip."),
) -> None:
    """Serve the management API (/api/v1, OpenAPI at /api/v1/docs) and the dashboard (/);
    the detectors run over what agents send every ``--detect-every`` seconds, or, with
    ``--broker``, in the ``kestrel worker`` processes the intake is published to."""
    import uvicorn

    application = build_app(db, detect_every, enrich, playbooks, response_policy, broker,
                            prefix, partitions, skip)  # fmt: skip
    where = f"; intake to {_safe(broker)}" if broker else ""
    console.print(f"Kestrel on http://{host}:{port}/  (API docs: /api/v1/docs){where}",
                  highlight=False)  # fmt: skip
    uvicorn.run(application, host=host, port=port, log_level="warning")


def build_app(
    db: str | None, detect_every: float = 10.0, enrich: bool = True,
    playbooks: list[str] | None = None, response_policy: str | None = None,
    broker: str | None = None, prefix: str = "kestrel", partitions: int = 8, skip: str = "",
) -> FastAPI:  # fmt: skip
    """The app `kestrel serve` runs (tests build it the same way)."""
    from kestrel.api import ApiSettings, create_app
    from kestrel.api.broker_intake import BrokerTarget
    from kestrel.cli.detect import enrich_stage
    from kestrel.errors import ConfigError
    from kestrel.respond.local import default_paths

    target = None
    if broker:
        if not (db or "").startswith(("postgresql://", "postgres://")):
            raise ConfigError("--broker needs --db postgresql://… (the store the workers write)")
        names = tuple(s.strip() for s in skip.split(",") if s.strip())
        target = BrokerTarget(broker, prefix, partitions, names)
        detect_every = 0.0  # the workers detect
    settings = ApiSettings(db=db or default_db(), detect_every=detect_every,
                           playbooks=tuple(playbooks or ()),
                           response_home=str(default_paths().root),
                           response_policy=response_policy, broker=target)  # fmt: skip
    stage = enrich_stage(None) if enrich and detect_every > 0 else None
    return create_app(settings, enrich=stage)


def _safe(url: str | None) -> str:
    """A URL without its password."""
    from urllib.parse import urlsplit

    parts = urlsplit(url or "")
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


@token_app.command("create")
def token_create(
    role: str = typer.Option(..., "--role", help="admin, analyst or agent."),
    name: str = typer.Option(..., "--name", help="Who or what holds it (agent: its id)."),
    ttl_hours: float | None = typer.Option(None, "--ttl-hours", help="Expire after this."),
    agent_id: str | None = typer.Option(None, "--agent-id", help="Agent tokens: the agent."),
    db: str | None = DB_OPTION,
) -> None:
    """Create a token and print it once; only its SHA-256 is stored."""
    from datetime import timedelta

    from kestrel.api.auth import Role, create_token
    from kestrel.errors import ConfigError
    from kestrel.store import open_store
    from kestrel.store.management import ManagementStore

    if role not in {r.value for r in Role}:
        raise ConfigError(f"unknown role {role!r}; use admin, analyst or agent")
    store = open_store(db or default_db())
    try:
        mgmt = ManagementStore(store)
        ttl = timedelta(hours=ttl_hours) if ttl_hours else None
        token, record = create_token(mgmt, Role(role), name, ttl, agent_id)
        mgmt.audit("cli", "token.create", record.token_id, {"role": role, "name": name})
    finally:
        store.close()
    err_console.print(f"{role} token {record.token_id} for {name} (shown once):", highlight=False)
    print(token)


@token_app.command("list")
def token_list(db: str | None = DB_OPTION) -> None:
    """List tokens (never their secrets)."""
    from kestrel.store import open_store
    from kestrel.store.management import ManagementStore

    store = open_store(db or default_db())
    try:
        records = ManagementStore(store).tokens()
    finally:
        store.close()
    table = Table(title="tokens")
    for col in ("id", "name", "role", "created", "expires", "revoked"):
        table.add_column(col)
    for r in records:
        expires = f"{r.expires:%Y-%m-%d %H:%M}" if r.expires else "-"
        created = f"{r.created:%Y-%m-%d %H:%M}"
        table.add_row(r.token_id, r.name, r.role, created, expires, str(r.revoked))
    console.print(table)


@token_app.command("revoke")
def token_revoke(token_id: str, db: str | None = DB_OPTION) -> None:
    """Revoke a token by its id."""
    from kestrel.errors import ConfigError
    from kestrel.store import open_store
    from kestrel.store.management import ManagementStore

    store = open_store(db or default_db())
    try:
        mgmt = ManagementStore(store)
        if not mgmt.revoke_token(token_id):
            raise ConfigError(f"no token {token_id}")
        mgmt.audit("cli", "token.revoke", token_id, {})
    finally:
        store.close()
    console.print(f"revoked {token_id}")
