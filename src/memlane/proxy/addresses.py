"""The memlane server's address as a hosted client is given it, made into the one shape it uses.

People write the address the way their other tools want it: ``127.0.0.1:8765`` (no scheme) or
``http://127.0.0.1:8765/v1`` (the OpenAI SDK's ``base_url``). The client adds ``/v1`` itself, so
the first was "server unreachable" while it was up and the second a bare 404; both now mean the
server they name, and an address that cannot be one says what is wrong.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from memlane.errors import ConfigError


def server_address(host: str) -> str:
    """``scheme://host[:port][/prefix]`` without a trailing ``/`` or ``/v1``: what the client puts
    ``/v1/...`` after. No scheme means ``http://``; any other scheme than http(s), a query, a
    fragment or no host name is a ``ConfigError`` naming it."""
    text = host.strip()
    written = text if "://" in text else f"http://{text}"
    parts = urlsplit(written)
    if parts.scheme not in ("http", "https"):
        raise ConfigError(f"host {host!r}: a memlane server's address starts with http:// or https://, "
                          f"not {parts.scheme}://", param="host")
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number in range
    except ValueError as exc:
        raise ConfigError(f"host {host!r}: {exc}; write it as http://HOST:PORT, e.g. http://127.0.0.1:8765", param="host") from None
    if not parts.hostname or parts.query or parts.fragment:
        raise ConfigError(f"host {host!r} is not a server address: write it as http://HOST:PORT, e.g. http://127.0.0.1:8765",
                          param="host")
    path = parts.path.rstrip("/")
    if path.endswith("/v1"):  # the OpenAI SDK's base_url for the same server: the client adds /v1 itself
        path = path[: -len("/v1")]
    return f"{parts.scheme}://{parts.netloc}{path}"
