"""Fixtures of the distributed-runner tests: a fresh PostgreSQL database and a fresh RabbitMQ
vhost (or, where vhosts cannot be made, unique names in the default one) per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.services import temporary_database, temporary_vhost


@pytest.fixture
def pg_url() -> Iterator[str]:
    """The URL of a fresh PostgreSQL database, dropped after the test."""
    with temporary_database() as url:
        yield url


@pytest.fixture
def broker() -> Iterator[tuple[str, str]]:
    """(broker URL, name prefix) of a fresh vhost, deleted after the test."""
    with temporary_vhost() as found:
        yield found
