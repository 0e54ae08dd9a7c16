"""The hosted backend: ``Memlane(api_key=..., host=...)`` (or ``AsyncMemlane``) sends the same
request body to a memlane server and returns the same types; ``client.memory`` speaks the REST
API with the engine's method names.

Fallback: when the server cannot be reached and an upstream is known (``fallback=`` or
``OPENAI_BASE_URL`` / ``OPENAI_API_KEY``), the chat goes straight to the model, the exchange is
appended to a local outbox file, and it is handed to the server's outbox (``POST
/v1/exchanges``, the same learning path as a chat) once the server answers again: on a later
call, or ``client.sync()``. An item leaves the file only after the server accepted it; the file
is rewritten atomically. Each kept exchange has its own id, sent as its idempotency key, so a
resync whose answer was lost and is sent again is still learnt from once.

Waiting for learning: every chat answer with a scope names its exchange (``metadata.exchange_id``:
in the body, or on a stream's first chunk); the client remembers those ids, and ``flush()``
waits for each (``GET /v1/exchanges/{id}?wait=``), returning False if one went dead.

Errors: a refused API key is ``HostedAuthenticationError`` for chats and memory calls alike (a
``memlane.AuthenticationError`` and an ``openai.AuthenticationError``); an unreachable server
is named by its URL.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Generator, Iterator, Mapping, Sequence

import httpx
import openai

from memlane.config import memlane_home
from memlane.errors import (
    AuthenticationError,
    ConfigError,
    FilterError,
    MemlaneError,
    NotFoundError,
    ScopeError,
    StoreError,
    ValidationError,
)
from memlane.openai_compat import resolve_endpoint
from memlane.proxy.addresses import server_address
from memlane.proxy.embedded import ClientStats, ExchangeTracker
from memlane.engine.memory import UNSET
from memlane.engine.timing import Timings
from memlane.proxy.fields import MemlaneFields
from memlane.proxy.protocols import CHAT, RESPONSES, ChatProtocol
from memlane.proxy.recall import exchange_payload
from memlane.proxy.streams import AsyncServerStream, MemlaneAsyncStream, MemlaneStream, ServerStream
from memlane.proxy.types import RecallMetadata

log = logging.getLogger("memlane.hosted")

DEFAULT_HOST = "http://127.0.0.1:8765"
DEFAULT_TIMEOUT = 120.0
#: the longest one ``GET /v1/exchanges/{id}?wait=`` the server allows; ``flush`` asks again
MAX_WAIT_SECONDS = 60.0


class HostedAuthenticationError(AuthenticationError, openai.AuthenticationError):
    """The memlane server refused the API key (401), for a chat or a memory call alike: catch
    it as ``memlane.AuthenticationError`` (a ``ConfigError``) or as ``openai.AuthenticationError``."""

    def __init__(self, message: str, *, response: httpx.Response, body: object | None) -> None:
        openai.AuthenticationError.__init__(self, message, response=response, body=body)
        self.message = message
        self.param = "api_key"


def _server_of(response: httpx.Response) -> str:
    url = response.request.url
    return f"{url.scheme}://{url.netloc.decode()}"


def _refused_key(response: httpx.Response, message: str, body: object | None) -> HostedAuthenticationError:
    return HostedAuthenticationError(f"the memlane server at {_server_of(response)} refused the API key: {message}",
                                     response=response, body=body)


def _error_from(response: httpx.Response) -> MemlaneError:
    try:
        error = response.json().get("error", {})
    except (json.JSONDecodeError, AttributeError):
        error = {}
    message = error.get("message") or response.text or f"HTTP {response.status_code}"
    code = error.get("code") or ""
    if response.status_code == 404:
        return NotFoundError(message, param=error.get("param"))
    if response.status_code == 401:
        return _refused_key(response, message, error or None)
    if response.status_code < 500:
        kind = {"filter": FilterError, "scope": ScopeError}.get(code, ValidationError)
        return kind(message, param=error.get("param"))
    return StoreError(f"memlane server error {response.status_code}: {message}")


#: error codes the memlane server gives its own input errors (``MemlaneError`` class names, and
#: the request limits that the engine checks too)
_OWN_INPUT_ERRORS = {"filter": FilterError, "scope": ScopeError, "validation": ValidationError, "limit_too_large": ValidationError}


@contextmanager
def same_errors_as_embedded() -> Iterator[None]:
    """A chat the memlane server refused for memlane's own fields (a bad filter, scope or limit)
    raises what the embedded client raises for the same call (``FilterError``, ...); the
    model's own refusals stay the openai SDK's errors. A refused key is
    ``HostedAuthenticationError``, as for memory calls."""
    try:
        yield
    except openai.AuthenticationError as exc:
        body = exc.body if isinstance(exc.body, dict) else None
        message = str((body or {}).get("message") or exc.message)
        raise _refused_key(exc.response, message, body) from exc
    except openai.BadRequestError as exc:
        body = exc.body if isinstance(exc.body, dict) else {}
        kind = _OWN_INPUT_ERRORS.get(str(body.get("code") or ""))
        if kind is None:
            raise
        raise kind(str(body.get("message") or exc.message), param=body.get("param")) from exc


def _checked(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        raise _error_from(response)
    return response.json()


def _scope(user_id: str | None, agent_id: str | None, run_id: str | None) -> dict[str, str]:
    return {k: v for k, v in (("user_id", user_id), ("agent_id", agent_id), ("run_id", run_id)) if v is not None}


def _dropping_none(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if v is not None}


def _iso(value: Any) -> Any:
    """A date or datetime travels as ISO 8601; anything else as it is (the server checks it)."""
    return value.isoformat() if hasattr(value, "isoformat") else value


class MemoryRequests:
    """The engine's methods as REST requests ``(method, path, httpx keyword arguments)``; the
    sync and async hosted memories below send them."""

    @staticmethod
    def add(messages: Any, *, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None,
            metadata: Mapping[str, Any] | None = None, filters: Mapping[str, Any] | None = None, infer: bool = True,
            timestamp: Any = None, expiration_date: Any = None, immutable: bool = False, custom_instructions: str | None = None,
            custom_categories: Sequence[Any] | None = None) -> tuple[str, str, dict[str, Any]]:
        body = {"messages": messages, **_scope(user_id, agent_id, run_id), "metadata": metadata, "filters": filters, "infer": infer,
                "timestamp": _iso(timestamp), "expiration_date": _iso(expiration_date), "immutable": immutable or None,
                "custom_instructions": custom_instructions, "custom_categories": list(custom_categories) if custom_categories is not None else None}
        return "POST", "/v1/memories", {"json": _dropping_none(body)}

    @staticmethod
    def search(query: str, *, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None,
               filters: Mapping[str, Any] | None = None, limit: int | None = None, top_k: int | None = None,
               threshold: float | None = None, rerank: bool | None = None, show_expired: bool = False,
               categories: Sequence[str] | None = None, reference_date: Any = None, keyword_search: bool | None = None,
               fields: Sequence[str] | None = None, latest_only: bool | None = None) -> tuple[str, str, dict[str, Any]]:
        body = {"query": query, **_scope(user_id, agent_id, run_id), "filters": filters, "limit": limit, "top_k": top_k, "threshold": threshold,
                "rerank": rerank, "show_expired": show_expired or None, "categories": categories, "reference_date": _iso(reference_date),
                "keyword_search": keyword_search, "fields": fields, "latest_only": latest_only}
        return "POST", "/v1/memories/search", {"json": _dropping_none(body)}

    @staticmethod
    def get(memory_id: str) -> tuple[str, str, dict[str, Any]]:
        return "GET", f"/v1/memories/{memory_id}", {}

    @staticmethod
    def get_all(*, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None,
                filters: Mapping[str, Any] | None = None, limit: int | None = 100, show_expired: bool = False,
                categories: Sequence[str] | None = None) -> tuple[str, str, dict[str, Any]]:
        params: dict[str, Any] = {**_scope(user_id, agent_id, run_id), "filters": json.dumps(filters) if filters else None, "limit": limit,
                                  "show_expired": "true" if show_expired else None, "categories": list(categories) if categories else None}
        return "GET", "/v1/memories", {"params": _dropping_none(params)}

    @staticmethod
    def update(memory_id: str, data: str | None = None, metadata: Mapping[str, Any] | None = None, *,
               expiration_date: Any = UNSET) -> tuple[str, str, dict[str, Any]]:
        body = _dropping_none({"text": data, "metadata": metadata})
        if expiration_date is not UNSET:  # null travels: it clears the expiry
            body["expiration_date"] = _iso(expiration_date)
        return "PUT", f"/v1/memories/{memory_id}", {"json": body}

    @staticmethod
    def delete(memory_id: str) -> tuple[str, str, dict[str, Any]]:
        return "DELETE", f"/v1/memories/{memory_id}", {}

    @staticmethod
    def delete_all(*, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None,
                   filters: Mapping[str, Any] | None = None) -> tuple[str, str, dict[str, Any]]:
        params = {**_scope(user_id, agent_id, run_id), "filters": json.dumps(filters) if filters else None}
        return "DELETE", "/v1/memories", {"params": _dropping_none(params)}

    @staticmethod
    def delete_users(*, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None) -> tuple[str, str, dict[str, Any]]:
        return "DELETE", "/v1/users", {"params": _scope(user_id, agent_id, run_id)}

    @staticmethod
    def history(memory_id: str) -> tuple[str, str, dict[str, Any]]:
        return "GET", f"/v1/memories/{memory_id}/history", {}

    @staticmethod
    def enqueue(exchange: Mapping[str, Any]) -> tuple[str, str, dict[str, Any]]:
        """Hand an exchange to the server's outbox (learnt like a chat through the server)."""
        return "POST", "/v1/exchanges", {"json": dict(exchange)}

    # -- batch edits, feedback, webhooks (memlane.engine.lifecycle) ---------------------------------

    @staticmethod
    def batch_update(memories: Sequence[Mapping[str, Any]]) -> tuple[str, str, dict[str, Any]]:
        return "PUT", "/v1/memories/batch", {"json": {"memories": list(memories)}}

    @staticmethod
    def batch_delete(memories: Sequence[Mapping[str, Any] | str]) -> tuple[str, str, dict[str, Any]]:
        return "DELETE", "/v1/memories/batch", {"json": {"memories": list(memories)}}

    @staticmethod
    def feedback(memory_id: str, feedback: str | None = None, feedback_reason: str | None = None) -> tuple[str, str, dict[str, Any]]:
        return "POST", f"/v1/memories/{memory_id}/feedback", {"json": {"feedback": feedback, "feedback_reason": feedback_reason}}

    @staticmethod
    def get_feedback(memory_id: str) -> tuple[str, str, dict[str, Any]]:
        return "GET", f"/v1/memories/{memory_id}/feedback", {}

    @staticmethod
    def get_project(fields: Sequence[str] | None = None) -> tuple[str, str, dict[str, Any]]:
        return "GET", "/v1/project", {"params": {"fields": list(fields)} if fields else {}}

    @staticmethod
    def update_project(*, custom_instructions: str | None = None, custom_categories: Sequence[Any] | None = None) -> tuple[str, str, dict[str, Any]]:
        body = {"custom_instructions": custom_instructions, "custom_categories": list(custom_categories) if custom_categories is not None else None}
        return "PATCH", "/v1/project", {"json": _dropping_none(body)}

    @staticmethod
    def create_webhook(url: str, name: str | None = None, event_types: Sequence[str] | None = None,
                       is_active: bool = True) -> tuple[str, str, dict[str, Any]]:
        body = {"url": url, "name": name, "event_types": list(event_types) if event_types is not None else None, "is_active": is_active}
        return "POST", "/v1/webhooks", {"json": _dropping_none(body)}

    @staticmethod
    def get_webhooks() -> tuple[str, str, dict[str, Any]]:
        return "GET", "/v1/webhooks", {}

    @staticmethod
    def update_webhook(webhook_id: str, name: str | None = None, url: str | None = None, event_types: Sequence[str] | None = None,
                       is_active: bool | None = None) -> tuple[str, str, dict[str, Any]]:
        body = {"url": url, "name": name, "event_types": list(event_types) if event_types is not None else None, "is_active": is_active}
        return "PUT", f"/v1/webhooks/{webhook_id}", {"json": _dropping_none(body)}

    @staticmethod
    def delete_webhook(webhook_id: str) -> tuple[str, str, dict[str, Any]]:
        return "DELETE", f"/v1/webhooks/{webhook_id}", {}

    @staticmethod
    def webhook_deliveries(webhook_id: str | None = None, *, status: str | None = None, limit: int = 50) -> tuple[str, str, dict[str, Any]]:
        return "GET", "/v1/webhooks/deliveries", {"params": _dropping_none({"webhook_id": webhook_id, "status": status, "limit": limit})}


