"""The embedded backend: the engine in this process, chats to the upstream through the official
``openai`` SDK. One forward path for the sync and the async client: parse, recall, inject,
call the upstream, learn (the exchange goes to the store's outbox; the learner does the rest).
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import sys
import threading
import time
import uuid
import weakref
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence
from urllib.parse import urlsplit, urlunsplit

import openai

from memlane.config import MemlaneConfig, load_config
from memlane.engine.learner import Learner
from memlane.engine.memory import AsyncMemory, Memory, SearchRequest
from memlane.engine.validation import check_encodable, check_max_limit, check_metadata, resolve_limit, resolve_scope
from memlane.errors import EndpointNotConfiguredError, OutboxFullError, UpstreamError, ValidationError
from memlane.openai_compat import NO_CHAT_ENDPOINT, chat_endpoint
from memlane.proxy.fields import MemlaneFields
from memlane.proxy.placement import PinnedBlocks
from memlane.proxy.protocols import CHAT, RESPONSES, ChatProtocol
from memlane.proxy.recall import exchange_payload, recall_query
from memlane.proxy.recall_log import RecallLog
from memlane.proxy.types import RecallMetadata, RecalledMemory
from memlane.query.filters import parse_filters, split_scope
from memlane.records import Scope, SearchHit

log = logging.getLogger("memlane.client")

DEFAULT_LIMIT = 10
#: Exchanges kept in memory while the store cannot take them; beyond this they are logged.
MAX_UNSAVED = 10_000
#: Ids of the exchanges a client queued that ``flush`` has not seen settle yet; beyond this the
#: oldest are forgotten (a server's per-project client never flushes until it stops).
MAX_TRACKED = 10_000
#: the least time between two log lines about exchanges a full outbox refused
DROP_LOG_SECONDS = 10.0


class ExchangeTracker:
    """The exchanges one client queued, until ``flush`` has seen each learnt or dead: what
    "flush returns False if an exchange went dead" is about (that client's own exchanges)."""

    def __init__(self, limit: int = MAX_TRACKED) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._limit = limit
        self._lock = threading.Lock()

    def add(self, exchange_id: str | None) -> None:
        if not exchange_id:
            return
        with self._lock:
            self._ids[exchange_id] = None
            while len(self._ids) > self._limit:
                self._ids.popitem(last=False)

    def pending(self) -> list[str]:
        with self._lock:
            return list(self._ids)

    def settle(self, exchange_ids: Sequence[str]) -> None:
        with self._lock:
            for exchange_id in exchange_ids:
                self._ids.pop(exchange_id, None)


@dataclass
class ClientStats:
    """Counters a caller (and ``/metrics``) can read: memory failures are counted, not hidden."""

    chats: int = 0
    recalls: int = 0
    recalled_memories: int = 0
    #: recalls that injected at least one memory (over ``recalls``: the hit rate)
    recalls_with_memories: int = 0
    recall_failures: int = 0
    last_recall_error: str | None = None
    exchanges_queued: int = 0
    outbox_write_failures: int = 0
    #: exchanges not learnt from because the outbox was full (outbox.max_queued / max_queued_mb)
    exchanges_dropped: int = 0
    #: hosted mode: chats answered by the fallback upstream while the server was unreachable
    fallback_chats: int = 0
    last_recall_timings_ms: dict[str, float] = field(default_factory=dict)


@dataclass
class ChatCall:
    """One chat call after memlane's fields were checked and taken out."""

    scope: Scope
    filters: Mapping[str, Any] | None
    limit: int
    include_memories: bool
    metadata: dict[str, Any]
    #: the conversation as chat-shaped turns (what recall reads and learning keeps)
    messages: Sequence[Any]
    model: str
    stream: bool
    #: the caller's request, in its protocol's shape, and that protocol
    request: Mapping[str, Any] = field(default_factory=dict)
    protocol: ChatProtocol = CHAT
    #: this call's entry in the recall log, once recalled
    logged: dict[str, Any] | None = None
    #: the id its exchange is queued under (named before the answer, so a stream's first chunk
    #: can carry it); None for a one-off call
    exchange_id: str | None = None


def parse_call(protocol: ChatProtocol, request: Mapping[str, Any], ours: MemlaneFields, max_limit: int) -> ChatCall:
    """Check the request the way the engine would, before anything reaches the upstream: the
    protocol's turns, and memlane's fields once, into typed values."""
    name = protocol.turns_field
    given = request.get(name)
    if not (isinstance(given, (list, tuple)) and given) and not (protocol.text_turns and isinstance(given, str) and given):
        raise ValidationError(f"{name} must be a non-empty {protocol.turns_shape}", param=name)
    turns = protocol.turns(request)
    for index, turn in enumerate(turns):
        if not isinstance(turn.get("role"), str) or not turn["role"]:
            raise ValidationError(f"{name}[{index}] must be an object with a string role, got {given[index]!r:.80}", param=name)
    check_encodable(given, name)  # a lone surrogate can reach neither the upstream nor the outbox
    n = check_max_limit(resolve_limit(ours.limit, ours.top_k, DEFAULT_LIMIT), max_limit, top_k=ours.limit is None and ours.top_k is not None)
    scope, _ = resolve_scope(ours.user_id, ours.agent_id, ours.run_id, ours.filters, required=None)
    parse_filters(split_scope(ours.filters)[1])  # a malformed filter is the caller's error, not a memory failure
    return ChatCall(scope, ours.filters, n, bool(ours.include_memories), check_metadata(ours.metadata), turns,
                    protocol.model(request), protocol.streams(request), request=request, protocol=protocol,
                    exchange_id=None if scope.is_empty() else str(uuid.uuid4()))


def where(url: Any) -> str:
    """A model server's address for an error message: no credentials, no query."""
    parts = urlsplit(str(url))
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def sdk_errors(name: str) -> tuple[type[Exception], ...]:
    """The exception class ``name`` (``APIConnectionError``, ``APITimeoutError``) of the openai SDK
    and, once it was imported (a Messages call), of the anthropic SDK: what neither raised can't be
    caught, so nothing imports the anthropic SDK for it."""
    return tuple(getattr(sdk, name) for sdk in (openai, sys.modules.get("anthropic")) if sdk is not None)


def name_the_server(exc: Any, url: Any, source: str) -> None:
    """The SDK's ``Connection error.`` / ``Request timed out.`` says nothing of where: the same
    exception (its class, request and cause kept, so ``except openai.APIConnectionError`` and
    ``APITimeoutError`` still catch it) now names the model server and the setting it came from."""
    cause = exc.__cause__
    while cause is not None and cause.__cause__ is not None and str(cause.__cause__):
        cause = cause.__cause__
    why = f": {cause}" if cause is not None and str(cause) else ""
    verb = "did not answer in time" if isinstance(exc, sdk_errors("APITimeoutError")) else "cannot be reached"
    exc.message = f"{exc.message.rstrip('.')}: the model server at {where(url)} (from {source}) {verb}{why}"
    exc.args = (exc.message,)


@contextmanager
def upstream_answer(url: Any = None, source: str = "upstream.base_url") -> Iterator[None]:
    """A 200 whose body is not JSON is the upstream's fault, not an internal error; a connection
    error names the server it could not reach."""
    try:
        yield
    except json.JSONDecodeError as exc:
        raise UpstreamError(f"the upstream model server answered with a body that is not JSON ({exc.msg})") from exc
    except sdk_errors("APIConnectionError") as exc:
        if url is not None:
            name_the_server(exc, url, source)
        raise


class EmbeddedBackend:
    """The engine, the learner and the upstream client of one embedded ``Memlane``/``AsyncMemlane``."""

    mode = "embedded"
    host: str | None = None

    def __init__(self, config: MemlaneConfig | Mapping[str, Any] | str | None, memory: Memory | None, *, asynchronous: bool,
                 learner: Callable[[Memory], Any] | None = None) -> None:
        """``learner``: what learns from this client's outbox, given its engine; by default a
        ``Learner`` with worker threads in this process. ``memlane serve`` with learner
        processes passes its ``ProcessLearnerView`` (server/learner_view.py) instead."""
        self.config = memory.config if memory is not None else load_config(config)
        self.engine = memory or Memory(self.config)
        self.memory: Memory | AsyncMemory = AsyncMemory(memory=self.engine) if asynchronous else self.engine
        self.stats = ClientStats()
        self.learner = learner(self.engine) if learner is not None else Learner(self.engine, self.config.outbox)
        #: recall, upstream and learning durations, for whoever listens (the server's metrics)
        self.timings = self.learner.timings
        self.recall_log = RecallLog(self.config.server.recall_log)
        #: the memory blocks sent before each user turn, for ``pinned`` placement
        self.pinned = PinnedBlocks(self.config.retrieval.pinned_blocks)
        self.learner.on_learned = self.recall_log.learned
        self._asynchronous = asynchronous
        self._upstream: Any = None
        self._anthropic: Any = None
        self._anthropic_source = "upstream.anthropic_base_url"
        #: which setting named the model server chats go to (said when it cannot be reached)
        self._upstream_source = "upstream.base_url"
        self._unsaved: list[dict[str, Any]] = []
        self._unsaved_lock = threading.Lock()
        self._closed = False
        #: this client's exchanges that flush has not seen settle
        self.exchanges = ExchangeTracker()
        self._dropped_logged_at = -DROP_LOG_SECONDS
        self.learner.start()  # resumes what earlier clients of this store left in the outbox
        _live.add(self)

    @property
    def upstream(self) -> Any:
        """The openai SDK client chats go to (built on first use)."""
        if self._upstream is None:
            # mem0 configs name only the llm: chats go to `upstream`, else the llm section's
            # endpoint, else OPENAI_BASE_URL / OPENAI_API_KEY
            llm = self.config.llm.config
            up = self.config.upstream
            endpoint = chat_endpoint(up, llm)
            if endpoint is None:
                raise EndpointNotConfiguredError(NO_CHAT_ENDPOINT, param="upstream")
            url, key = endpoint
            source = ("upstream.base_url" if up.base_url else "llm.config.base_url" if llm.get("base_url")
                      else "OPENAI_BASE_URL" if url else "the openai SDK's default, no OPENAI_BASE_URL")
            log.info("chats go to %s (from %s)", url or "api.openai.com", source)
            self._upstream_source = source
            sdk = openai.AsyncOpenAI if self._asynchronous else openai.OpenAI
            self._upstream = sdk(base_url=url, api_key=key, timeout=openai.Timeout(up.timeout, connect=up.connect_timeout),
                                 max_retries=up.retries(serving=False))
        return self._upstream

    @property
    def anthropic_upstream(self) -> Any:
        """The anthropic SDK client Messages calls go to (built on first use):
        ``upstream.anthropic_base_url`` / ``anthropic_api_key``, else ``ANTHROPIC_BASE_URL`` /
        ``ANTHROPIC_API_KEY``; timeouts and retries are the ``upstream`` section's."""
        if self._anthropic is None:
            from memlane.proxy.protocols.messages import anthropic_client

            up = self.config.upstream
            client, source = anthropic_client(up, asynchronous=self._asynchronous, retries=up.retries(serving=False))
            log.info("Anthropic messages go to %s (from %s)", client.base_url, source)
            self._anthropic, self._anthropic_source = client, source
        return self._anthropic

    # -- recall ------------------------------------------------------------------------------

    def _answer(self, protocol: ChatProtocol = CHAT) -> Any:
        """``upstream_answer`` for the model server of ``protocol``'s calls."""
        client = self.client_for(protocol)
        source = self._anthropic_source if protocol.upstream == "anthropic" else self._upstream_source
        return upstream_answer(client.base_url, source)

    def recall(self, call: ChatCall) -> tuple[list[SearchHit], dict[str, float]]:
        """The memories for this call; never raises for a memory failure (chat goes on without)."""
        timings: dict[str, float] = {}
        query = recall_query(call.messages)
        if call.scope.is_empty() or query is None:
            return [], timings
        self.stats.recalls += 1
        try:
            request = SearchRequest(query, **call.scope.as_dict(), filters=call.filters, limit=call.limit)
            with self.timings.timed("recall"):
                hits = self.engine.search_hits(request, timings=timings)
        except ValidationError:
            raise
        except Exception as exc:  # noqa: BLE001 - memory failure never breaks chat
            self.stats.recall_failures += 1
            self.stats.last_recall_error = f"{type(exc).__name__}: {exc}"
            log.warning("recall failed; answering without memories: %s", self.stats.last_recall_error)
            hits = []
        self.stats.recalled_memories += len(hits)
        self.stats.recalls_with_memories += bool(hits)
        call.logged = self.recall_log.record(call.scope, query, hits, sum(timings.values()))
        return hits, timings

    def prepare(self, call: ChatCall, hits: list[SearchHit], timings: dict[str, float]) -> dict[str, Any]:
        """The request sent upstream: the caller's, untouched, plus the memory blocks."""
        started = time.perf_counter()
        request = call.protocol.with_memories(call.request, hits, call.scope, self.config.retrieval.memory_placement, self.pinned)
        timings["inject_ms"] = (time.perf_counter() - started) * 1000
        self.stats.last_recall_timings_ms = dict(timings)
        return request

    @staticmethod
    def recalled(call: ChatCall, hits: list[SearchHit], exchange_id: str | None) -> RecallMetadata | None:
        """The answer's ``metadata``: what was recalled (``include_memories``) and the id of the
        exchange queued to learn from (``GET /v1/exchanges/{id}``, ``flush``)."""
        fields: dict[str, Any] = {} if exchange_id is None else {"exchange_id": exchange_id}
        if call.include_memories:
            fields["memories"] = [RecalledMemory(**h.to_dict()) for h in hits]
        return RecallMetadata(**fields) if fields else None

    # -- chat --------------------------------------------------------------------------------

    def chat(self, messages: Any, model: Any, ours: MemlaneFields, kwargs: dict[str, Any]) -> Any:
        return self.run(CHAT, {"messages": messages, "model": model, **kwargs}, ours)

    async def achat(self, messages: Any, model: Any, ours: MemlaneFields, kwargs: dict[str, Any]) -> Any:
        return await self.arun(CHAT, {"messages": messages, "model": model, **kwargs}, ours)

    def respond(self, request: Mapping[str, Any], ours: MemlaneFields) -> Any:
        return self.run(RESPONSES, request, ours)

    async def arespond(self, request: Mapping[str, Any], ours: MemlaneFields) -> Any:
        return await self.arun(RESPONSES, request, ours)

    def client_for(self, protocol: ChatProtocol) -> Any:
        """The upstream SDK client a protocol's calls go to."""
        return self.anthropic_upstream if protocol.upstream == "anthropic" else self.upstream

    def run(self, protocol: ChatProtocol, request: Mapping[str, Any], ours: MemlaneFields) -> Any:
        """One call of any protocol: parse, recall, place, call the upstream, learn."""
        call = parse_call(protocol, request, ours, self.config.server.max_limit)
        client = self.client_for(protocol)
        self.stats.chats += 1
        if call.scope.is_empty():  # a one-off call: nothing recalled, nothing stored
            with self._answer(protocol):
                return protocol.checked(protocol.send(client, request), call.stream)
        hits, timings = self.recall(call)
        sent = self.prepare(call, hits, timings)
        with self._answer(protocol), self.timings.timed("upstream"):
            response = protocol.checked(protocol.send(client, sent), call.stream)
        if call.stream:
            return protocol.relay(response, lambda text: self.learn(call, text), self.recalled(call, hits, call.exchange_id),
                                  asynchronous=False)
        queued = self.learn(call, protocol.reply_text(response))
        return protocol.answer(response, self.recalled(call, hits, queued))

    async def arun(self, protocol: ChatProtocol, request: Mapping[str, Any], ours: MemlaneFields) -> Any:
        """``run`` for the async client and the server."""
        call = parse_call(protocol, request, ours, self.config.server.max_limit)
        client = self.client_for(protocol)
        self.stats.chats += 1
        if call.scope.is_empty():
            with self._answer(protocol):
                return protocol.checked(await protocol.asend(client, request), call.stream)
        hits, timings = await asyncio.to_thread(self.recall, call)
        sent = self.prepare(call, hits, timings)
        with self._answer(protocol), self.timings.timed("upstream"):
            response = protocol.checked(await protocol.asend(client, sent), call.stream)

        async def learn(text: str | None) -> str | None:
            return await asyncio.to_thread(self.learn, call, text)

        if call.stream:
            return protocol.relay(response, learn, self.recalled(call, hits, call.exchange_id), asynchronous=True)
        queued = await learn(protocol.reply_text(response))
        return protocol.answer(response, self.recalled(call, hits, queued))

    # -- learning ----------------------------------------------------------------------------

    def learn(self, call: ChatCall, reply: str | None) -> str | None:
        """Queue what this call taught us; its exchange id, or None when nothing was queued
        (never raises; see ``enqueue``)."""
        payload = exchange_payload(call.scope.as_dict(), call.messages, reply, call.metadata, call.model)
        outbox_id = self.enqueue(payload, exchange_id=call.exchange_id)
        self.recall_log.queued(call.logged, outbox_id)
        return outbox_id

    def enqueue(self, payload: dict[str, Any] | None, *, exchange_id: str | None = None) -> str | None:
        """Durably queue an exchange (the store's outbox) and wake the learner; never raises:
        while the store cannot take it, it waits in memory and is retried on the next call. A
        full outbox (``outbox.max_queued``) is not a failure to retry: the exchange is dropped,
        counted and logged, and the chat goes on."""
        if payload is None:
            return None
        self._save_unsaved()
        try:
            outbox_id = self.engine.enqueue(payload, exchange_id=exchange_id)
        except OutboxFullError as exc:
            self._dropped(exc)
            return None
        except Exception as exc:  # noqa: BLE001
            self.stats.outbox_write_failures += 1
            with self._unsaved_lock:
                if len(self._unsaved) < MAX_UNSAVED:
                    self._unsaved.append((payload, exchange_id))
                    log.warning("outbox write failed, exchange kept in memory for retry: %s", exc)
                else:
                    log.error("outbox write failed and %d exchanges already wait in memory; this one is lost: %s", MAX_UNSAVED, exc)
            return None
        self.stats.exchanges_queued += 1
        self.exchanges.add(outbox_id)
        self.learner.notify()
        return outbox_id

    def _save_unsaved(self) -> None:
        with self._unsaved_lock:
            pending, self._unsaved = self._unsaved, []
        for index, (payload, exchange_id) in enumerate(pending):
            try:
                self.exchanges.add(self.engine.enqueue(payload, exchange_id=exchange_id))
                self.stats.exchanges_queued += 1
            except OutboxFullError as exc:
                self._dropped(exc)
            except Exception:  # noqa: BLE001 - still down: keep the rest for next time
                with self._unsaved_lock:
                    self._unsaved[:0] = pending[index:]
                return

    def _dropped(self, exc: OutboxFullError) -> None:
        """Count an exchange the full outbox refused; log it, at most every ``DROP_LOG_SECONDS``
        (a flood of chats into a full outbox must not flood the log too)."""
        self.stats.exchanges_dropped += 1
        now = time.monotonic()
        if now - self._dropped_logged_at >= DROP_LOG_SECONDS:
            self._dropped_logged_at = now
            log.error("exchange not learnt from (%d so far): %s", self.stats.exchanges_dropped, exc.message)

    def flush(self, timeout: float | None) -> bool:
        """Wait until the outbox is drained; False if ``timeout`` ran out, an exchange is still
        kept in memory, or one this client queued went dead."""
        if self._closed:  # closing stopped the learner and the store; nothing can drain now
            return False
        self._save_unsaved()
        drained = self.learner.flush(timeout) and not self._unsaved
        ours = self.exchanges.pending()
        states = self.engine.exchange_states(ours) if ours else {}
        settled = [i for i in ours if i not in states or states[i].status != "queued"]  # (unknown: forgotten after a day)
        dead = [i for i in settled if states[i].status == "dead"]
        self.exchanges.settle(settled)
        if dead:
            log.warning("%d exchange(s) went dead (memlane outbox dead lists them, with why): %s", len(dead), ", ".join(dead[:5]))
        return drained and not dead

    def sync(self) -> int:
        """Nothing is kept aside in embedded mode: exchanges go to the store's own outbox."""
        return 0

    def pending_sync(self) -> int:
        return 0

    async def aflush(self, timeout: float | None) -> bool:
        return await asyncio.to_thread(self.flush, timeout)

    async def async_sync(self) -> int:
        return 0

    def outbox_status(self) -> dict[str, Any]:
        status = self.learner.status()
        status["unsaved_in_memory"] = len(self._unsaved)
        status["outbox_write_failures"] = self.stats.outbox_write_failures
        status["exchanges_dropped"] = self.stats.exchanges_dropped
        return status

    def close(self) -> None:
        self._closed = True
        _live.discard(self)
        self.learner.stop()
        self.engine.close()
        for client in (self._upstream, self._anthropic):
            if client is not None and not self._asynchronous:
                client.close()

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)
        for client in (self._upstream, self._anthropic):
            if client is not None and self._asynchronous:
                await client.close()


_live: "weakref.WeakSet[EmbeddedBackend]" = weakref.WeakSet()


@atexit.register
def _drain_all() -> None:
    """At exit, give the learners one shared deadline (the longest ``exit_flush_seconds`` of the
    live clients), not one each: exit never waits longer than configured."""
    backends = list(_live)
    if not backends:
        return
    deadline = time.monotonic() + max(b.config.outbox.exit_flush_seconds for b in backends)
    for backend in backends:
        try:
            backend.flush(max(0.0, deadline - time.monotonic()))
        except Exception:  # noqa: BLE001 - exiting anyway; the outbox keeps what is left
            pass
