"""A scripted model server on a loopback port: real HTTP/1.1, real SSE, no model.

It speaks three chat protocols, as their providers do: OpenAI chat completions
(``POST /v1/chat/completions``), OpenAI Responses (``POST /v1/responses``, plus
``GET /v1/responses/{id}`` and ``POST /v1/responses/input_tokens``; ``responses_wire``) and
Anthropic Messages (``POST /v1/messages`` and ``/v1/messages/count_tokens``; ``messages_wire``),
besides ``/v1/embeddings`` and ``/v1/models``. Tests decide every answer once, whatever the
protocol (``queue`` replies, or a ``handler``): a ``Reply`` is rendered in the protocol of the
request it answers. They read back every request the server received (``requests``), with one
view of each conversation (``ScriptedRequest.turns``), so that the real ``openai`` and
``anthropic`` SDKs are exercised end to end against the protocol rather than against a mock of
themselves. Built on asyncio streams in a background thread: keep-alive, chunked SSE, and
``TCP_NODELAY`` with headers and body in one write, so latencies measured through it are not
inflated by delayed ACKs.

    with ScriptedUpstream() as up:
        up.queue(Reply.json({"facts": ["Is allergic to cheese"]}))
        client = openai.OpenAI(base_url=up.url, api_key="test")
        claude = anthropic.Anthropic(base_url=up.anthropic_url, api_key="test")
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import socket
import struct
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np

from memlane.testing import messages_wire, responses_wire
from memlane.testing.loop_thread import LoopThread
from memlane.testing.sse import Event, Piece, encode, stream_pieces
from memlane.testing.turns import Protocol, Turn, turns_of

#: Which protocol each model route speaks (exact paths: a doubled ``/v1`` is a 404, as upstream).
_PROTOCOL_ROUTES: dict[str, Protocol] = {
    "/v1/responses": "responses", "/v1/responses/input_tokens": "responses",
    "/v1/messages": "messages", "/v1/messages/count_tokens": "messages",
}


#: the line before each exchange of a batched extraction request (memlane.engine.prompts)
_EXCHANGE_HEADER = re.compile(r"exchange \d+:")


@dataclass
class ScriptedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    #: Set when the caller closed the connection while the reply was still being delayed: how a
    #: test sees that a request memlane gave up on was really cancelled, not left hanging.
    abandoned: bool = False
    #: The scripted reply this request got (queued, from the handler, or the default); None when
    #: the double answered it itself (a lookup, a token count, or a request refused as malformed).
    reply: Reply | None = None

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def api_key(self) -> str | None:
        """The key the caller sent: ``x-api-key`` (Anthropic's header, as curl and older anthropic
        SDKs send it), else the bearer token of ``authorization`` (openai; anthropic 2.x)."""
        if "x-api-key" in self.headers:
            return self.headers["x-api-key"]
        scheme, _, token = self.headers.get("authorization", "").partition(" ")
        return token if scheme.lower() == "bearer" and token else None

    @property
    def protocol(self) -> Protocol | None:
        """``chat``, ``responses`` or ``messages``: the chat protocol of this request (None for
        embeddings, models and unknown routes)."""
        path = self.path.rstrip("/")
        if path in _PROTOCOL_ROUTES:
            return _PROTOCOL_ROUTES[path]
        if path.startswith("/v1/responses/"):
            return "responses"
        return "chat" if path.endswith("/chat/completions") else None

    @property
    def is_model_call(self) -> bool:
        """A request that asks the model for an answer (not a token count, embedding or lookup)."""
        path = self.path.rstrip("/")
        return self.method == "POST" and (path in ("/v1/responses", "/v1/messages") or path.endswith("/chat/completions"))

    @property
    def turns(self) -> list[Turn]:
        """The conversation as the model sees it, in any protocol: system prompt (chat's system
        messages, Responses' ``instructions``, Messages' ``system``) first, then each message's
        text, tool traffic as turns of their own kind (see ``memlane.testing.turns``)."""
        protocol = self.protocol
        try:
            body = self.json
        except ValueError:
            return []
        return turns_of(protocol, body) if protocol else []

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Chat completions' ``messages`` as sent; for the other protocols, the plain turns as
        chat messages (``{"role", "content"}``, content the turn's text), system prompt first."""
        if self.protocol not in ("responses", "messages"):
            body = self.json
            return body.get("messages", []) if isinstance(body, dict) else []
        return [{"role": t.role, "content": t.text} for t in self.turns if t.kind == "message"]

    @property
    def last_user_text(self) -> str:
        """The latest user message's text (chat: its content, JSON of the parts if not a string)."""
        for m in reversed(self.messages):
            if m.get("role") == "user":
                c = m.get("content")
                return c if isinstance(c, str) else json.dumps(c)
        return ""

    @property
    def transcript(self) -> list[tuple[str, str]]:
        """An extraction request's conversation as ``(role, text)`` turns: each line of the
        prompt is a role written by memlane and the turn's text as a JSON string (a batch's
        turns of every exchange, in order; ``exchanges`` keeps them apart)."""
        return [turn for exchange in self.exchanges for turn in exchange]

    @property
    def exchanges(self) -> list[list[tuple[str, str]]]:
        """An extraction request's exchanges, oldest first, each as ``transcript`` turns: the
        several of a batch (each after its ``exchange N:`` line), or one for a single exchange."""
        if self.stage != "extract":
            return []
        exchanges: list[list[tuple[str, str]]] = [[]]
        for line in self.last_user_text.splitlines():
            if _EXCHANGE_HEADER.fullmatch(line):
                if exchanges[-1]:
                    exchanges.append([])
                continue
            role, sep, quoted = line.partition(": ")
            if sep and role.isalpha() and quoted.startswith('"'):
                try:
                    exchanges[-1].append((role, json.loads(quoted)))
                except ValueError:  # a chunk cut inside a long turn: its text as it stands
                    exchanges[-1].append((role, quoted.strip('"')))
        return exchanges

    def said_by(self, role: str) -> list[str]:
        """The texts of an extraction request's turns of ``role`` (``user``, ``assistant``)."""
        return [text for who, text in self.transcript if who == role]

    @property
    def stage(self) -> str:
        """Which memlane memory stage this chat request is: extract, reconcile, or chat."""
        text = self.last_user_text
        if text.startswith("Extract the facts from this conversation"):
            return "extract"
        if text.startswith("Reconcile the new facts"):
            return "reconcile"
        if self.messages and any(m.get("role") == "assistant" for m in self.messages[-2:-1]) and "could not be used" in text:
            return "repair"
        return "chat"

    @property
    def reconcile_payload(self) -> dict[str, Any]:
        """``{"existing_memories": [...], "new_facts": [...]}`` of a reconcile request."""
        for m in self.messages:
            c = m.get("content")
            if m.get("role") == "user" and isinstance(c, str) and c.startswith("Reconcile the new facts"):
                return json.loads(c.split("\n\n", 1)[1])
        raise ValueError("not a reconcile request")


