"""``Memlane`` / ``AsyncMemlane``: ``client.chat.completions.create(...)`` with memory.

One request body, OpenAI's, plus memlane's own fields (``user_id agent_id run_id metadata
filters limit include_memories``); everything else reaches the upstream untouched through the
official ``openai`` SDK, and its answers and errors come back as that SDK's own types.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import threading
import time
import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

import openai
from openai.types.chat import ChatCompletion

from memlane.config import MemlaneConfig, load_config
from memlane.engine.filters import parse_filters, split_scope
from memlane.engine.learner import Learner
from memlane.engine.memory import Memory, _check_limit, _check_metadata, _scope
from memlane.errors import ConfigError, MemlaneError, UpstreamError, ValidationError
from memlane.openai_compat import resolve_endpoint
from memlane.proxy.hosted import HostedBackend, HostedChat
from memlane.proxy.recall import Recall, as_mapping, exchange_payload, inject, recall_query, reply_text
from memlane.proxy.streams import MemlaneAsyncStream, MemlaneStream
from memlane.proxy.types import MemlaneChatCompletion, RecallMetadata, RecalledMemory
from memlane.records import Scope

log = logging.getLogger("memlane.client")

DEFAULT_LIMIT = 10
#: Exchanges kept in memory while the store cannot take them; beyond this they are logged.
MAX_UNSAVED = 10_000


@dataclass
class ClientStats:
    """Counters a caller (or /metrics later) can read: memory failures are counted, not hidden."""

    chats: int = 0
    recalls: int = 0
    recalled_memories: int = 0
    recall_failures: int = 0
    last_recall_error: str | None = None
    exchanges_queued: int = 0
    outbox_write_failures: int = 0
    last_recall_timings_ms: dict[str, float] = field(default_factory=dict)


@dataclass
class _Call:
    """One chat call, after memlane's own fields were taken out of the body."""

    scope: Scope
    filters: Mapping[str, Any] | None
    limit: int
    include_memories: bool
    metadata: dict[str, Any]
    messages: Sequence[Any]
    model: str
    upstream_kwargs: dict[str, Any]


