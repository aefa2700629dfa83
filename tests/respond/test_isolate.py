"""isolate_host / unisolate_host / block_ip with real nftables, inside network namespaces
the test creates: "host" (where the rules go) joined to "server" and "peer" by veth pairs.
Nothing outside those namespaces is touched.

Needs root, ``ip`` and ``nft``; skipped with the reason otherwise, except under CI=true,
where a missing prerequisite fails the test (CI must prove isolation works).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from kestrel.respond.actions.endpoint import (
    AddressParams,
    BlockIp,
    HostParams,
    IsolateHost,
    IsolateParams,
    UnblockIp,
    UnisolateHost,
)
from kestrel.respond.firewall import NftFirewall

SERVER_IP, PEER_IP, PORT = "10.231.1.2", "10.231.2.2", 8765
_LISTEN = ("import socket,sys; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, "
           "socket.SO_REUSEADDR, 1); s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(16)\n"
           "while True: s.accept()[0].close()")  # fmt: skip
_CONNECT = "import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 0.5)"


def _missing() -> str:
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return f"needs the {tool!r} command (apt-get install iproute2 nftables)"
    return ""


def _sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=10)


@dataclass
class Namespaces:
    host: str
    server: str
    peer: str

    def reaches(self, ip: str) -> bool:
        cmd = ["ip", "netns", "exec", self.host, sys.executable, "-c", _CONNECT, ip, str(PORT)]
        return subprocess.run(cmd, capture_output=True, timeout=10, check=False).returncode == 0


@pytest.fixture
def netns() -> Iterator[Namespaces]:
    why = _missing()
    if why:
        if os.environ.get("CI") == "true":
            pytest.fail(f"isolation test cannot run under CI: {why}")
        pytest.skip(why)
    tag = f"kt{os.getpid() % 100000}"
    ns = Namespaces(f"{tag}h", f"{tag}s", f"{tag}p")
    listeners: list[subprocess.Popen[bytes]] = []
    try:
        _wire(ns)
        for name, ip in ((ns.server, SERVER_IP), (ns.peer, PEER_IP)):
            listeners.append(subprocess.Popen(["ip", "netns", "exec", name, sys.executable,
                                               "-c", _LISTEN, ip, str(PORT)]))  # fmt: skip
        yield ns
    finally:
        for proc in listeners:
            proc.kill()
            proc.wait()
        for name in (ns.host, ns.server, ns.peer):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


def _wire(ns: Namespaces) -> None:
    for name in (ns.host, ns.server, ns.peer):
        _sh("ip", "netns", "add", name)
        _sh("ip", "-n", name, "link", "set", "lo", "up")
    for i, (other, ip) in enumerate(((ns.server, SERVER_IP), (ns.peer, PEER_IP)), 1):
        _sh("ip", "link", "add", f"kh{i}", "netns", ns.host, "type", "veth",
            "peer", "name", f"ko{i}", "netns", other)  # fmt: skip
        _sh("ip", "-n", ns.host, "addr", "add", f"10.231.{i}.1/24", "dev", f"kh{i}")
        _sh("ip", "-n", other, "addr", "add", f"{ip}/24", "dev", f"ko{i}")
        _sh("ip", "-n", ns.host, "link", "set", f"kh{i}", "up")
        _sh("ip", "-n", other, "link", "set", f"ko{i}", "up")


def _wait_listening(ns: Namespaces) -> None:
    import time

    deadline = time.monotonic() + 5
    while not (ns.reaches(SERVER_IP) and ns.reaches(PEER_IP)):
        assert time.monotonic() < deadline, "listeners did not come up"
        time.sleep(0.05)


def test_isolate_keeps_only_the_server_then_unisolate_restores(netns: Namespaces):
    _wait_listening(netns)
    fw = NftFirewall(netns=netns.host)
    IsolateHost(fw, (SERVER_IP,)).run(IsolateParams(host="web-01"))
    assert netns.reaches(SERVER_IP)
    assert not netns.reaches(PEER_IP)
    IsolateHost(fw, (SERVER_IP,)).run(IsolateParams(host="web-01"))  # again: no stacking
    assert netns.reaches(SERVER_IP) and not netns.reaches(PEER_IP)
    UnisolateHost(fw).run(HostParams(host="web-01"))
    assert netns.reaches(SERVER_IP) and netns.reaches(PEER_IP)


def test_block_ip_then_unblock(netns: Namespaces):
    _wait_listening(netns)
    fw = NftFirewall(netns=netns.host)
    BlockIp(fw).run(AddressParams(ip=PEER_IP))
    assert netns.reaches(SERVER_IP) and not netns.reaches(PEER_IP)
    UnblockIp(fw).run(AddressParams(ip=PEER_IP))
    assert netns.reaches(PEER_IP)