METHODS = ("add", "search", "get", "get_all", "update", "delete", "delete_all", "delete_users", "history", "enqueue", "batch_update", "batch_delete",
           "feedback", "get_feedback", "get_project", "update_project", "create_webhook", "get_webhooks", "update_webhook", "delete_webhook", "webhook_deliveries")


def _sending(name: str) -> Callable[..., Any]:
    build = getattr(MemoryRequests, name)

    @functools.wraps(build)
    def call(self: HostedMemory, *args: Any, **kwargs: Any) -> Any:
        method, path, options = build(*args, **kwargs)
        try:
            response = self._http.request(method, path, **options)
        except httpx.HTTPError as exc:
            raise _unreachable_store(self._http, exc) from exc
        return _checked(response)

    return call


def _unreachable_store(http: httpx.Client | httpx.AsyncClient, exc: httpx.HTTPError) -> StoreError:
    return StoreError(f"cannot reach the memlane server at {str(http.base_url).rstrip('/')}: {str(exc) or type(exc).__name__}")


def _asending(name: str) -> Callable[..., Any]:
    build = getattr(MemoryRequests, name)

    @functools.wraps(build)
    async def call(self: AsyncHostedMemory, *args: Any, **kwargs: Any) -> Any:
        method, path, options = build(*args, **kwargs)
        try:
            response = await self._http.request(method, path, **options)
        except httpx.HTTPError as exc:
            raise _unreachable_store(self._http, exc) from exc
        return _checked(response)

    return call


