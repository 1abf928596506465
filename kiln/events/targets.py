"""Where a webhook may point: http(s) URLs of public addresses only, unless the webhook allows private
ones (a webhook must not become a way to reach the server's loopback, LAN or cloud metadata service).

The check runs when a webhook is added and again before every attempt (the name may resolve elsewhere
by then); redirects are never followed.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from kiln.errors import KilnError


class TargetRefused(KilnError):
    exit_code = 2


def check_url(url: str, *, allow_private: bool, resolve: bool = True) -> None:
    """Refuse anything but ``http(s)://host[:port]/path`` without credentials, and (when ``resolve``)
    a host with any non-public address unless ``allow_private``."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise TargetRefused(f"webhook URL {url!r}: only http:// and https:// URLs are allowed")
    if not parts.hostname:
        raise TargetRefused(f"webhook URL {url!r} has no host")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused(
            f"webhook URL {parts.scheme}://…@{parts.hostname}: credentials in the URL "
            "would be stored in the catalog",
            hint="authenticate with the signature",
        )
    try:
        port = parts.port
    except ValueError:
        raise TargetRefused(f"webhook URL {url!r} has an invalid port") from None
    if resolve and not allow_private:
        for address in addresses(parts.hostname, port or (443 if parts.scheme == "https" else 80)):
            if not address.is_global:
                raise TargetRefused(
                    f"webhook URL {url!r}: {parts.hostname} resolves to {address}, a loopback, private or "
                    "reserved address",
                    hint="add the webhook with --allow-private if that is intended",
                )


def addresses(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise TargetRefused(f"webhook host {host!r} does not resolve: {exc.strerror}") from None
    found = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    return [a.ipv4_mapped if isinstance(a, ipaddress.IPv6Address) and a.ipv4_mapped else a for a in found]
