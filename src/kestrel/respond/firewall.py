"""Host firewall changes behind one small interface: nftables on Linux, in memory for tests.

Why nftables tables of our own (``inet kestrel_isolate``, ``inet kestrel_block``): each
change is one atomic ``nft -f`` transaction that touches nothing the host's own rules hold,
and undoing it is deleting our table or element, never editing someone else's chain.
Isolation keeps loopback and the server's addresses reachable, so the agent can still
report and receive the ``unisolate_host`` that ends it.
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from kestrel.errors import ActionError

ISOLATE_TABLE = "kestrel_isolate"
BLOCK_TABLE = "kestrel_block"


class Firewall(Protocol):
    """What the isolate / block actions need from a host firewall."""

    def isolate(self, keep: Sequence[str]) -> None:
        """Drop all traffic except loopback and to / from the ``keep`` addresses."""
        ...

    def unisolate(self) -> None:
        """End isolation (no error when the host is not isolated)."""
        ...

    def block(self, address: str) -> None:
        """Drop traffic to and from an address or network."""
        ...

    def unblock(self, address: str) -> None:
        """Undo `block` for one address or network."""
        ...


def split_families(addresses: Sequence[str]) -> tuple[list[str], list[str]]:
    """(IPv4, IPv6) networks in canonical text; `ActionError` for one that is not an address."""
    v4: list[str] = []
    v6: list[str] = []
    for text in addresses:
        try:
            net = ipaddress.ip_network(text.strip(), strict=False)
        except ValueError as exc:
            raise ActionError(f"not an IP address or network: {text!r}") from exc
        (v4 if net.version == 4 else v6).append(net.with_prefixlen)
    return v4, v6


def isolate_script(keep: Sequence[str]) -> str:
    """The nft transaction that (re)creates the isolation table: replace, never stack."""
    v4, v6 = split_families(keep)
    lines = [f"table inet {ISOLATE_TABLE}", f"delete table inet {ISOLATE_TABLE}"]
    lines.append(f"table inet {ISOLATE_TABLE} {{")
    for chain, hook, iface, addr in (("input", "input", "iifname", "saddr"),
                                     ("output", "output", "oifname", "daddr")):  # fmt: skip
        lines += [f"  chain {chain} {{", f"    type filter hook {hook} priority -10; policy drop;"]
        lines.append(f'    {iface} "lo" accept')
        if v4:
            lines.append(f"    ip {addr} {{ {', '.join(v4)} }} accept")
        if v6:
            lines.append(f"    ip6 {addr} {{ {', '.join(v6)} }} accept")
        lines.append("  }")
    return "\n".join([*lines, "}", ""])


def block_table_script() -> str:
    """The nft transaction that (re)declares the block table: the two address sets keep
    their elements, the chains are flushed and their two rules written again (so repeating
    it never stacks rules)."""
    lines = [f"table inet {BLOCK_TABLE} {{"]
    for name, kind in (("addr4", "ipv4_addr"), ("addr6", "ipv6_addr")):
        lines.append(f"  set {name} {{ type {kind}; flags interval; auto-merge; }}")
    for chain in ("input", "output"):
        lines.append(f"  chain {chain} {{ type filter hook {chain} priority -5; policy accept; }}")
    lines.append("}")
    for chain, addr in (("input", "saddr"), ("output", "daddr")):
        lines.append(f"flush chain inet {BLOCK_TABLE} {chain}")
        for family, name in (("ip", "addr4"), ("ip6", "addr6")):
            lines.append(f"add rule inet {BLOCK_TABLE} {chain} {family} {addr} @{name} drop")
    return "\n".join([*lines, ""])


@dataclass(slots=True)
class NftFirewall:
    """nftables through the ``nft`` command, optionally inside a network namespace (tests
    create one, so the machine running them is never isolated)."""

    netns: str | None = None
    nft: str = "nft"

    def isolate(self, keep: Sequence[str]) -> None:
        self._apply(isolate_script(keep))

    def unisolate(self) -> None:
        self._apply(f"table inet {ISOLATE_TABLE}\ndelete table inet {ISOLATE_TABLE}\n")

    def block(self, address: str) -> None:
        self._apply(block_table_script() + _element("add", address))

    def unblock(self, address: str) -> None:
        self._apply(block_table_script() + _element("delete", address))

    def ruleset(self) -> str:
        """The current ruleset, as ``nft list ruleset`` prints it."""
        return self._run(["list", "ruleset"], None)

    def _apply(self, script: str) -> None:
        self._run(["-f", "-"], script)

    def _run(self, args: list[str], script: str | None) -> str:
        if shutil.which(self.nft) is None:
            raise ActionError(f"{self.nft} not found: install nftables to isolate or block")
        prefix = ["ip", "netns", "exec", self.netns] if self.netns else []
        done = subprocess.run(
            [*prefix, self.nft, *args], input=script, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise ActionError(f"nft failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout


def _element(verb: str, address: str) -> str:
    v4, v6 = split_families([address])
    name, value = ("addr4", v4[0]) if v4 else ("addr6", v6[0])
    return f"{verb} element inet {BLOCK_TABLE} {name} {{ {value} }}\n"


@dataclass(slots=True)
class MemoryFirewall:
    """An in-memory firewall: remembers what it was told (for tests and dry runs)."""

    isolated_keep: list[str] | None = None
    blocked: set[str] = field(default_factory=set)

    def isolate(self, keep: Sequence[str]) -> None:
        v4, v6 = split_families(keep)
        self.isolated_keep = v4 + v6

    def unisolate(self) -> None:
        self.isolated_keep = None

    def block(self, address: str) -> None:
        v4, v6 = split_families([address])
        self.blocked.update(v4 + v6)

    def unblock(self, address: str) -> None:
        v4, v6 = split_families([address])
        self.blocked.difference_update(v4 + v6)
