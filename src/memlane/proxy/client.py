"""``Memlane`` / ``AsyncMemlane``: ``client.chat.completions.create(...)`` and
``client.responses.create(...)`` with memory.

One request body, OpenAI's, plus memlane's own fields (``user_id agent_id run_id metadata
filters limit top_k include_memories``); everything else reaches the model untouched through the
official ``openai`` SDK, and its answers and errors come back as that SDK's own types.

Each client has a backend chosen from its arguments: embedded (the engine in this process; the
default) or hosted (``api_key=``/``host=``: a memlane server). Both backends have every
attribute, so app code does not know, or care, which one it runs on.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping, Sequence

from memlane.config import MemlaneConfig
from memlane.engine.memory import Memory
from memlane.errors import ConfigError, MemlaneError
from memlane.proxy.embedded import ClientStats, EmbeddedBackend
from memlane.proxy.fields import MemlaneFields
from memlane.proxy.hosted import HostedBackend
from memlane.proxy.protocols import ChatProtocol

Backend = EmbeddedBackend | HostedBackend


def _backend(config: Any, api_key: str | None, host: str | None, fallback: Mapping[str, Any] | None,
             memory: Memory | None, timeout: float | None, *, asynchronous: bool) -> Backend:
    if api_key is not None or host is not None:
        if config is not None or memory is not None:
            raise ConfigError("hosted mode takes api_key/host (and fallback, timeout), not a config or an engine: "
                              "the server has the config", param="config")
        return HostedBackend(api_key, host, fallback, timeout, asynchronous=asynchronous)
    if fallback is not None:
        raise ConfigError("fallback is for hosted mode (api_key=..., host=...); the embedded client calls the upstream itself",
                          param="fallback")
    return EmbeddedBackend(config, memory, asynchronous=asynchronous)


class Completions:
    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    def create(
        self,
        *,
        messages: Sequence[Any],
        model: str,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        filters: Mapping[str, Any] | None = None,
        limit: int | None = None,
        top_k: int | None = None,
        include_memories: bool = False,
        **kwargs: Any,
    ) -> Any:
        """OpenAI's ``chat.completions.create`` with memory; see product.md section 1."""
        ours = MemlaneFields(user_id, agent_id, run_id, metadata, filters, limit, top_k, include_memories)
        return self._backend.chat(messages, model, ours, kwargs)


class AsyncCompletions:
    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    async def create(self, *, messages: Sequence[Any], model: str, **kwargs: Any) -> Any:
        ours = MemlaneFields.pop_from(kwargs)
        return await self._backend.achat(messages, model, ours, kwargs)

    create.__signature__ = inspect.signature(Completions.create)  # type: ignore[attr-defined]
    create.__doc__ = Completions.create.__doc__


