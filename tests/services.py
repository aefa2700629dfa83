"""The real PostgreSQL and RabbitMQ that the distributed-mode tests use (never mocks).

Each test gets its own database / vhost and removes it afterwards. A service that cannot be
reached skips the test with the reason, except under ``CI=true``, where it fails: CI has
both services, so a skip there would hide a broken deployment.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

POSTGRES_URL = os.environ.get(
    "KESTREL_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
AMQP_URL = os.environ.get("KESTREL_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672/")


def unavailable(reason: str) -> None:
    """Skip with ``reason``, or fail under ``CI=true`` where the services must be there."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


def with_path(url: str, path: str) -> str:
    """``url`` naming another database (PostgreSQL) or vhost (AMQP)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{path}"))


@contextmanager
def temporary_database() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped afterwards; yields its URL."""
    try:
        admin = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        unavailable(f"PostgreSQL not reachable at {POSTGRES_URL}: {exc}")
        raise
    name = f"kestrel_test_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield with_path(POSTGRES_URL, name)
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _rabbitmqctl(*args: str) -> bool:
    exe = shutil.which("rabbitmqctl")
    if exe is None:
        return False
    done = subprocess.run([exe, "-q", *args], capture_output=True, timeout=60, check=False)
    return done.returncode == 0


@contextmanager
def temporary_vhost() -> Iterator[tuple[str, str]]:
    """A fresh RabbitMQ vhost (via ``rabbitmqctl``), deleted afterwards; yields the broker
    URL and a unique name prefix. Where vhosts cannot be made (no rabbitmqctl, e.g. a remote
    broker), the default vhost is used and the prefix alone keeps the test's names apart."""
    _require_broker()
    tag = uuid.uuid4().hex[:12]
    vhost = f"kestrel_test_{tag}"
    user = urlsplit(AMQP_URL).username or "guest"
    made = _rabbitmqctl("add_vhost", vhost) and _rabbitmqctl(
        "set_permissions", "-p", vhost, user, ".*", ".*", ".*"
    )
    try:
        yield (with_path(AMQP_URL, vhost) if made else AMQP_URL), f"kt{tag}"
    finally:
        if made:
            _rabbitmqctl("delete_vhost", vhost)


def _require_broker() -> None:
    import socket

    parts = urlsplit(AMQP_URL)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5672), 3).close()
    except OSError as exc:
        unavailable(f"RabbitMQ not reachable at {parts.hostname}:{parts.port}: {exc}")