class _Core:
    """What the sync and async clients share: argument handling, recall, the outbox."""

    def __init__(self, config: MemlaneConfig | Mapping[str, Any] | str | None, memory: Memory | None) -> None:
        self.config = memory.config if memory is not None else load_config(config)
        self.memory = memory or Memory(self.config)
        self.stats = ClientStats()
        self.learner = Learner(self.memory, self.config.outbox)
        self._unsaved: list[dict[str, Any]] = []
        self._unsaved_lock = threading.Lock()
        self._closed = False
        self.learner.start()  # resumes what earlier clients of this store left in the outbox
        _flush_at_exit(self)

    # -- arguments -----------------------------------------------------------------------------

    def parse(self, messages: Any, model: Any, user_id: str | None, agent_id: str | None, run_id: str | None,
              metadata: Any, filters: Any, limit: Any, top_k: Any, include_memories: bool, kwargs: dict[str, Any]) -> _Call:
        if not isinstance(messages, (list, tuple)) or not messages:
            raise ValidationError("messages must be a non-empty list of chat messages", param="messages")
        for index, message in enumerate(messages):
            role = as_mapping(message).get("role")
            if not isinstance(role, str) or not role:
                raise ValidationError(f"messages[{index}] must be an object with a string role, got {message!r:.80}", param="messages")
        if limit is not None and top_k is not None and limit != top_k:
            raise ValidationError("limit and top_k are two names for one setting; pass one", param="limit")
        n = _check_limit(limit if limit is not None else (top_k if top_k is not None else DEFAULT_LIMIT))
        scope, _ = _scope(user_id, agent_id, run_id, filters, required=None)
        parse_filters(split_scope(filters)[1])  # a malformed filter is the caller's error, not a memory failure
        return _Call(scope, filters, n, bool(include_memories), _check_metadata(metadata), messages, model, kwargs)

    # -- recall --------------------------------------------------------------------------------

    def recall(self, call: _Call) -> Recall:
        result = Recall()
        query = recall_query(call.messages)
        if call.scope.is_empty() or query is None:
            return result
        self.stats.recalls += 1
        try:
            result.hits = self.memory.search_hits(
                query, **call.scope.as_dict(), filters=call.filters, limit=call.limit, timings=result.timings_ms
            )
        except ValidationError:
            raise
        except Exception as exc:  # noqa: BLE001 - memory failure never breaks chat
            self.stats.recall_failures += 1
            self.stats.last_recall_error = f"{type(exc).__name__}: {exc}"
            result.error = self.stats.last_recall_error
            log.warning("recall failed; answering without memories: %s", result.error)
        self.stats.recalled_memories += len(result.hits)
        return result

    def prepare(self, call: _Call, recalled: Recall) -> list[Any]:
        started = time.perf_counter()
        messages = inject(call.messages, recalled.hits)
        recalled.timings_ms["inject_ms"] = (time.perf_counter() - started) * 1000
        self.stats.last_recall_timings_ms = dict(recalled.timings_ms)
        return messages

    @staticmethod
    def recall_metadata(call: _Call, recalled: Recall) -> RecallMetadata | None:
        if not call.include_memories:
            return None
        return RecallMetadata(memories=[RecalledMemory(**h.to_dict()) for h in recalled.hits])

    def wrap(self, call: _Call, recalled: Recall, response: Any) -> MemlaneChatCompletion:
        data = response.to_dict(mode="python", exclude_unset=True) if hasattr(response, "to_dict") else dict(response)
        meta = self.recall_metadata(call, recalled)
        if meta is not None:
            data["metadata"] = meta
        return MemlaneChatCompletion.model_validate(data)

    # -- learning ------------------------------------------------------------------------------

    def learn(self, call: _Call, reply: str | None) -> None:
        """Queue what this call taught us (never raises; see ``enqueue``)."""
        self.enqueue(exchange_payload(call.scope.as_dict(), call.messages, reply, call.metadata, call.model))

    def enqueue(self, payload: dict[str, Any] | None) -> None:
        """Durably queue an exchange (the store's outbox) and wake the learner; never raises."""
        if payload is None:
            return
        self._save_unsaved()
        try:
            self.memory.store.outbox.put(payload)
        except Exception as exc:  # noqa: BLE001
            self.stats.outbox_write_failures += 1
            with self._unsaved_lock:
                if len(self._unsaved) < MAX_UNSAVED:
                    self._unsaved.append(payload)
                    log.warning("outbox write failed, exchange kept in memory for retry: %s", exc)
                else:
                    log.error("outbox write failed and %d exchanges already wait in memory; this one is lost: %s", MAX_UNSAVED, exc)
            return
        self.stats.exchanges_queued += 1
        self.learner.notify()

    def _save_unsaved(self) -> None:
        with self._unsaved_lock:
            pending, self._unsaved = self._unsaved, []
        for index, payload in enumerate(pending):
            try:
                self.memory.store.outbox.put(payload)
                self.stats.exchanges_queued += 1
            except Exception:  # noqa: BLE001 - still down: keep the rest for next time
                with self._unsaved_lock:
                    self._unsaved[:0] = pending[index:]
                return

    def flush(self, timeout: float | None) -> bool:
        if self._closed:  # closing stopped the learner and the store; nothing can drain now
            return False
        self._save_unsaved()
        return self.learner.flush(timeout) and not self._unsaved

    def outbox_status(self) -> dict[str, Any]:
        status = self.learner.status()
        status["unsaved_in_memory"] = len(self._unsaved)
        status["outbox_write_failures"] = self.stats.outbox_write_failures
        return status

    def close(self) -> None:
        self._closed = True
        _live.discard(self)
        self.learner.stop()
        self.memory.close()


_live: "weakref.WeakSet[_Core]" = weakref.WeakSet()


def _flush_at_exit(core: _Core) -> None:
    _live.add(core)


@atexit.register
def _drain_all() -> None:
    """At exit, give the learners one shared deadline (the longest ``exit_flush_seconds`` of the
    live clients), not one each: exit never waits longer than configured."""
    cores = list(_live)
    if not cores:
        return
    deadline = time.monotonic() + max(core.config.outbox.exit_flush_seconds for core in cores)
    for core in cores:
        try:
            core.flush(max(0.0, deadline - time.monotonic()))
        except Exception:  # noqa: BLE001 - exiting anyway; the outbox keeps what is left
            pass


