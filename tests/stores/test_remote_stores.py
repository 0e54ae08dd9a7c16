"""Connection errors of the networked stores: clear, at start, naming where.

No Qdrant server binary is installable here, so the host/port path is tested against server
doubles (a port nobody listens on; a server that answers garbage) for its connection errors
only; everything else about the Qdrant store runs in qdrant-client's local mode.
"""

from __future__ import annotations

import socket
import threading
from typing import Iterator

import pytest

from memlane import Memory, StoreError
from tests.threads import run_in_threads


@pytest.fixture
def garbage_server() -> Iterator[int]:
    """Accepts connections and answers every request with an HTTP 500 and a non-JSON body."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 7\r\nconnection: close\r\n\r\ngarbage")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(2)
    listener.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_qdrant_nobody_listening(tmp_path) -> None:  # type: ignore[no-untyped-def]
    port = closed_port()
    with pytest.raises(StoreError, match=f"cannot reach Qdrant at http://127.0.0.1:{port}"):
        Memory({"vector_store": {"provider": "qdrant", "config": {"host": "127.0.0.1", "port": port, "records_path": str(tmp_path / "r.db")}}})


def test_qdrant_answering_garbage(tmp_path, garbage_server: int) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(StoreError, match="cannot reach Qdrant"):
        Memory({"vector_store": {"provider": "qdrant", "config": {"url": f"http://127.0.0.1:{garbage_server}", "records_path": str(tmp_path / "r.db")}}})


def test_qdrant_config_errors_are_named(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from memlane import ConfigError

    with pytest.raises(ConfigError, match="vector_store.config.payload_indexes.category"):
        Memory({"vector_store": {"provider": "qdrant", "config": {"path": str(tmp_path / "q"), "payload_indexes": {"category": "nope"}}}})
    with pytest.raises(ConfigError, match="unknown config key 'vector_store.config.records.config.hostname'"):
        Memory({"vector_store": {"provider": "qdrant", "config": {"path": str(tmp_path / "q"), "records": {"provider": "postgres", "config": {"hostname": "x"}}}}})
    with pytest.raises(ConfigError, match="records or records_path"):
        Memory({"vector_store": {"provider": "qdrant", "config": {"path": str(tmp_path / "q"), "records_path": "a.db", "records": {"provider": "sqlite"}}}})


def test_postgres_down_is_a_clear_error() -> None:
    port = closed_port()
    with pytest.raises(StoreError, match=f"PostgreSQL at .*port={port}.* is unreachable while connecting"):
        Memory({"vector_store": {"provider": "pgvector", "config": {"host": "127.0.0.1", "port": port, "user": "u", "dbname": "d", "connect_timeout": 2}}})


def test_postgres_config_errors_are_named() -> None:
    from memlane import ConfigError

    with pytest.raises(ConfigError, match="schema_name"):
        Memory({"vector_store": {"provider": "pgvector", "config": {"dsn": "postgresql://x", "schema_name": "Bad-Name"}}})
    with pytest.raises(ConfigError, match="unknown config key 'vector_store.config.hostname'"):
        Memory({"vector_store": {"provider": "pgvector", "config": {"hostname": "x"}}})


def test_postgres_without_pgvector_is_a_clear_error(pg_uri: str) -> None:
    """A real PostgreSQL that cannot find the extension: a fresh database, and the session's
    ``extension_control_path`` (PostgreSQL 18) pointed at a folder without pgvector in it."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    with psycopg.connect(pg_uri, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS no_pgvector")
        conn.execute("CREATE DATABASE no_pgvector")
    params = conninfo_to_dict(pg_uri)
    dsn = make_conninfo(**{**params, "dbname": "no_pgvector", "options": "-c extension_control_path=/nonexistent"})
    with pytest.raises(StoreError, match="the pgvector extension is not installed in this PostgreSQL server"):
        Memory({"vector_store": {"provider": "pgvector", "config": {"dsn": dsn}}})


def test_instances_starting_together_on_a_fresh_schema(pg_uri: str) -> None:
    """Several instances opening one new schema at once (as replicas do at deploy) all start."""
    from memlane.stores.pgvector import PgVectorStore

    for round_ in range(5):
        schema = f"together_{round_}"
        assert run_in_threads(lambda schema=schema: PgVectorStore({"dsn": pg_uri, "schema_name": schema}).close(), 4, 60) == []


def test_qdrant_in_memory_works_end_to_end() -> None:
    """``path: ":memory:"`` keeps the vectors in Qdrant's memory and the records in an in-memory SQLite."""
    with Memory({"vector_store": {"provider": "qdrant", "config": {"path": ":memory:"}}}) as memory:
        memory.add("Loves Indian food", user_id="alice", infer=False, metadata={"category": "food"})
        memory.add("Is allergic to cheese", user_id="alice", infer=False, metadata={"category": "health"})
        hits = memory.search("what should I cook?", user_id="alice", filters={"category": "health"})["results"]
        assert [h["memory"] for h in hits] == ["Is allergic to cheese"]
        assert memory.store.qdrant.count("memlane", exact=True).count == 2  # type: ignore[attr-defined]