@dataclass
class OpenConnection:
    """A connection a caller holds open to the scripted server."""

    #: the last request it carried (None: none yet)
    last: ScriptedRequest | None = None
    #: True while that request is being answered; False: idle, kept alive for the next one
    busy: bool = False


@dataclass
class Reply:
    """One scripted answer. Build with the class methods."""

    status: int = 200
    content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    finish_reason: str = "stop"
    raw_body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    #: Token counts to report: chat's names (prompt_tokens, completion_tokens) or Responses' and
    #: Messages' (input_tokens, output_tokens); each protocol reports them under its own names.
    usage: dict[str, int] | None = None
    #: A fault: a stream that resets the connection (TCP RST) after this many content pieces.
    reset_after: int | None = None
    #: A fault: a stream that reports a model failure after this many content pieces, as each
    #: protocol does (chat: an ``error`` chunk; Responses: ``response.failed``; Messages: an
    #: ``error`` event), then ends cleanly.
    error_after: int | None = None
    #: Set by ``Reply.error``: the error, so that each protocol sends it in its own envelope.
    error_message: str | None = None
    error_type: str | None = None
    error_code: str | None = None

    @classmethod
    def text(cls, content: str, **kw: Any) -> Reply:
        return cls(content=content, **kw)

    @classmethod
    def json(cls, obj: Any, **kw: Any) -> Reply:
        return cls(content=json.dumps(obj), **kw)

    @classmethod
    def tools(cls, calls: list[dict[str, Any]], **kw: Any) -> Reply:
        """``calls``: ``[{"name": ..., "arguments": {...}}]``."""
        tool_calls = [
            {"id": f"call_{uuid.uuid4().hex[:12]}", "type": "function",
             "function": {"name": c["name"], "arguments": json.dumps(c.get("arguments", {}))}}
            for c in calls
        ]
        return cls(content=None, tool_calls=tool_calls, finish_reason="tool_calls", **kw)

    @classmethod
    def error(cls, status: int, message: str = "scripted error", type: str = "server_error", code: str | None = None, **kw: Any) -> Reply:
        """An HTTP error in the request's protocol: OpenAI's envelope for chat and Responses;
        Anthropic's for Messages, with ``type`` if Anthropic has that type, else the status's
        (429 rate_limit_error, 529 overloaded_error, 5xx api_error, ...)."""
        body = {"error": {"message": message, "type": type, "param": None, "code": code}}
        return cls(status=status, raw_body=json.dumps(body).encode(), error_message=message, error_type=type, error_code=code, **kw)

    @classmethod
    def raw(cls, body: bytes | str, status: int = 200, content_type: str = "application/json", **kw: Any) -> Reply:
        data = body.encode() if isinstance(body, str) else body
        return cls(status=status, raw_body=data, headers={"content-type": content_type}, **kw)