@contextmanager
def _upstream_answer() -> Iterator[None]:
    """A 200 whose body is not JSON is the upstream's fault, not an internal error."""
    try:
        yield
    except json.JSONDecodeError as exc:
        raise UpstreamError(f"the upstream model server answered with a body that is not JSON ({exc.msg})") from exc


def _completion(response: Any, stream: bool) -> Any:
    """The upstream's answer, if it is a chat completion; ``UpstreamError`` (502) otherwise."""
    if stream or (isinstance(response, ChatCompletion) and isinstance(response.choices, list)):
        return response
    kind = "a JSON object without choices" if isinstance(response, ChatCompletion) else type(response).__name__
    raise UpstreamError(f"the upstream model server answered with something that is not a chat completion ({kind})")


def _upstream_endpoint(config: MemlaneConfig) -> tuple[str | None, str]:
    return resolve_endpoint(config.upstream.base_url, config.upstream.api_key, where="upstream")


def _reject_hosted(api_key: str | None, host: str | None) -> None:
    if api_key is not None or host is not None:
        raise ConfigError(
            "AsyncMemlane has no hosted mode yet; use Memlane(api_key=..., host=...) or point "
            "openai.AsyncOpenAI at the server's /v1 with extra_body={'user_id': ...}",
            param="host",
        )


class Completions:
    def __init__(self, client: Memlane) -> None:
        self._client = client

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
        core = self._client._core
        call = core.parse(messages, model, user_id, agent_id, run_id, metadata, filters, limit, top_k, include_memories, kwargs)
        core.stats.chats += 1
        upstream = self._client.upstream
        stream = bool(kwargs.get("stream"))
        if call.scope.is_empty():  # a one-off call: nothing recalled, nothing stored
            with _upstream_answer():
                return _completion(upstream.chat.completions.create(messages=messages, model=model, **kwargs), stream)
        recalled = core.recall(call)
        sent = core.prepare(call, recalled)
        with _upstream_answer():
            response = _completion(upstream.chat.completions.create(messages=sent, model=model, **kwargs), stream)
        if kwargs.get("stream"):
            return MemlaneStream(response, lambda text: core.learn(call, text), core.recall_metadata(call, recalled))
        core.learn(call, reply_text(response))
        return core.wrap(call, recalled, response)


class Chat:
    def __init__(self, client: Memlane) -> None:
        self.completions = Completions(client)


class _ClientBase:
    """What both clients share; subclasses name the openai SDK class and the chat resource."""

    _sdk: Any
    _chat: Any

    def __init__(
        self,
        config: MemlaneConfig | Mapping[str, Any] | str | None = None,
        *,
        api_key: str | None = None,
        host: str | None = None,
        memory: Memory | None = None,
    ) -> None:
        _reject_hosted(api_key, host)
        self._core = _Core(config, memory)
        self.config = self._core.config
        self.chat = self._chat(self)
        self._upstream: Any = None

    @property
    def memory(self) -> Memory:
        """The engine itself: ``client.memory.search("food", user_id="alice")``."""
        return self._core.memory

    @property
    def stats(self) -> ClientStats:
        return self._core.stats

    @property
    def upstream(self) -> Any:
        """The openai SDK client chats go to (built on first use)."""
        if self._upstream is None:
            url, key = _upstream_endpoint(self.config)
            up = self.config.upstream
            timeout = openai.Timeout(up.timeout, connect=up.connect_timeout)
            self._upstream = self._sdk(base_url=url, api_key=key, timeout=timeout, max_retries=up.retries(serving=False))
        return self._upstream

    def outbox_status(self) -> dict[str, Any]:
        """Queued exchanges, retries, the last error, and what the learner has done."""
        return self._core.outbox_status()