class HostedMemory:
    """The engine's methods over the memlane REST API (``add``, ``search``, ``get``, ``get_all``,
    ``update``, ``delete``, ``delete_all``, ``delete_users``, ``history``, ``enqueue``, and the batch
    edits, feedback and webhooks of memlane.engine.lifecycle: see ``MemoryRequests``)."""

    def __init__(self, http: httpx.Client) -> None:
        self._http = http


class AsyncHostedMemory:
    """``HostedMemory`` with ``await``."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http


for _name in METHODS:  # the same methods on both, built from one request description each
    setattr(HostedMemory, _name, _sending(_name))
    setattr(AsyncHostedMemory, _name, _asending(_name))


class LocalOutbox:
    """Exchanges made while the server was unreachable, one JSON object per line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def append(self, item: dict[str, Any]) -> None:
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(item, ensure_ascii=False) + "\n")
                f.flush()
                os.fsync(f.fileno())

    def items(self) -> list[dict[str, Any]]:
        with self._lock:
            if not self.path.exists():
                return []
            return [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def replace(self, items: Sequence[dict[str, Any]]) -> None:
        with self._lock:
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text("".join(json.dumps(i, ensure_ascii=False) + "\n" for i in items), encoding="utf-8")
            os.replace(tmp, self.path)


@dataclass(frozen=True)
class HostedSettings:
    """A hosted client's configuration (the memory configuration is the server's)."""

    host: str
    fallback_base_url: str | None
    timeout: float
    outbox_file: str


class HostedBackend:
    """What a hosted ``Memlane`` / ``AsyncMemlane`` does: chats and memory calls go to the server."""

    mode = "hosted"

    def __init__(self, api_key: str | None, host: str | None, fallback: Mapping[str, Any] | None, timeout: float | None,
                 *, asynchronous: bool) -> None:
        self.api_key = api_key or os.environ.get("MEMLANE_API_KEY") or "memlane-no-key"
        self.host = server_address(host or os.environ.get("MEMLANE_HOST") or DEFAULT_HOST)  # "h:8765", ".../v1" too
        self._asynchronous = asynchronous
        self._timeout = timeout or DEFAULT_TIMEOUT
        headers = {"Authorization": f"Bearer {self.api_key}"}
        if asynchronous:
            self.http: Any = httpx.AsyncClient(base_url=self.host, headers=headers, timeout=self._timeout)
            self.memory: Any = AsyncHostedMemory(self.http)
            self.upstream: Any = openai.AsyncOpenAI(base_url=self.host + "/v1", api_key=self.api_key, timeout=self._timeout, max_retries=0)
        else:
            self.http = httpx.Client(base_url=self.host, headers=headers, timeout=self._timeout)
            self.memory = HostedMemory(self.http)
            self.upstream = openai.OpenAI(base_url=self.host + "/v1", api_key=self.api_key, timeout=self._timeout, max_retries=0)
        self._fallback_settings = dict(fallback or {})
        self._fallback: Any = None
        self.stats = ClientStats()
        #: recall and learning run on the server (its /metrics has them); nothing is told here
        self.timings = Timings()
        digest = hashlib.sha1(f"{self.host}|{self.api_key}".encode()).hexdigest()[:16]
        self.outbox = LocalOutbox(memlane_home() / "hosted-outbox" / f"{digest}.jsonl")
        #: the exchanges the server queued for this client, until flush has seen them settle
        self.exchanges = ExchangeTracker()
        self.config = HostedSettings(self.host, self._fallback_settings.get("base_url"), self._timeout, str(self.outbox.path))

    def fallback_client(self) -> Any:
        if self._fallback is None:
            try:
                url, key = resolve_endpoint(self._fallback_settings.get("base_url"), self._fallback_settings.get("api_key"), where="fallback")
            except ConfigError:
                return None
            sdk = openai.AsyncOpenAI if self._asynchronous else openai.OpenAI
            self._fallback = sdk(base_url=url, api_key=key, max_retries=0, timeout=self._fallback_settings.get("timeout", self._timeout))
        return self._fallback

    # -- resync ------------------------------------------------------------------------------

    def _handover(self) -> Generator[dict[str, Any], MemlaneError | None, int]:
        """The resync, written once for both clients: yields each kept exchange and receives how
        sending it went; an item leaves the file only once the server took it. Returns how many
        were sent."""
        pending, kept, sent = self.outbox.items(), [], 0
        for index, item in enumerate(pending):
            error = yield item
            if isinstance(error, StoreError):  # still unreachable: keep this one and the rest
                break
            if error is not None:  # the server refused this one: keep it, say why, go on
                log.error("memlane server refused a kept exchange (it stays in %s): %s", self.outbox.path, error)
                kept.append(item)
                continue
            sent += 1
            self.outbox.replace(kept + pending[index + 1 :])
        return sent

    def sync(self) -> int:
        """Hand exchanges kept while the server was down to its outbox; returns how many."""
        steps = self._handover()
        try:
            item = next(steps)
            while True:
                try:
                    self.exchanges.add(self.memory.enqueue(item).get("id"))
                    item = steps.send(None)
                except MemlaneError as exc:
                    item = steps.send(exc)
        except StopIteration as done:
            return int(done.value)

    async def async_sync(self) -> int:
        steps = self._handover()
        try:
            item = next(steps)
            while True:
                try:
                    self.exchanges.add((await self.memory.enqueue(item)).get("id"))
                    item = steps.send(None)
                except MemlaneError as exc:
                    item = steps.send(exc)
        except StopIteration as done:
            return int(done.value)

    def pending_sync(self) -> int:
        return len(self.outbox.items())

    def _waiting(self, timeout: float | None) -> Generator[tuple[str, float], httpx.Response | None, bool]:
        """``flush``, written once for both clients: yields ``(exchange id, seconds to wait)``
        for each exchange the server queued for this client, and receives the server's answer
        to ``GET /v1/exchanges/{id}?wait=`` (None: unreachable). True when every one was learnt
        from and nothing is kept locally."""
        deadline = None if timeout is None else time.monotonic() + timeout
        ok = self.pending_sync() == 0
        for exchange_id in self.exchanges.pending():
            while True:
                left = MAX_WAIT_SECONDS if deadline is None else min(MAX_WAIT_SECONDS, deadline - time.monotonic())
                if left <= 0:
                    return False
                response = yield exchange_id, left
                if response is None:
                    return False
                if response.status_code == 404:
                    log.warning("the memlane server does not know exchange %s (learnt over a day ago, or never queued)", exchange_id)
                    ok = False
                    break
                state = _checked(response)
                if state.get("status") == "queued":
                    continue
                if state.get("status") == "dead":
                    log.warning("exchange %s went dead on the server (memlane outbox dead lists it): %s", exchange_id, state.get("last_error"))
                    ok = False
                break
            self.exchanges.settle([exchange_id])
        return ok

    def flush(self, timeout: float | None = None) -> bool:
        """Hand over what was kept locally, then wait until the server learnt from every exchange
        it queued for this client; False if one went dead or ``timeout`` ran out first."""
        self.sync()
        steps = self._waiting(timeout)
        try:
            exchange_id, wait = next(steps)
            while True:
                try:
                    response: httpx.Response | None = self.http.get(
                        f"/v1/exchanges/{exchange_id}", params={"wait": round(wait, 3)}, timeout=wait + self._timeout)
                except httpx.HTTPError as exc:
                    log.warning("cannot reach the memlane server at %s to wait for learning: %s", self.host, exc)
                    response = None
                exchange_id, wait = steps.send(response)
        except StopIteration as done:
            return bool(done.value)

    async def aflush(self, timeout: float | None = None) -> bool:
        await self.async_sync()
        steps = self._waiting(timeout)
        try:
            exchange_id, wait = next(steps)
            while True:
                try:
                    response: httpx.Response | None = await self.http.get(
                        f"/v1/exchanges/{exchange_id}", params={"wait": round(wait, 3)}, timeout=wait + self._timeout)
                except httpx.HTTPError as exc:
                    log.warning("cannot reach the memlane server at %s to wait for learning: %s", self.host, exc)
                    response = None
                exchange_id, wait = steps.send(response)
        except StopIteration as done:
            return bool(done.value)

    def outbox_status(self) -> dict[str, Any]:
        return {"pending_sync": self.pending_sync(), "file": str(self.outbox.path)}

    # -- chat --------------------------------------------------------------------------------

    def _unreachable(self, exc: openai.APIConnectionError) -> openai.APIConnectionError:
        """The SDK's own error type, saying which server and what would have helped."""
        return openai.APIConnectionError(
            message=f"cannot reach the memlane server at {self.host} ({exc.message}); to answer straight from a model "
                    "while it is down, pass fallback={'base_url': ..., 'api_key': ...} or set OPENAI_BASE_URL / OPENAI_API_KEY",
            request=exc.request)

    def _keeper(self, ours: MemlaneFields, turns: Sequence[Any], model: str) -> Callable[[str | None], None]:
        def keep(reply: str | None) -> None:
            payload = exchange_payload(ours.scope(), turns, reply, ours.metadata, model)
            if payload is not None:
                self.outbox.append({**payload, "id": str(uuid.uuid4())})  # its idempotency key at resync
                self.stats.exchanges_queued += 1

        return keep

    def _fall_back(self, exc: openai.APIConnectionError, ours: MemlaneFields, protocol: ChatProtocol,
                   request: Mapping[str, Any]) -> tuple[Any, Callable[[str | None], None], RecallMetadata | None]:
        """The server is unreachable: the fallback client (or the error, if there is none), what
        keeps the exchange for resync, and the (empty) recall metadata to answer with."""
        upstream = self.fallback_client()
        if upstream is None:
            raise self._unreachable(exc) from exc
        log.warning("memlane server %s unreachable; answering through the fallback upstream", self.host)
        self.stats.fallback_chats += 1
        keep = self._keeper(ours, protocol.turns(request), str(protocol.model(request)))
        return upstream, keep, RecallMetadata(memories=[]) if ours.include_memories else None

    def _body(self, ours: MemlaneFields, request: Mapping[str, Any]) -> dict[str, Any]:
        """The SDK's arguments for the server: the caller's own, their ``extra_body`` merged with
        memlane's fields (memlane's keyword arguments win over the same names in it)."""
        sent = dict(request)
        extra = {**(sent.pop("extra_body", None) or {}), **ours.as_body()}
        return {**sent, "extra_body": extra or None}

    def _answered(self, protocol: ChatProtocol, response: Any, stream: bool) -> Any:
        """The server's answer, its exchange id remembered for ``flush``."""
        def seen(metadata: RecallMetadata) -> None:
            self.exchanges.add(metadata.exchange_id)

        if stream:
            return AsyncServerStream(response, seen) if self._asynchronous else ServerStream(response, seen)
        answer = protocol.answer(response, None)
        if isinstance(answer.metadata, RecallMetadata):
            seen(answer.metadata)
        return answer

    def chat(self, messages: Sequence[Any], model: str, ours: MemlaneFields, kwargs: dict[str, Any]) -> Any:
        return self.run(CHAT, {"messages": messages, "model": model, **kwargs}, ours)

    async def achat(self, messages: Sequence[Any], model: str, ours: MemlaneFields, kwargs: dict[str, Any]) -> Any:
        return await self.arun(CHAT, {"messages": messages, "model": model, **kwargs}, ours)

    def respond(self, request: Mapping[str, Any], ours: MemlaneFields) -> Any:
        return self.run(RESPONSES, request, ours)

    async def arespond(self, request: Mapping[str, Any], ours: MemlaneFields) -> Any:
        return await self.arun(RESPONSES, request, ours)

    def run(self, protocol: ChatProtocol, request: Mapping[str, Any], ours: MemlaneFields) -> Any:
        """One call through the server (memory there); the fallback upstream, the exchange kept
        for resync, while the server is unreachable."""
        self.stats.chats += 1
        stream = protocol.streams(request)
        if self.outbox.items():
            self.sync()
        try:
            with same_errors_as_embedded():
                response = protocol.send(self.upstream, self._body(ours, request))
        except openai.APIConnectionError as exc:
            upstream, keep, memories = self._fall_back(exc, ours, protocol, request)
            answer = protocol.send(upstream, request)
            if stream:
                return MemlaneStream(answer, keep, memories, protocol.delta_text)
            keep(protocol.reply_text(answer))
            return protocol.answer(answer, memories)
        return self._answered(protocol, response, stream)

    async def arun(self, protocol: ChatProtocol, request: Mapping[str, Any], ours: MemlaneFields) -> Any:
        self.stats.chats += 1
        stream = protocol.streams(request)
        if self.outbox.items():
            await self.async_sync()
        try:
            with same_errors_as_embedded():
                response = await protocol.asend(self.upstream, self._body(ours, request))
        except openai.APIConnectionError as exc:
            upstream, keep, memories = self._fall_back(exc, ours, protocol, request)

            async def akeep(reply: str | None) -> None:
                keep(reply)

            answer = await protocol.asend(upstream, request)
            if stream:
                return MemlaneAsyncStream(answer, akeep, memories, protocol.delta_text)
            keep(protocol.reply_text(answer))
            return protocol.answer(answer, memories)
        return self._answered(protocol, response, stream)

    def close(self) -> None:
        self.http.close()
        self.upstream.close()
        if self._fallback is not None:
            self._fallback.close()

    async def aclose(self) -> None:
        await self.http.aclose()
        await self.upstream.close()
        if self._fallback is not None:
            await self._fallback.close()
