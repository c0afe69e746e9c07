"""Where a webhook may go: only to public addresses, unless `server.webhook_allowed_hosts`
lists the host (by exact name) or the address (by CIDR range). Loopback, private,
link-local, multicast, reserved and unspecified addresses (anything not global unicast)
are refused, IPv4 and IPv6 alike (an IPv4-mapped IPv6 address is judged as the IPv4
address it carries): a caller must not make the server POST to the services around it.

The host is judged twice: when the request is accepted (a literal address, or a name that
already resolves to a refused address, is 400 `webhook_not_allowed`), and at every
connection of a delivery (webhooks.py connects only to the addresses judged here, so a
name that resolves elsewhere by then — DNS rebinding — is never connected to).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from ..errors import BadRequest

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
SUBMIT_LOOKUP_S = 2.0  # a name that does not resolve this fast is judged at delivery


class NotAllowed(Exception):
    """A webhook host that is, or resolves to, an address a webhook may not reach."""


def public(address: Address) -> bool:
    """Global unicast: `is_global` is False for loopback, private, link-local, reserved and
    unspecified addresses, and for the rest of IANA's special-purpose ranges (100.64.0.0/10,
    where some clouds keep their metadata service, documentation and benchmark ranges…)."""
    return address.is_global and not address.is_multicast


def plain(text: str) -> Address:
    """An address as judged: an IPv6 zone dropped, an IPv4-mapped IPv6 address as its IPv4 address."""
    address = ipaddress.ip_address(text.partition("%")[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class Targets:
    def __init__(self, allowed: Iterable[str]) -> None:
        self.names: set[str] = set()
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for entry in allowed:
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self.names.add(entry.lower().rstrip("."))

    def allows(self, address: Address) -> bool:
        return public(address) or any(address in network for network in self.networks)

    def listed(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.names

    async def addresses(self, host: str, port: int) -> list[str]:
        """Every address of `host`, each judged; NotAllowed when one is refused (a name that
        resolves to a public and a private address is refused: which one a connection gets
        is not the caller's to pick)."""
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        found = list(dict.fromkeys(str(info[4][0]) for info in infos))
        if not self.listed(host):
            for text in found:
                if not self.allows(plain(text)):
                    raise NotAllowed(f"{host} resolves to {text}, which is not a public address "
                                     "(server.webhook_allowed_hosts lists the hosts allowed anyway)")
        return found

    async def check(self, url: str) -> None:
        """At submit: 400 webhook_not_allowed for a literal address or a name that resolves to
        one refused; a name that does not resolve (yet) is judged again at delivery."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        if self.listed(host):
            return
        try:
            literal: Address | None = plain(host)
        except ValueError:
            literal = None
        try:
            if literal is not None:
                if not self.allows(literal):
                    raise NotAllowed(f"{host} is not a public address "
                                     "(server.webhook_allowed_hosts lists the hosts allowed anyway)")
                return
            port = parts.port or (443 if parts.scheme == "https" else 80)
            await asyncio.wait_for(self.addresses(host, port), SUBMIT_LOOKUP_S)
        except NotAllowed as exc:
            raise BadRequest(f"webhook refused: {exc}", "webhook_not_allowed") from None
        except (OSError, TimeoutError, ValueError):
            pass  # unresolvable now: the delivery resolves it again, and is refused or fails there
