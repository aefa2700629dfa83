"""The endpoint agent: observes the host, sends envelopes, runs the server's actions.

In: the host itself (psutil for processes, sockets and facts; watchdog for files under the
configured folders) and the actions the server queues for this agent. Out: batches of
envelopes in the format of `docs/agent-envelope.md` over HTTP with the agent token, through
an on-disk spool (nothing lost while the server is away, nothing sent out of order), and
action results. Must never: block collection on the network, run an action that is not an
endpoint action, or run one action twice.
"""

from kestrel.agent.envelope import EnvelopeFactory
from kestrel.agent.runner import Agent, AgentSettings
from kestrel.agent.spool import Spool
from kestrel.agent.transport import (
    ActionSource,
    EventSink,
    HttpServer,
    ServerRefusedError,
    ServerUnavailableError,
)

__all__ = [
    "ActionSource",
    "Agent",
    "AgentSettings",
    "EnvelopeFactory",
    "EventSink",
    "HttpServer",
    "ServerRefusedError",
    "ServerUnavailableError",
    "Spool",
]