def _usage(request: dict[str, Any], completion: str) -> dict[str, int]:
    prompt = sum(len(str(m.get("content") or "").split()) for m in request.get("messages", []))
    out = len(completion.split())
    return {"prompt_tokens": prompt, "completion_tokens": out, "total_tokens": prompt + out}


def hashed_embedding(text: str, dims: int) -> list[float]:
    """Deterministic bag-of-words vector: texts sharing words are similar, as with a real model."""
    v = np.zeros(dims, dtype=np.float32)
    for word in re.findall(r"\w+", text.lower()):
        h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
        v[h % dims] += 1.0 if (h >> 32) & 1 else -1.0
    n = float(np.linalg.norm(v)) or 1.0
    return (v / n).round(6).tolist()


class ScriptedUpstream:
    """Start with ``start()`` or a ``with`` block; ``url`` is the OpenAI ``base_url`` (``.../v1``)."""

    def __init__(self, *, host: str = "127.0.0.1", embedding_dims: int = 64, models: list[str] | None = None) -> None:
        self.host = host
        self.port = 0
        self.embedding_dims = embedding_dims
        self.models = models or ["scripted-model", "gpt-4.1-nano"]
        self.requests: list[ScriptedRequest] = []
        #: Responses created with ``store`` on, by id: what ``previous_response_id`` and
        #: ``GET /v1/responses/{id}`` find, as OpenAI keeps them.
        self.stored_responses: dict[str, dict[str, Any]] = {}
        self.handler: Callable[[ScriptedRequest], Reply | None] | None = None
        self._queue: deque[Reply] = deque()
        #: each open connection: its last request, and whether it is still being answered
        self._connections: dict[int, OpenConnection] = {}
        self._lock = threading.Lock()
        self._loop_thread = LoopThread(self._serve, "scripted-upstream")

    # -- scripting -----------------------------------------------------------------------------

    def queue(self, *replies: Reply) -> None:
        """Answer the next model calls (in any protocol) with these replies, in order."""
        with self._lock:
            self._queue.extend(replies)

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()
            self.requests.clear()
            self.stored_responses.clear()
        self.handler = None

    def chat_requests(self, stage: str | None = None) -> list[ScriptedRequest]:
        """The chat completions requests received (optionally of one memlane ``stage``)."""
        with self._lock:
            reqs = [r for r in self.requests if r.path.endswith("/chat/completions")]
        return [r for r in reqs if stage is None or r.stage == stage]

    def model_requests(self, stage: str | None = None, protocol: Protocol | None = None) -> list[ScriptedRequest]:
        """The model calls received in every protocol, or one ``protocol``, or one ``stage``."""
        with self._lock:
            reqs = [r for r in self.requests if r.is_model_call]
        return [r for r in reqs if (protocol is None or r.protocol == protocol) and (stage is None or r.stage == stage)]

    def open_connections(self) -> list[OpenConnection]:
        """The connections callers hold open now, busy or kept alive idle: how a test sees who
        still holds the model server, and with what."""
        with self._lock:
            return [OpenConnection(c.last, c.busy) for c in self._connections.values()]

    @property
    def url(self) -> str:
        """The OpenAI ``base_url`` (``.../v1``): chat completions, Responses, embeddings, models."""
        return f"http://{self.host}:{self.port}/v1"

    @property
    def anthropic_url(self) -> str:
        """The Anthropic ``base_url`` (no ``/v1``: the anthropic SDK adds it)."""
        return f"http://{self.host}:{self.port}"

    def _next_reply(self, req: ScriptedRequest) -> Reply:
        req.reply = self._pick_reply(req)
        return req.reply

    def _pick_reply(self, req: ScriptedRequest) -> Reply:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
        if self.handler is not None:
            reply = self.handler(req)
            if reply is not None:
                return reply
        return self.default_reply(req)

    @staticmethod
    def default_reply(req: ScriptedRequest) -> Reply:
        """Without a script: memory stages learn nothing; a chat answers with a fixed sentence."""
        if req.stage == "extract":
            return Reply.json({"facts": []})
        if req.stage == "reconcile":
            return Reply.json({"memory": []})
        return Reply.text("This is a scripted answer.")

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> ScriptedUpstream:
        self.port = self._loop_thread.start(self.host, self.port)
        return self

    def stop(self) -> None:
        self._loop_thread.stop()

    def __enter__(self) -> ScriptedUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- HTTP ------------------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection = id(writer)
        with self._lock:
            self._connections[connection] = OpenConnection()
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                method, target, _ = line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while True:
                    h = await reader.readline()
                    if h in (b"\r\n", b"\n", b""):
                        break
                    k, _, v = h.decode("latin-1").partition(":")
                    headers[k.strip().lower()] = v.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
                req = ScriptedRequest(method, target.split("?")[0], headers, body)
                with self._lock:
                    self.requests.append(req)
                    self._connections[connection] = OpenConnection(req, busy=True)
                await self._respond(req, reader, writer)
                with self._lock:
                    self._connections[connection] = OpenConnection(req, busy=False)
                if headers.get("connection", "").lower() == "close":
                    break
        except (ConnectionError, asyncio.IncompleteReadError, ValueError, asyncio.CancelledError):
            pass
        finally:
            with self._lock:
                self._connections.pop(connection, None)
            writer.close()

    @staticmethod
    def _head(status: int, headers: dict[str, str]) -> bytes:
        lines = [f"HTTP/1.1 {status} {'OK' if status < 400 else 'Error'}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    async def _send(self, writer: asyncio.StreamWriter, status: int, body: bytes, content_type: str = "application/json", extra: dict[str, str] | None = None) -> None:
        headers = {"content-type": content_type, "content-length": str(len(body)), **(extra or {})}
        writer.write(self._head(status, headers) + body)  # one write: no delayed-ACK stall
        await writer.drain()

    async def _respond(self, req: ScriptedRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        path = req.path.rstrip("/")
        if req.method == "GET" and path.endswith("/models"):
            data = [{"id": m, "object": "model", "created": 1700000000, "owned_by": "memlane-tests"} for m in self.models]
            await self._send(writer, 200, json.dumps({"object": "list", "data": data}).encode())
        elif req.method == "POST" and path.endswith("/embeddings"):
            body = req.json
            inputs = body.get("input") if isinstance(body, dict) else None
            inputs = inputs if isinstance(inputs, list) else [inputs]
            dims = body.get("dimensions") if isinstance(body, dict) else None
            if not inputs or not all(isinstance(t, str) and t for t in inputs) or not (dims is None or (isinstance(dims, int) and dims > 0)):
                error = {"error": {"message": "'input' must be a non-empty string or array of non-empty strings", "type": "invalid_request_error",
                                   "param": "input", "code": None}}  # as OpenAI answers it
                await self._send(writer, 400, json.dumps(error).encode())
                return
            dims = dims or self.embedding_dims
            data = [{"object": "embedding", "index": i, "embedding": hashed_embedding(t, dims)} for i, t in enumerate(inputs)]
            tokens = sum(len(str(t).split()) for t in inputs)
            out = {"object": "list", "data": data, "model": body.get("model", "scripted-embedding"),
                   "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
            await self._send(writer, 200, json.dumps(out).encode())
        elif req.method == "POST" and path.endswith("/chat/completions"):
            await self._chat(req, reader, writer)
        elif req.protocol == "responses":
            await self._responses(req, reader, writer)
        elif req.protocol == "messages":
            await self._messages(req, reader, writer)
        else:
            err = {"error": {"message": f"no route {req.method} {req.path}", "type": "invalid_request_error", "param": None, "code": None}}
            await self._send(writer, 404, json.dumps(err).encode())

    @staticmethod
    async def _delay(req: ScriptedRequest, reader: asyncio.StreamReader, seconds: float) -> bool:
        """Wait ``seconds``, or until the caller hangs up (then mark the request abandoned)."""
        try:
            eof = await asyncio.wait_for(reader.read(1), seconds)
        except asyncio.TimeoutError:
            return True
        if eof == b"":
            req.abandoned = True
            return False
        return True

    async def _chat(self, req: ScriptedRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        body = req.json or {}
        reply = self._next_reply(req)
        if reply.delay and not await self._delay(req, reader, reply.delay):
            raise ConnectionResetError("the caller hung up")
        if reply.raw_body is not None:
            ctype = reply.headers.get("content-type", "application/json")
            await self._send(writer, reply.status, reply.raw_body, ctype, {k: v for k, v in reply.headers.items() if k != "content-type"})
            return
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        model = body.get("model", "scripted-model")
        n = int(body.get("n") or 1)
        usage = reply.usage or _usage(body, reply.content or "")
        message: dict[str, Any] = {"role": "assistant", "content": reply.content, "refusal": None}
        if reply.tool_calls:
            message["tool_calls"] = reply.tool_calls
        if body.get("stream"):
            await self._stream(writer, body, reply, completion_id, created, model, n, usage)
            return
        choices = [{"index": i, "message": message, "finish_reason": reply.finish_reason, "logprobs": None} for i in range(n)]
        out = {"id": completion_id, "object": "chat.completion", "created": created, "model": model,
               "system_fingerprint": "fp_scripted", "choices": choices, "usage": usage}
        await self._send(writer, 200, json.dumps(out).encode())

    async def _stream(self, writer: asyncio.StreamWriter, body: dict[str, Any], reply: Reply, cid: str,
                      created: int, model: str, n: int, usage: dict[str, int]) -> None:
        writer.write(self._head(200, {"content-type": "text/event-stream", "transfer-encoding": "chunked", "cache-control": "no-cache"}))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def chunk(choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
            out = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                   "system_fingerprint": "fp_scripted", "choices": choices, **extra}
            return out

        async def send(data: str) -> None:
            payload = f"data: {data}\n\n".encode()
            writer.write(f"{len(payload):x}\r\n".encode() + payload + b"\r\n")
            await writer.drain()

        for i in range(n):
            await send(json.dumps(chunk([{"index": i, "delta": {"role": "assistant", "content": "", "refusal": None}, "finish_reason": None, "logprobs": None}])))
        if reply.tool_calls:
            for i in range(n):
                for t_index, call in enumerate(reply.tool_calls):
                    delta = {"tool_calls": [{"index": t_index, "id": call["id"], "type": "function",
                                             "function": {"name": call["function"]["name"], "arguments": call["function"]["arguments"]}}]}
                    await send(json.dumps(chunk([{"index": i, "delta": delta, "finish_reason": None, "logprobs": None}])))
        else:
            pieces = stream_pieces(reply.content or "")
            for number, piece in enumerate(pieces):
                if reply.reset_after is not None and number >= reply.reset_after:
                    self._reset(writer)
                if reply.error_after is not None and number >= reply.error_after:
                    await send(json.dumps({"error": {"message": "The model failed part-way (scripted).", "type": "server_error", "param": None, "code": None}}))
                    writer.write(b"0\r\n\r\n")
                    await writer.drain()
                    return
                for i in range(n):
                    await send(json.dumps(chunk([{"index": i, "delta": {"content": piece}, "finish_reason": None, "logprobs": None}])))
        for i in range(n):
            await send(json.dumps(chunk([{"index": i, "delta": {}, "finish_reason": reply.finish_reason, "logprobs": None}])))
        if include_usage:
            await send(json.dumps(chunk([], usage=usage)))
        await send("[DONE]")
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    @staticmethod
    def _reset(writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # closing with linger 0 sends RST, as a crashed peer does
        raise ConnectionResetError("scripted reset")

    # -- OpenAI Responses and Anthropic Messages ---------------------------------------------------

    async def _scripted(self, req: ScriptedRequest, reader: asyncio.StreamReader) -> Reply:
        """The reply to a model call, after its scripted delay (an abandoned call raises)."""
        reply = self._next_reply(req)
        if reply.delay and not await self._delay(req, reader, reply.delay):
            raise ConnectionResetError("the caller hung up")
        return reply

    async def _send_json(self, writer: asyncio.StreamWriter, status: int, obj: Any, extra: dict[str, str] | None = None) -> None:
        await self._send(writer, status, json.dumps(obj).encode(), extra=extra)

    async def _send_raw(self, writer: asyncio.StreamWriter, reply: Reply, extra: dict[str, str] | None = None) -> None:
        ctype = reply.headers.get("content-type", "application/json")
        await self._send(writer, reply.status, reply.raw_body or b"", ctype, {**(extra or {}), **{k: v for k, v in reply.headers.items() if k != "content-type"}})

    async def _send_events(self, writer: asyncio.StreamWriter, reply: Reply, events: Iterator[Event | Piece],
                           failure: Callable[[], list[Event]], extra: dict[str, str] | None = None) -> None:
        """A named-event SSE stream; ``Piece`` markers are where the reply's faults strike."""
        head = {"content-type": "text/event-stream", "transfer-encoding": "chunked", "cache-control": "no-cache", **(extra or {})}
        writer.write(self._head(200, head))

        async def send(payload: bytes) -> None:
            writer.write(f"{len(payload):x}\r\n".encode() + payload + b"\r\n")
            await writer.drain()

        for item in events:
            if isinstance(item, Piece):
                if reply.reset_after is not None and item.number >= reply.reset_after:
                    self._reset(writer)
                if reply.error_after is not None and item.number >= reply.error_after:
                    for event in failure():
                        await send(encode(event))
                    break
                continue
            await send(encode(item))
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async def _responses(self, req: ScriptedRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        path = req.path.rstrip("/")
        try:
            body = req.json
        except ValueError:
            body = None
        if req.method == "GET" and path.startswith("/v1/responses/") and path.count("/") == 3:
            rid = path.rsplit("/", 1)[1]
            with self._lock:
                found = self.stored_responses.get(rid)
            if found is None:
                await self._send_json(writer, 404, responses_wire.error_body(f"Response with id '{rid}' not found.", param="response_id"))
            else:
                await self._send_json(writer, 200, found)
            return
        if req.method != "POST" or path not in ("/v1/responses", "/v1/responses/input_tokens"):
            await self._send_json(writer, 404, responses_wire.error_body(f"Invalid URL ({req.method} {req.path})"))
            return
        refused = responses_wire.check_request(body)
        if refused is None and isinstance(body, dict) and body.get("previous_response_id") is not None:
            with self._lock:
                known = body["previous_response_id"] in self.stored_responses
            if not known:
                refused = 400, responses_wire.error_body(f"Previous response with id '{body['previous_response_id']}' not found.",
                                                         param="previous_response_id", code="previous_response_not_found")
        if refused is not None:
            await self._send_json(writer, *refused)
            return
        assert isinstance(body, dict)
        if path.endswith("/input_tokens"):
            await self._send_json(writer, 200, responses_wire.count_body(body))
            return
        reply = await self._scripted(req, reader)
        if reply.raw_body is not None:
            await self._send_raw(writer, reply)
            return
        render = responses_wire.ResponseRender(body, reply)
        if body.get("store", True) is not False:
            with self._lock:
                self.stored_responses[render.id] = render.response()
        if body.get("stream"):
            await self._send_events(writer, reply, render.events(), lambda: render.failure("The model failed part-way (scripted)."))
        else:
            await self._send_json(writer, 200, render.response())

    async def _messages(self, req: ScriptedRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        path = req.path.rstrip("/")
        ids = {"request-id": messages_wire.request_id()}
        if req.method != "POST" or path not in ("/v1/messages", "/v1/messages/count_tokens"):
            await self._send_json(writer, 404, messages_wire.error_body(404, f"Not found: {req.method} {req.path}"), ids)
            return
        try:
            body = req.json
        except ValueError:
            body = None
        counting = path.endswith("/count_tokens")
        refused = messages_wire.check_request(body, counting=counting)
        if refused is not None:
            await self._send_json(writer, *refused, extra=ids)
            return
        assert isinstance(body, dict)
        if counting:
            await self._send_json(writer, 200, messages_wire.count_body(body), ids)
            return
        reply = await self._scripted(req, reader)
        if reply.error_message is not None:
            envelope = messages_wire.error_body(reply.status, reply.error_message, reply.error_type)
            await self._send_json(writer, reply.status, envelope, {**ids, **{k: v for k, v in reply.headers.items() if k != "content-type"}})
            return
        if reply.raw_body is not None:
            await self._send_raw(writer, reply, ids)
            return
        render = messages_wire.MessageRender(body, reply)
        if body.get("stream"):
            await self._send_events(writer, reply, render.events(), lambda: render.failure("Overloaded"), ids)
        else:
            await self._send_json(writer, 200, render.message(), ids)


def _first_sentence(said: list[str]) -> list[str]:
    sentence = re.split(r"(?<=[.!?])\s", said[0].strip(), maxsplit=1)[0] if said and said[0].strip() else ""
    return [sentence[:300]] if sentence else []


def first_sentence_facts(req: ScriptedRequest) -> Reply | None:
    """For benchmarks with learning on: each exchange teaches the first sentence of its first
    user turn (real text, so reconcile sees real neighbours); reconcile adds what is new."""
    if req.stage == "extract":
        batch = req.exchanges
        if len(batch) > 1:  # several exchanges learnt together: each one's own facts
            return Reply.json({"exchanges": [{"exchange": n, "facts": _first_sentence([t for r, t in turns if r == "user"])}
                                             for n, turns in enumerate(batch, 1)]})
        return Reply.json({"facts": _first_sentence(req.said_by("user"))})
    if req.stage == "reconcile":
        known = {m["text"] for m in req.reconcile_payload["existing_memories"]}
        new = [f for f in req.reconcile_payload["new_facts"] if f not in known]
        return Reply.json({"memory": [{"id": str(1000 + i), "text": f, "event": "ADD"} for i, f in enumerate(new)]})
    return None


def main() -> None:  # pragma: no cover - a process for benchmarks: python -m memlane.testing.scripted_upstream
    import argparse

    parser = argparse.ArgumentParser(description="A scripted model server (default replies) on loopback: OpenAI chat "
                                                 "completions and Responses at /v1, Anthropic Messages at /v1/messages.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--facts", action="store_true", help="learning on: extraction returns the user's first sentence as a fact")
    args = parser.parse_args()
    server = ScriptedUpstream()
    server.port = args.port
    if args.facts:
        server.handler = first_sentence_facts
    server.start()
    print(server.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":  # pragma: no cover
    main()
