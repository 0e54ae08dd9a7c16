"""Hosted mode: ``Memlane(api_key=..., host=...)`` sends the same request body to a memlane
server and returns the same types; ``client.memory`` speaks the REST API with the engine's
method names.

Fallback: when the server cannot be reached and an upstream is known (``fallback=`` or
``OPENAI_BASE_URL`` / ``OPENAI_API_KEY``), the chat goes straight to the model, the exchange is
appended to a local outbox file, and it is sent to the server (``POST /v1/memories``) once the
server answers again: on a later call, or ``client.sync()``. An item leaves the file only after
the server accepted it; the file is rewritten atomically.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any, Mapping, Sequence

import httpx
import openai

from memlane.config import memlane_home
from memlane.errors import (
    ConfigError,
    FilterError,
    MemlaneError,
    NotFoundError,
    ScopeError,
    StoreError,
    ValidationError,
)
from memlane.openai_compat import resolve_endpoint
from memlane.proxy.recall import exchange_payload, reply_text
from memlane.proxy.streams import MemlaneStream
from memlane.proxy.types import MemlaneChatCompletion, RecallMetadata

log = logging.getLogger("memlane.hosted")

DEFAULT_HOST = "http://127.0.0.1:8765"
MEMLANE_FIELDS = ("user_id", "agent_id", "run_id", "metadata", "filters", "limit", "top_k", "include_memories")


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
        return ConfigError(f"the memlane server refused the API key: {message}", param="api_key")
    if response.status_code < 500:
        kind = {"filter": FilterError, "scope": ScopeError}.get(code, ValidationError)
        return kind(message, param=error.get("param"))
    return StoreError(f"memlane server error {response.status_code}: {message}")


class HostedMemory:
    """The engine's methods over the memlane REST API."""

    def __init__(self, http: httpx.Client) -> None:
        self._http = http

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise StoreError(f"cannot reach the memlane server: {exc}") from exc
        if response.status_code >= 400:
            raise _error_from(response)
        return response.json()

    @staticmethod
    def _scope(user_id: str | None, agent_id: str | None, run_id: str | None) -> dict[str, str]:
        return {k: v for k, v in (("user_id", user_id), ("agent_id", agent_id), ("run_id", run_id)) if v is not None}

    def add(self, messages: Any, *, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None,
            metadata: Mapping[str, Any] | None = None, filters: Mapping[str, Any] | None = None, infer: bool = True) -> Any:
        body = {"messages": messages, **self._scope(user_id, agent_id, run_id), "metadata": metadata, "filters": filters, "infer": infer}
        return self._call("POST", "/v1/memories", json={k: v for k, v in body.items() if v is not None})

    def search(self, query: str, *, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None,
               filters: Mapping[str, Any] | None = None, limit: int | None = None, top_k: int | None = None,
               threshold: float | None = None) -> Any:
        body = {"query": query, **self._scope(user_id, agent_id, run_id), "filters": filters, "limit": limit, "top_k": top_k, "threshold": threshold}
        return self._call("POST", "/v1/memories/search", json={k: v for k, v in body.items() if v is not None})

    def get(self, memory_id: str) -> Any:
        return self._call("GET", f"/v1/memories/{memory_id}")

    def get_all(self, *, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None,
                filters: Mapping[str, Any] | None = None, limit: int | None = 100) -> Any:
        params: dict[str, Any] = {**self._scope(user_id, agent_id, run_id)}
        if filters:
            params["filters"] = json.dumps(filters)
        if limit is not None:
            params["limit"] = limit
        return self._call("GET", "/v1/memories", params=params)

    def update(self, memory_id: str, data: str | None = None, metadata: Mapping[str, Any] | None = None) -> Any:
        body = {**({"text": data} if data is not None else {}), **({"metadata": metadata} if metadata is not None else {})}
        return self._call("PUT", f"/v1/memories/{memory_id}", json=body)

    def delete(self, memory_id: str) -> Any:
        return self._call("DELETE", f"/v1/memories/{memory_id}")

    def delete_all(self, *, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None,
                   filters: Mapping[str, Any] | None = None) -> Any:
        params: dict[str, Any] = {**self._scope(user_id, agent_id, run_id)}
        if filters:
            params["filters"] = json.dumps(filters)
        return self._call("DELETE", "/v1/memories", params=params)

    def history(self, memory_id: str) -> Any:
        return self._call("GET", f"/v1/memories/{memory_id}/history")


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


