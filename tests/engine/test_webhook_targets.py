"""Which URLs a webhook may target: http(s) only, and (unless private targets are allowed)
every address its host resolves to public; a delivery connects to the address that was checked."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from memlane.engine.webhook_targets import vet
from memlane.errors import ValidationError
from memlane.server.webhook_deliverer import pinned_request


def resolving_to(*addresses: str) -> Any:
    """A resolver that answers ``addresses`` for any name, as ``getaddrinfo`` would."""
    def resolve(host: str, port: int, **_: Any) -> list[Any]:
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in addresses]
    return resolve


def test_a_name_with_one_private_address_among_public_ones_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"hooks\.example\.com resolves to 10\.0\.0\.7, a private address"):
        vet("https://hooks.example.com/in", allow_private=False, resolver=resolving_to("93.184.216.34", "10.0.0.7"))
    with pytest.raises(ValidationError, match="fe80::1 is a link-local address"):
        vet("http://[fe80::1]/in", allow_private=False)
    with pytest.raises(ValidationError, match="100.64.0.1, a not publicly routable address"):
        vet("https://cgnat.example/in", allow_private=False, resolver=resolving_to("100.64.0.1"))
    with pytest.raises(ValidationError, match="cannot resolve the webhook host 'nowhere.invalid'") as info:
        vet("https://nowhere.invalid/in", allow_private=False)
    assert info.value.code == "webhook_host_unresolvable"


def test_public_targets_pass_and_private_ones_when_allowed() -> None:
    target = vet("https://hooks.example.com:8443/in?x=1", allow_private=False, resolver=resolving_to("93.184.216.34", "2606:2800:220:1::1"))
    assert (target.host, target.port, target.addresses) == ("hooks.example.com", 8443, ("93.184.216.34", "2606:2800:220:1::1"))
    assert vet("http://127.0.0.1:9/x", allow_private=True).addresses == (), "allowed: the HTTP client resolves it itself"
    with pytest.raises(ValidationError, match="http:// or https://"):
        vet("ftp://127.0.0.1/x", allow_private=True)


def test_a_delivery_goes_to_the_checked_address_with_the_name_kept() -> None:
    target = vet("https://user:pw@hooks.example.com/in?x=1", allow_private=False, resolver=resolving_to("93.184.216.34"))
    url, headers, extensions, auth = pinned_request(target)
    assert url == "https://93.184.216.34/in?x=1" and headers == {"Host": "hooks.example.com"}
    assert extensions == {"sni_hostname": "hooks.example.com"}, "TLS is checked against the name, not the address"
    assert auth == ("user", "pw")
    six = pinned_request(vet("http://hooks.example.com:8080/", allow_private=False, resolver=resolving_to("2606:2800:220:1::1")))
    assert six[:3] == ("http://[2606:2800:220:1::1]:8080/", {"Host": "hooks.example.com:8080"}, {})
