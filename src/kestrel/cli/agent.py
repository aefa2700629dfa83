"""`kestrel agent --server URL --token T`: run the endpoint agent on this host."""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from kestrel.cli import app, console

if TYPE_CHECKING:
    from kestrel.agent.runner import Collector


@app.command()
def agent(
    server: str = typer.Option(..., "--server", help="Kestrel server, e.g. http://10.0.0.5:8000"),
    token: str = typer.Option(..., "--token", envvar="KESTREL_AGENT_TOKEN", help="Agent token."),
    watch: list[Path] = typer.Option([], "--watch", help="Folder to watch for file events."),
    state: Path | None = typer.Option(None, "--state", help="State (default ~/.kestrel/agent)."),
    agent_id: str | None = typer.Option(None, "--agent-id", help="Default: made once, kept."),
    poll: float = typer.Option(0.5, "--poll", help="Seconds between process polls."),
    network_every: float = typer.Option(
        5.0, "--network-every", help="Seconds between socket scans."
    ),
    facts_every: float = typer.Option(300.0, "--facts-every", help="Seconds between host facts."),
    no_actions: bool = typer.Option(False, "--no-actions", help="Collect only; run no action."),
) -> None:
    """Collect process, network, file and host events, send them in batches (spooled on disk
    while the server is away) and run the response actions the server queues for this host."""
    from kestrel.agent.runner import Agent, AgentSettings, endpoint_actions
    from kestrel.agent.transport import HttpServer
    from kestrel.config import home

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    folder = state or home() / "agent"
    http = HttpServer(server, token)
    the_agent = Agent(
        folder, http, _collectors(watch, folder, network_every, facts_every),
        actions_source=None if no_actions else http,
        actions={} if no_actions else endpoint_actions(folder, server),
        settings=AgentSettings(poll_interval=poll), agent_id=agent_id,
    )  # fmt: skip
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: the_agent.stop())
    console.print(f"kestrel agent {the_agent.agent_id} → {server}", highlight=False)
    the_agent.run()


def _collectors(watch: list[Path], state: Path, network_every: float,
                facts_every: float) -> list[Collector]:  # fmt: skip
    from kestrel.agent.collectors import NetworkCollector, ProcessCollector, SystemCollector
    from kestrel.agent.files import FileCollector
    from kestrel.agent.throttle import Every

    files = FileCollector(watch, ignore=[state])
    files.start()
    return [ProcessCollector(), Every(NetworkCollector(), network_every), files,
            SystemCollector(every=facts_every)]  # fmt: skip
