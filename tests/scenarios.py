"""What tests share as plain code (fixtures stay in conftest files): the backends the suite runs
on, the configs engines and clients are built from, and the seed's restaurant scenario as a
scripted model."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from memlane.testing import Reply, ScriptedRequest, ScriptedUpstream

SPEC_PATH = Path(__file__).resolve().parent / "specs" / "openai-openapi.json"

#: "qdrant-pg": Qdrant for vectors with PostgreSQL for records, history and the outbox
BACKENDS = ["sqlite", "pgvector", "qdrant", "qdrant-pg"]
#: Qdrant local mode is one process per folder (server mode is not installable here)
MULTI_PROCESS_BACKENDS = ["sqlite", "pgvector"]


def engine_config(db_path: Path, upstream: ScriptedUpstream, /, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "vector_store": {"provider": "sqlite", "config": {"path": str(db_path)}},
        "llm": {"provider": "openai", "config": {"base_url": upstream.url, "api_key": "test-key", "model": "scripted-model", "max_retries": 0}},
    }
    config.update(overrides)
    return config


def client_config(db_path: Path, upstream: ScriptedUpstream, /, **overrides: Any) -> dict[str, Any]:
    """A client on a temp SQLite file, chatting with (and learning through) the scripted upstream.
    The memory LLM has no model of its own: it uses each chat's model, as by default."""
    config: dict[str, Any] = {
        "vector_store": {"provider": "sqlite", "config": {"path": str(db_path)}},
        "upstream": {"base_url": upstream.url, "api_key": "upstream-key", "max_retries": 0, "timeout": 10},
        "llm": {"provider": "openai", "config": {"max_retries": 0}},
        "outbox": {"retry_base_seconds": 0.05, "retry_max_seconds": 0.2, "poll_seconds": 0.05, "exit_flush_seconds": 0},
    }
    config.update(overrides)
    return config


def restaurant_llm(req: ScriptedRequest) -> Reply:
    """Extraction learns the seed's facts from any exchange that mentions them."""
    if req.stage == "extract":
        text = req.last_user_text.lower()
        facts = []
        if "allergic to cheese" in text:
            facts.append("Is allergic to cheese")
        if "indian food" in text:
            facts.append("Loves Indian food")
        return Reply.json({"facts": facts})
    if req.stage == "reconcile":
        known = {m["text"] for m in req.reconcile_payload["existing_memories"]}
        new = [f for f in req.reconcile_payload["new_facts"] if f not in known]
        return Reply.json({"memory": [{"id": str(100 + i), "text": f, "event": "ADD"} for i, f in enumerate(new)]})
    return Reply.text("Noted! Here is my suggestion.")


def start_serve(args: list[str], home: Path, port: int, *, env: dict[str, str] | None = None, timeout: float = 90) -> subprocess.Popen:
    """``memlane serve`` as a process (``args`` after ``memlane``), ready (``/readyz``) on return."""
    proc = subprocess.Popen([sys.executable, "-m", "memlane.cli", *args], env={**os.environ, "MEMLANE_HOME": str(home), **(env or {})})
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise AssertionError(f"memlane {' '.join(args)} did not become ready")
        time.sleep(0.1)
