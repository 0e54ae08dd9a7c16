"""Which URLs a webhook may target (the server-side request forgery guard).

A webhook makes memlane's server send requests to a URL its caller chose. Left open, a project's
key could aim them at what only the server can reach: its own loopback services, the private
network behind it, a cloud's metadata endpoint (169.254.169.254). So a target must be http(s),
and unless ``server.webhooks.allow_private`` is set, **every** address its host resolves to must
be public: a name with one public and one private address is refused too (the client may pick
either). The check runs when a webhook is created or updated (a 400 naming the reason) and again
before every delivery, which then connects to the very address that was checked (memlane.server.
webhook_deliverer), so a name re-pointed at an inside address after the check (DNS rebinding)
gets nothing.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import SplitResult, urlsplit

from memlane.errors import ValidationError

MAX_URL_CHARS = 2048
Resolver = Callable[..., list[Any]]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Target:
    """A vetted webhook URL: its parts, and the addresses its host resolved to (empty when
    private targets are allowed: the HTTP client then resolves it itself)."""

    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...] = field(default=())


def refused_reason(address: IPAddress) -> str | None:
    """Why a webhook may not target ``address`` ("loopback", "private", ...), None if it is public."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_unspecified:
        return "unspecified"
    if address.is_multicast:
        return "multicast"
    if address.is_private:
        return "private"
    if address.is_reserved or not address.is_global:
        return "not publicly routable"
    return None


def check_url(url: Any) -> SplitResult:
    """An http(s) URL with a host; ``ValidationError`` (param ``url``) naming what is wrong otherwise."""
    if not isinstance(url, str) or not url.strip():
        raise ValidationError("url must be a non-empty string", param="url", code="invalid_webhook_url")
    if len(url) > MAX_URL_CHARS or any(c.isspace() for c in url):
        raise ValidationError(f"url must be at most {MAX_URL_CHARS} characters with no spaces", param="url", code="invalid_webhook_url")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number or out of range
    except ValueError as exc:
        raise ValidationError(f"url {url!r} is not a valid URL: {exc}", param="url", code="invalid_webhook_url") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ValidationError(f"url {url!r}: a webhook must be an http:// or https:// URL (got scheme {parts.scheme or 'none'!r})",
                              param="url", code="invalid_webhook_url")
    if not parts.hostname:
        raise ValidationError(f"url {url!r} has no host", param="url", code="invalid_webhook_url")
    return parts


def resolve(host: str, port: int, resolver: Resolver = socket.getaddrinfo) -> list[IPAddress]:
    """Every address ``host`` resolves to (an IP literal is itself), without duplicates."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = resolver(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise ValidationError(f"cannot resolve the webhook host {host!r}: {exc}", param="url", code="webhook_host_unresolvable") from None
    found: list[IPAddress] = []
    for info in infos:
        text = str(info[4][0]).split("%", 1)[0]  # an IPv6 zone (fe80::1%eth0) is not part of the address
        address = ipaddress.ip_address(text)
        if address not in found:
            found.append(address)
    if not found:
        raise ValidationError(f"the webhook host {host!r} resolves to no address", param="url", code="webhook_host_unresolvable")
    return found


def vet(url: Any, *, allow_private: bool, resolver: Resolver = socket.getaddrinfo) -> Target:
    """``url`` as a ``Target`` a webhook may use, or ``ValidationError`` naming why not."""
    parts = check_url(url)
    scheme = parts.scheme.lower()
    host = str(parts.hostname)
    port = parts.port or (443 if scheme == "https" else 80)
    if allow_private:
        return Target(str(url), scheme, host, port)
    addresses = resolve(host, port, resolver)
    for address in addresses:
        reason = refused_reason(address)
        if reason is not None:
            shown = f"{host} resolves to {address}, a {reason} address" if str(address) != host else f"{host} is a {reason} address"
            raise ValidationError(f"webhook url {url!r} is refused: {shown}; webhooks may only target public addresses "
                                  "unless server.webhooks.allow_private is set", param="url", code="webhook_target_refused")
    return Target(str(url), scheme, host, port, tuple(str(a) for a in addresses))


__all__ = ["Target", "check_url", "refused_reason", "resolve", "vet"]