class HostedCompletions:
    def __init__(self, client: Any) -> None:
        self._client = client

    def create(self, *, messages: Sequence[Any], model: str, **kwargs: Any) -> Any:
        return self._client.chat(messages, model, kwargs)


class HostedChat:
    def __init__(self, client: Any) -> None:
        self.completions = HostedCompletions(client)


class HostedBackend:
    """What a hosted ``Memlane`` does; kept apart from the embedded one so neither grows flags."""

    def __init__(self, api_key: str | None, host: str | None, fallback: Mapping[str, Any] | None, timeout: float) -> None:
        self.api_key = api_key or os.environ.get("MEMLANE_API_KEY") or "memlane-no-key"
        self.host = (host or os.environ.get("MEMLANE_HOST") or DEFAULT_HOST).rstrip("/")
        headers = {"Authorization": f"Bearer {self.api_key}"}
        self.http = httpx.Client(base_url=self.host, headers=headers, timeout=timeout)
        self.server = openai.OpenAI(base_url=self.host + "/v1", api_key=self.api_key, timeout=timeout, max_retries=0)
        self.memory = HostedMemory(self.http)
        self._fallback_settings = dict(fallback or {})
        self._fallback: openai.OpenAI | None = None
        digest = hashlib.sha1(f"{self.host}|{self.api_key}".encode()).hexdigest()[:16]
        self.outbox = LocalOutbox(memlane_home() / "hosted-outbox" / f"{digest}.jsonl")

    def fallback_client(self) -> openai.OpenAI | None:
        if self._fallback is None:
            try:
                url, key = resolve_endpoint(self._fallback_settings.get("base_url"), self._fallback_settings.get("api_key"), where="fallback")
            except ConfigError:
                return None
            self._fallback = openai.OpenAI(base_url=url, api_key=key, max_retries=0, timeout=self._fallback_settings.get("timeout", 600))
        return self._fallback

    def sync(self) -> int:
        """Send exchanges kept while the server was down; returns how many were sent."""
        pending = self.outbox.items()
        sent = 0
        for index, item in enumerate(pending):
            try:
                self.memory.add(item["messages"], **item["scope"], metadata=item.get("metadata") or None, infer=True)
            except StoreError:  # still unreachable: keep the rest
                break
            except MemlaneError as exc:  # the server refused this item: keep it, say why, go on with the next
                log.error("memlane server refused a kept exchange (it stays in %s): %s", self.outbox.path, exc)
                continue
            sent += 1
            self.outbox.replace(pending[index + 1 :])
        return sent

    def chat(self, messages: Sequence[Any], model: str, kwargs: dict[str, Any]) -> Any:
        ours = {k: kwargs.pop(k) for k in MEMLANE_FIELDS if k in kwargs}
        if self.outbox.items():
            self.sync()
        try:
            response = self.server.chat.completions.create(messages=messages, model=model, extra_body=ours or None, **kwargs)
        except openai.APIConnectionError:
            upstream = self.fallback_client()
            if upstream is None:
                raise
            log.warning("memlane server %s unreachable; answering through the fallback upstream", self.host)
            return self._fallback_chat(upstream, messages, model, ours, kwargs)
        if kwargs.get("stream"):
            return response
        # the server's metadata.memories is not the SDK's string map: no warning for it
        data = response.to_dict(mode="python", exclude_unset=True, warnings=False)
        meta = data.get("metadata")
        if isinstance(meta, dict) and "memories" in meta:
            data["metadata"] = RecallMetadata.model_validate(meta)
        return MemlaneChatCompletion.model_validate(data)

    def _fallback_chat(self, upstream: openai.OpenAI, messages: Sequence[Any], model: str, ours: dict[str, Any], kwargs: dict[str, Any]) -> Any:
        scope = {k: ours[k] for k in ("user_id", "agent_id", "run_id") if ours.get(k)}
        response = upstream.chat.completions.create(messages=messages, model=model, **kwargs)

        def keep(reply: str | None) -> None:
            payload = exchange_payload(scope, messages, reply, ours.get("metadata"), model)
            if payload is not None:
                self.outbox.append(payload)

        memories = RecallMetadata(memories=[]) if ours.get("include_memories") else None
        if kwargs.get("stream"):
            return MemlaneStream(response, keep, memories)
        keep(reply_text(response))
        data = response.to_dict(mode="python", exclude_unset=True)
        if memories is not None:
            data["metadata"] = memories
        return MemlaneChatCompletion.model_validate(data)

    def close(self) -> None:
        self.http.close()
        self.server.close()
        if self._fallback is not None:
            self._fallback.close()