class Responses:
    """OpenAI's Responses API with memory: ``client.responses.create(model=..., input=...)``."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    def create(
        self,
        *,
        model: str,
        input: Any,  # noqa: A002 - the Responses API's own name
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        filters: Mapping[str, Any] | None = None,
        limit: int | None = None,
        top_k: int | None = None,
        include_memories: bool = False,
        **kwargs: Any,
    ) -> Any:
        """OpenAI's ``responses.create`` with memory: ``input`` a string or a list of items,
        ``instructions``, tools, ``previous_response_id``, ``store`` and the rest pass through; the
        memlane fields are chat's (``metadata`` is memlane's, stored with what is learnt)."""
        ours = MemlaneFields(user_id, agent_id, run_id, metadata, filters, limit, top_k, include_memories)
        return self._backend.respond({"model": model, "input": input, **kwargs}, ours)


class AsyncResponses:
    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    async def create(self, *, model: str, input: Any, **kwargs: Any) -> Any:  # noqa: A002
        ours = MemlaneFields.pop_from(kwargs)
        return await self._backend.arespond({"model": model, "input": input, **kwargs}, ours)

    create.__signature__ = inspect.signature(Responses.create)  # type: ignore[attr-defined]
    create.__doc__ = Responses.create.__doc__


class Chat:
    def __init__(self, backend: Backend) -> None:
        self.completions = Completions(backend)


class AsyncChat:
    def __init__(self, backend: Backend) -> None:
        self.completions = AsyncCompletions(backend)


class _Client:
    """What both clients share: the backend and the attributes that only read it."""

    _backend: Backend

    @property
    def memory(self) -> Any:
        """The memories: the engine itself (embedded; ``AsyncMemory`` for ``AsyncMemlane``) or
        the server's, with the engine's method names (hosted)."""
        return self._backend.memory

    @property
    def config(self) -> Any:
        """The ``MemlaneConfig`` (embedded) or the hosted settings (the server has the config)."""
        return self._backend.config

    @property
    def stats(self) -> ClientStats:
        return self._backend.stats

    @property
    def upstream(self) -> Any:
        """The openai SDK client chats go to: the model server (embedded) or the memlane server (hosted)."""
        return self._backend.upstream

    @property
    def mode(self) -> str:
        """``"embedded"`` or ``"hosted"``."""
        return self._backend.mode

    @property
    def host(self) -> str | None:
        """The memlane server (hosted mode); None when embedded."""
        return self._backend.host

    def pending_sync(self) -> int:
        """Exchanges kept locally while the server was unreachable (hosted; always 0 embedded)."""
        return self._backend.pending_sync()

    def outbox_status(self) -> dict[str, Any]:
        """Queued exchanges, retries, dead ones, the last error, and what the learner has done."""
        return self._backend.outbox_status()

    def recent_recalls(self, scope: Mapping[str, str] | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """The last chats' recalls, newest first: ``query``, injected ``memories`` with scores,
        ``recall_ms``, and ``learned`` (what learning from the exchange changed; None while it
        waits). Bounded by ``server.recall_log``; in memory; embedded mode only (hosted: [])."""
        log = getattr(self._backend, "recall_log", None)
        return log.recent(dict(scope or {}), limit) if log is not None else []

    def on_timing(self, listener: Callable[[str, float], None]) -> None:
        """Call ``listener(stage, seconds)`` after each ``recall`` (a chat's memory search),
        ``upstream`` (the model's answer; for a stream, until it starts) and ``learn`` (one
        exchange learnt in the background, in the learner's thread). Embedded mode only: a
        hosted client's recall and learning run on the server, whose ``/metrics`` has them."""
        self._backend.timings.listen(listener)


class Memlane(_Client):
    """The drop-in client. ``Memlane()`` uses the embedded default (SQLite under MEMLANE_HOME,
    local embedder); ``Memlane(config={...})`` takes mem0's config shape; chats go to
    ``config["upstream"]`` or ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY``.
    ``Memlane(api_key=..., host=...)`` talks to a memlane server instead (hosted mode), with
    ``fallback={"base_url", "api_key"}`` to answer directly while it is unreachable."""

    def __init__(self, config: MemlaneConfig | Mapping[str, Any] | str | None = None, *, api_key: str | None = None,
                 host: str | None = None, fallback: Mapping[str, Any] | None = None, memory: Memory | None = None,
                 timeout: float | None = None) -> None:
        self._backend = _backend(config, api_key, host, fallback, memory, timeout, asynchronous=False)
        self.chat = Chat(self._backend)
        self.responses = Responses(self._backend)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued exchange was learnt from (hosted: handed to the server);
        False if ``timeout`` ran out first."""
        return self._backend.flush(timeout)

    def sync(self) -> int:
        """Hosted: send exchanges kept while the server was unreachable; returns how many."""
        return self._backend.sync()

    def close(self) -> None:
        self._backend.close()

    def __enter__(self) -> Memlane:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncMemlane(_Client):
    """``Memlane`` with ``await`` and ``async for``: same arguments, same modes."""

    def __init__(self, config: MemlaneConfig | Mapping[str, Any] | str | None = None, *, api_key: str | None = None,
                 host: str | None = None, fallback: Mapping[str, Any] | None = None, memory: Memory | None = None,
                 timeout: float | None = None) -> None:
        self._backend = _backend(config, api_key, host, fallback, memory, timeout, asynchronous=True)
        self.chat = AsyncChat(self._backend)
        self.responses = AsyncResponses(self._backend)

    @classmethod
    def on_backend(cls, backend: Backend) -> "AsyncMemlane":
        """A client on a backend built by the caller (the server's, with its own learner)."""
        client = cls.__new__(cls)
        client._backend = backend
        client.chat = AsyncChat(backend)
        client.responses = AsyncResponses(backend)
        return client

    async def flush(self, timeout: float | None = None) -> bool:
        return await self._backend.aflush(timeout)

    def upstream_for(self, protocol: ChatProtocol) -> Any:
        """The SDK client a protocol's calls go to (embedded mode; the server's count_tokens)."""
        client_for = getattr(self._backend, "client_for", None)
        if client_for is None:
            raise ConfigError("a hosted client sends every call to its memlane server", param="host")
        return client_for(protocol)

    async def forward(self, protocol: ChatProtocol, request: Mapping[str, Any], fields: MemlaneFields) -> Any:
        """One call of ``protocol`` with memlane's fields already taken out and typed: what the
        server's routes do (no round trip through the SDK's keyword arguments)."""
        return await self._backend.arun(protocol, request, fields)

    async def sync(self) -> int:
        return await self._backend.async_sync()

    async def close(self) -> None:
        await self._backend.aclose()

    async def __aenter__(self) -> AsyncMemlane:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


#: For people migrating from ``from mem0.proxy.main import Mem0``.
Mem0 = Memlane

__all__ = ["AsyncMemlane", "Mem0", "Memlane", "MemlaneError"]
