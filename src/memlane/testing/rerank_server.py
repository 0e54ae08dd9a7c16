"""A scripted reranker server on a loopback port: real HTTP/1.1, no model.

It answers ``POST .../rerank`` in the two shapes reranker servers use: Cohere's (``{"query",
"documents", "top_n"?}`` -> ``{"results": [{"index", "relevance_score"}]}``, as Jina, vLLM,
llama.cpp and Infinity answer) and TEI's (``{"query", "texts"}`` -> ``[{"index", "score"}]``),
best first, cut to ``top_n``. Each document's score comes from a rule the test sets
(``scorer(query, document)``; by default the share of the query's words found in it), and the
test can script the next answers instead: an HTTP error, a delay longer than the caller waits,
a malformed body. Every request is kept (``requests``), so a test reads what memlane sent.

    with ScriptedReranker() as server:
        server.scorer = lambda query, doc: 1.0 if "allergic" in doc else 0.1
        server.queue(RerankReply.error(500))            # the next call fails, then the rule again
        config = {"reranker": {"provider": "http", "config": {"base_url": server.url}}}

Built on asyncio streams in a background thread, keep-alive, ``TCP_NODELAY``, headers and body
in one write (like the scripted upstream).
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

from memlane.testing.loop_thread import LoopThread

Scorer = Callable[[str, str], float]


def shared_words(query: str, document: str) -> float:
    """The default rule: the share of the query's words (3+ letters) that the document has."""
    words = {w for w in re.findall(r"\w{3,}", query.lower())}
    return len(words & set(re.findall(r"\w{3,}", document.lower()))) / len(words) if words else 0.0


@dataclass
class RerankReply:
    """One scripted answer in place of the rule's. Build with the class methods."""

    status: int = 200
    body: bytes | None = None
    delay: float = 0.0
    content_type: str = "application/json"

    @classmethod
    def error(cls, status: int, message: str = "scripted reranker error") -> RerankReply:
        return cls(status=status, body=json.dumps({"error": {"message": message}}).encode())

    @classmethod
    def slow(cls, seconds: float) -> RerankReply:
        """The rule's answer, after ``seconds`` (longer than the caller's timeout: a hang)."""
        return cls(delay=seconds)

    @classmethod
    def raw(cls, body: bytes | str | Any, status: int = 200, content_type: str = "application/json") -> RerankReply:
        """Exactly this body (text, bytes, or an object sent as JSON): malformed answers."""
        data = body.encode() if isinstance(body, str) else body if isinstance(body, bytes) else json.dumps(body).encode()
        return cls(status=status, body=data, content_type=content_type)


@dataclass
class RerankRequest:
    path: str
    headers: dict[str, str]
    body: bytes
    #: the scripted reply it got (None: the rule answered)
    reply: RerankReply | None = field(default=None)

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class ScriptedReranker:
    """Start with ``start()`` or a ``with`` block; ``url`` is the ``base_url`` (``.../v1``)."""

    def __init__(self, *, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self.scorer: Scorer = shared_words
        #: answer raw logits (``4 * score - 2``, outside [0, 1]) as llama.cpp does, instead of probabilities
        self.logits = False
        self.requests: list[RerankRequest] = []
        self._queue: deque[RerankReply] = deque()
        self._lock = threading.Lock()
        self._loop_thread = LoopThread(self._handle, "scripted-reranker")

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def queue(self, *replies: RerankReply) -> None:
        """Answer the next calls with these, in order; then the rule again."""
        with self._lock:
            self._queue.extend(replies)

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()
            self.requests.clear()
        self.scorer = shared_words
        self.logits = False

    def answer(self, body: Any) -> tuple[int, Any]:
        """The rule's answer to a request body: (status, JSON), as a reranker server gives it."""
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            return 422, {"error": {"message": "query must be a string"}}
        tei = "texts" in body
        documents = body.get("texts" if tei else "documents")
        if not isinstance(documents, list) or not all(isinstance(d, str) for d in documents):
            return 422, {"error": {"message": f"{'texts' if tei else 'documents'} must be a list of strings"}}
        scores = [float(self.scorer(body["query"], d)) for d in documents]
        if self.logits:
            scores = [4.0 * s - 2.0 for s in scores]
        order = sorted(range(len(documents)), key=lambda i: -scores[i])
        top_n = body.get("top_n")
        if isinstance(top_n, int) and top_n > 0:
            order = order[:top_n]
        if tei:
            return 200, [{"index": i, "score": scores[i]} for i in order]
        return 200, {"id": "rerank-scripted", "model": body.get("model"),
                     "results": [{"index": i, "relevance_score": scores[i]} for i in order],
                     "usage": {"total_tokens": sum(len(d.split()) for d in documents)}}

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> ScriptedReranker:
        self.port = self._loop_thread.start(self.host, self.port)
        return self

    def stop(self) -> None:
        self._loop_thread.stop()

    def __enter__(self) -> ScriptedReranker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- HTTP ----------------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                method, target, _ = line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while (h := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    k, _, v = h.decode("latin-1").partition(":")
                    headers[k.strip().lower()] = v.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
                request = RerankRequest(target.split("?")[0], headers, body)
                with self._lock:
                    self.requests.append(request)
                    request.reply = self._queue.popleft() if self._queue else None
                await self._respond(method, request, reader, writer)
                if headers.get("connection", "").lower() == "close":
                    break
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            writer.close()

    async def _respond(self, method: str, request: RerankRequest, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> None:
        reply = request.reply
        if reply is not None and reply.delay:
            try:  # wait, or stop at once when the caller hangs up
                if await asyncio.wait_for(reader.read(1), reply.delay) == b"":
                    raise ConnectionResetError("the caller hung up")
            except asyncio.TimeoutError:
                pass
        if reply is not None and reply.body is not None:
            status, data, ctype = reply.status, reply.body, reply.content_type
        elif method != "POST" or not request.path.rstrip("/").endswith("/rerank"):
            status, data, ctype = 404, json.dumps({"error": {"message": f"no route {method} {request.path}"}}).encode(), "application/json"
        else:
            try:
                parsed = request.json
            except ValueError:
                parsed = None
            status, answer = self.answer(parsed)
            data, ctype = json.dumps(answer).encode(), "application/json"
        head = f"HTTP/1.1 {status} {'OK' if status < 400 else 'Error'}\r\ncontent-type: {ctype}\r\ncontent-length: {len(data)}\r\n\r\n"
        writer.write(head.encode() + data)  # one write: no delayed-ACK stall
        await writer.drain()
