"""`Every`: poll a costly collector less often than the agent's loop turns."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from kestrel.agent.collectors import Observation
from kestrel.agent.runner import Collector


@dataclass(slots=True)
class Every:
    """Polls ``inner`` at most every ``seconds`` (socket tables cost more than pid lists)."""

    inner: Collector
    seconds: float
    clock: Callable[[], float] = time.monotonic
    _last: float = field(default=float("-inf"))

    def poll(self) -> list[Observation]:
        now = self.clock()
        if now - self._last < self.seconds:
            return []
        self._last = now
        return self.inner.poll()