class Memlane(_ClientBase):
    """The drop-in client. ``Memlane()`` uses the embedded default (SQLite under MEMLANE_HOME,
    local MiniLM); ``Memlane(config={...})`` takes mem0's config shape; chats go to
    ``config["upstream"]`` or ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY``.
    ``Memlane(api_key=..., host=...)`` talks to a memlane server instead (hosted mode)."""

    _sdk = openai.OpenAI
    _chat = Chat
    chat: Chat
    upstream: openai.OpenAI  # type: ignore[assignment]

    def __new__(cls, config: Any = None, *, api_key: str | None = None, host: str | None = None, **kwargs: Any) -> Any:
        if cls is Memlane and (api_key is not None or host is not None):
            return object.__new__(HostedMemlane)
        return object.__new__(cls)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued exchange was learnt from; False if ``timeout`` ran out first."""
        return self._core.flush(timeout)

    def close(self) -> None:
        self._core.close()
        if self._upstream is not None:
            self._upstream.close()

    def __enter__(self) -> Memlane:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncCompletions:
    def __init__(self, client: AsyncMemlane) -> None:
        self._client = client

    async def create(
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
        core = self._client._core
        call = core.parse(messages, model, user_id, agent_id, run_id, metadata, filters, limit, top_k, include_memories, kwargs)
        core.stats.chats += 1
        upstream = self._client.upstream
        stream = bool(kwargs.get("stream"))
        if call.scope.is_empty():
            with _upstream_answer():
                return _completion(await upstream.chat.completions.create(messages=messages, model=model, **kwargs), stream)
        recalled = await asyncio.to_thread(core.recall, call)
        sent = core.prepare(call, recalled)
        with _upstream_answer():
            response = _completion(await upstream.chat.completions.create(messages=sent, model=model, **kwargs), stream)

        async def learn(text: str | None) -> None:
            await asyncio.to_thread(core.learn, call, text)

        if kwargs.get("stream"):
            return MemlaneAsyncStream(response, learn, core.recall_metadata(call, recalled))
        await learn(reply_text(response))
        return core.wrap(call, recalled, response)


class AsyncChat:
    def __init__(self, client: AsyncMemlane) -> None:
        self.completions = AsyncCompletions(client)


class AsyncMemlane(_ClientBase):
    """``Memlane`` with ``await`` and ``async for``."""

    _sdk = openai.AsyncOpenAI
    _chat = AsyncChat
    chat: AsyncChat
    upstream: openai.AsyncOpenAI  # type: ignore[assignment]

    async def flush(self, timeout: float | None = None) -> bool:
        return await asyncio.to_thread(self._core.flush, timeout)

    async def close(self) -> None:
        await asyncio.to_thread(self._core.close)
        if self._upstream is not None:
            await self._upstream.close()

    async def __aenter__(self) -> AsyncMemlane:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class HostedMemlane(Memlane):
    """``Memlane(api_key=..., host=...)``: the same calls, answered by a memlane server."""

    def __init__(self, config: Any = None, *, api_key: str | None = None, host: str | None = None,
                 fallback: Mapping[str, Any] | None = None, timeout: float = 600.0, **_: Any) -> None:
        if config is not None:
            raise ConfigError("hosted mode takes api_key/host (and fallback), not a config: the server has the config", param="config")
        self._backend = HostedBackend(api_key, host, fallback, timeout)
        self.chat = HostedChat(self._backend)  # type: ignore[assignment]
        self.host = self._backend.host

    @property
    def memory(self) -> Any:  # type: ignore[override]
        """The server's memories, with the engine's method names (add, search, get_all, ...)."""
        return self._backend.memory

    def sync(self) -> int:
        """Send exchanges kept while the server was unreachable; returns how many were sent."""
        return self._backend.sync()

    def pending_sync(self) -> int:
        return len(self._backend.outbox.items())

    def flush(self, timeout: float | None = None) -> bool:
        """The server learns in its own outbox; here, resync what was kept locally."""
        self.sync()
        return self.pending_sync() == 0

    def outbox_status(self) -> dict[str, Any]:
        return {"pending_sync": self.pending_sync(), "file": str(self._backend.outbox.path)}

    def close(self) -> None:
        self._backend.close()


#: For people migrating from ``from mem0.proxy.main import Mem0``.
Mem0 = Memlane

__all__ = ["AsyncMemlane", "Mem0", "Memlane", "MemlaneError"]
