"""Where a webhook URL leads: its name resolved, every address judged (domain.check_target_address).

Checked when a subscription is written and again before every attempt, on the addresses the
attempt then connects to (``Target.connect_url``), so a name that resolves elsewhere later
(DNS rebinding) cannot turn a checked URL into a call to the inside.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from notification.domain import ALLOWED_SCHEMES, TargetRefused, check_target_address


@dataclass(frozen=True, slots=True)
class Target:
    url: str
    host: str
    # The checked address the attempt connects to, in place of the name.
    address: str
    parts: SplitResult

    @property
    def connect_url(self) -> str:
        ip = ipaddress.ip_address(self.address)
        literal = f"[{ip}]" if ip.version == 6 else str(ip)
        netloc = literal if self.parts.port is None else f"{literal}:{self.parts.port}"
        return self.parts._replace(netloc=netloc).geturl()

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.parts.port is None else f"{host}:{self.parts.port}"


def check_url_shape(url: str) -> SplitResult:
    """An absolute http(s) URL with a host and no credentials; TargetRefused otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ALLOWED_SCHEMES:
        raise TargetRefused("the URL must start with http:// or https://")
    try:
        host, _port = parts.hostname, parts.port
    except ValueError as exc:
        raise TargetRefused("the URL's port is not a number between 0 and 65535") from exc
    if not host:
        raise TargetRefused("the URL names no host")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused("the URL may not carry a user name or password")
    return parts


def resolve_target(url: str, *, allow_private: bool) -> Target:
    """Resolve ``url``'s host; TargetRefused when it does not resolve or any address is refused."""
    parts = check_url_shape(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise TargetRefused("the URL's host name does not resolve") from exc
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not addresses:
        raise TargetRefused("the URL's host name does not resolve")
    # Every address: a name with one public and one private address is refused.
    for address in addresses:
        check_target_address(address, allow_private=allow_private)
    return Target(url=url, host=host, address=addresses[0], parts=parts)
