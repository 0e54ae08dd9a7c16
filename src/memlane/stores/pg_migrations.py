"""Versioned schema of the PostgreSQL store, as the SQLite store's: each step runs once, in
order, in the migration transaction (an advisory lock keeps concurrent starts apart);
``schema_version`` records how far a schema has come. A step gets the store (for its schema
name and index helpers) and the connection.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from memlane.stores.pgvector import PgVectorStore

Step = Callable[["PgVectorStore", Any], None]
MIGRATIONS: list[Step] = []


def migration(fn: Step) -> Step:
    MIGRATIONS.append(fn)
    return fn


def execute_all(conn: Any, script: str) -> None:
    """Run ``;``-separated statements (migration scripts hold no literal semicolons)."""
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


def migrate(store: PgVectorStore, conn: Any) -> int:
    """Bring the store's schema to the latest version inside ``conn``'s transaction."""
    s = store.s
    conn.execute(f"CREATE TABLE IF NOT EXISTS {s}.schema_version (version integer NOT NULL)")
    row = conn.execute(f"SELECT version FROM {s}.schema_version").fetchone()
    version = row["version"] if row else 0
    for index, step in enumerate(MIGRATIONS[version:], start=version + 1):
        step(store, conn)
        conn.execute(f"DELETE FROM {s}.schema_version")
        conn.execute(f"INSERT INTO {s}.schema_version VALUES (%s)", (index,))
    return len(MIGRATIONS)


@migration
def m001_initial(store: PgVectorStore, conn: Any) -> None:
    s = store.s
    execute_all(conn, f"""CREATE TABLE {s}.store_info (key text PRIMARY KEY, value text NOT NULL);
        CREATE TABLE {s}.memories (
            rid bigserial PRIMARY KEY, id text NOT NULL UNIQUE, memory text NOT NULL, hash text NOT NULL,
            scope_key text NOT NULL, user_id text, agent_id text, run_id text,
            metadata jsonb NOT NULL DEFAULT '{{}}', context text, created_at text NOT NULL, updated_at text NOT NULL,
            tsv tsvector NOT NULL);
        CREATE UNIQUE INDEX memories_scope_hash ON {s}.memories (scope_key, hash);
        CREATE INDEX memories_user ON {s}.memories (user_id);
        CREATE INDEX memories_agent ON {s}.memories (agent_id);
        CREATE INDEX memories_run ON {s}.memories (run_id);
        CREATE INDEX memories_tsv ON {s}.memories USING gin (tsv);
        CREATE TABLE {s}.history (
            seq bigserial PRIMARY KEY, id text NOT NULL UNIQUE, memory_id text NOT NULL, event text NOT NULL,
            old_memory text, new_memory text, actor_id text, created_at text NOT NULL);
        CREATE INDEX history_memory ON {s}.history (memory_id, seq);
        CREATE TABLE {s}.outbox (
            seq bigserial PRIMARY KEY, id text NOT NULL UNIQUE, payload jsonb NOT NULL, created_at double precision NOT NULL,
            next_attempt_at double precision NOT NULL, attempts integer NOT NULL DEFAULT 0, last_error text,
            owner text, lease_until double precision);
        CREATE INDEX outbox_due ON {s}.outbox (next_attempt_at, seq)""")


@migration
def m002_vector_sync(store: PgVectorStore, conn: Any) -> None:
    """Memories whose vectors Qdrant (beside this store) has not acknowledged yet."""
    conn.execute(f"CREATE TABLE {store.s}.vector_sync (memory_id text PRIMARY KEY)")


@migration
def m003_scope_beside_vectors(store: PgVectorStore, conn: Any) -> None:
    """Each vector carries its scope, so an unfiltered search reads the vectors table only
    (measured, 1k-memory scopes in a 200k store: the exact path went from 15 to 5.5 ms p50).
    The table is rebuilt rather than updated in place: an UPDATE of every row also inserts
    each into the HNSW index again (12 minutes for 200k rows, against seconds)."""
    s = store.s
    if not store.has_vectors_table(conn):
        return  # created with the columns at the first bind
    conn.execute(f"CREATE TABLE {s}.vectors_m3 AS SELECT v.rid, v.embedding, m.user_id, m.agent_id, m.run_id, m.scope_key"
                 f" FROM {s}.vectors v JOIN {s}.memories m ON m.rid = v.rid")
    conn.execute(f"DROP TABLE {s}.vectors")
    conn.execute(f"ALTER TABLE {s}.vectors_m3 RENAME TO vectors")
    conn.execute(f"ALTER TABLE {s}.vectors ADD PRIMARY KEY (rid), ADD FOREIGN KEY (rid) REFERENCES {s}.memories (rid) ON DELETE CASCADE,"
                 " ALTER COLUMN embedding SET NOT NULL, ALTER COLUMN scope_key SET NOT NULL")
    store.create_vector_indexes(conn)
    conn.execute(f"ANALYZE {s}.vectors")  # a new table has no statistics (see bulk_load)


@migration
def m004_outbox_scopes_and_dead_letters(store: PgVectorStore, conn: Any) -> None:
    """Each outbox item names its scope (one leased item per scope) and may be set aside as dead."""
    s = store.s
    execute_all(conn, f"""ALTER TABLE {s}.outbox ADD COLUMN scope_key text, ADD COLUMN dead_at double precision;
        UPDATE {s}.outbox SET scope_key = coalesce(payload->'scope'->>'user_id', '') || chr(31)
            || coalesce(payload->'scope'->>'agent_id', '') || chr(31) || coalesce(payload->'scope'->>'run_id', '');
        CREATE INDEX outbox_scope_lease ON {s}.outbox (scope_key, lease_until)""")


@migration
def m005_outbox_leases(store: PgVectorStore, conn: Any) -> None:
    """Claims read indexes only (see SQLite's m008)."""
    s = store.s
    execute_all(conn, f"""CREATE INDEX IF NOT EXISTS outbox_leased ON {s}.outbox (lease_until) WHERE lease_until IS NOT NULL;
        CREATE INDEX IF NOT EXISTS outbox_claim ON {s}.outbox (next_attempt_at, seq, scope_key, lease_until) WHERE dead_at IS NULL""")


@migration
def m006_conversation_order(store: PgVectorStore, conn: Any) -> None:
    """Each scope's memories in the order they were written (see SQLite's m009)."""
    conn.execute(f"CREATE INDEX IF NOT EXISTS memories_scope_order ON {store.s}.memories (scope_key, rid)")


@migration
def m007_history_by_time(store: PgVectorStore, conn: Any) -> None:
    """History by date (see SQLite's m010)."""
    conn.execute(f"CREATE INDEX IF NOT EXISTS history_time ON {store.s}.history (created_at)")


@migration
def m008_outbox_bounds_and_learnt(store: PgVectorStore, conn: Any) -> None:
    """Each item's size and optional idempotency key, and the exchanges learnt from (see
    SQLite's m011)."""
    s = store.s
    execute_all(conn, f"""ALTER TABLE {s}.outbox ADD COLUMN bytes bigint NOT NULL DEFAULT 0, ADD COLUMN idempotency_key text;
        UPDATE {s}.outbox SET bytes = octet_length(payload::text);
        CREATE UNIQUE INDEX outbox_idempotency ON {s}.outbox (idempotency_key) WHERE idempotency_key IS NOT NULL;
        CREATE TABLE {s}.outbox_learnt (id text PRIMARY KEY, idempotency_key text, learnt_at double precision NOT NULL);
        CREATE INDEX outbox_learnt_key ON {s}.outbox_learnt (idempotency_key) WHERE idempotency_key IS NOT NULL;
        CREATE INDEX outbox_learnt_time ON {s}.outbox_learnt (learnt_at)""")


@migration
def m009_scope_versions_and_changes(store: PgVectorStore, conn: Any) -> None:
    """A version per user/agent/run id, bumped by every write that touches it, and which
    memories each version changed (see SQLite's m002 and m012): an in-process keyword index
    knows when another instance wrote to its scope and re-reads just those memories."""
    s = store.s
    execute_all(conn, f"""CREATE TABLE IF NOT EXISTS {s}.scope_versions (key text PRIMARY KEY, version bigint NOT NULL, rewrites bigint NOT NULL DEFAULT 0);
        CREATE TABLE IF NOT EXISTS {s}.scope_changes (key text NOT NULL, version bigint NOT NULL, row_key bigint NOT NULL,
            PRIMARY KEY (key, version, row_key))""")


@migration
def m010_expiry_and_immutable(store: PgVectorStore, conn: Any) -> None:
    """A memory's ``expiration_date``, its ``expires_at`` instant and ``immutable``, and why a
    history row was written (see SQLite's m013); the partial indexes keep byte order, as the
    expiry filter compares (``COLLATE "C"``)."""
    s = store.s
    execute_all(conn, f"""ALTER TABLE {s}.memories ADD COLUMN IF NOT EXISTS expiration_date text, ADD COLUMN IF NOT EXISTS expires_at text,
            ADD COLUMN IF NOT EXISTS immutable boolean NOT NULL DEFAULT FALSE;
        ALTER TABLE {s}.history ADD COLUMN IF NOT EXISTS reason text;
        CREATE INDEX IF NOT EXISTS memories_expiry_user ON {s}.memories (user_id, expires_at COLLATE "C") WHERE expires_at IS NOT NULL;
        CREATE INDEX IF NOT EXISTS memories_expiry_agent ON {s}.memories (agent_id, expires_at COLLATE "C") WHERE expires_at IS NOT NULL;
        CREATE INDEX IF NOT EXISTS memories_expiry_run ON {s}.memories (run_id, expires_at COLLATE "C") WHERE expires_at IS NOT NULL""")


@migration
def m011_feedback_and_webhooks(store: PgVectorStore, conn: Any) -> None:
    """Feedback on memories, the project's webhooks and their delivery queue with each attempt
    (see SQLite's m014): deliveries are written in the transaction of the memory change."""
    s = store.s
    execute_all(conn, f"""CREATE TABLE IF NOT EXISTS {s}.feedback (
            seq bigserial PRIMARY KEY, id text NOT NULL UNIQUE, memory_id text NOT NULL, feedback text, feedback_reason text,
            created_at text NOT NULL);
        CREATE INDEX IF NOT EXISTS feedback_memory ON {s}.feedback (memory_id, seq);
        CREATE TABLE IF NOT EXISTS {s}.webhooks (
            id text PRIMARY KEY, name text NOT NULL, url text NOT NULL, secret text NOT NULL, event_types text NOT NULL,
            is_active integer NOT NULL DEFAULT 1, created_at text NOT NULL, updated_at text NOT NULL);
        CREATE TABLE IF NOT EXISTS {s}.webhook_deliveries (
            seq bigserial PRIMARY KEY, id text NOT NULL UNIQUE, webhook_id text NOT NULL, event text NOT NULL, memory_id text,
            body text NOT NULL, status text NOT NULL DEFAULT 'pending', attempts integer NOT NULL DEFAULT 0,
            created_at double precision NOT NULL, next_attempt_at double precision NOT NULL, last_status integer, last_error text,
            delivered_at double precision, owner text, lease_until double precision);
        CREATE INDEX IF NOT EXISTS webhook_deliveries_due ON {s}.webhook_deliveries (next_attempt_at, seq) WHERE status = 'pending';
        CREATE INDEX IF NOT EXISTS webhook_deliveries_leased ON {s}.webhook_deliveries (lease_until) WHERE lease_until IS NOT NULL;
        CREATE INDEX IF NOT EXISTS webhook_deliveries_hook ON {s}.webhook_deliveries (webhook_id, seq);
        CREATE INDEX IF NOT EXISTS webhook_deliveries_done ON {s}.webhook_deliveries (delivered_at) WHERE delivered_at IS NOT NULL;
        CREATE TABLE IF NOT EXISTS {s}.webhook_attempts (
            seq bigserial PRIMARY KEY, delivery_id text NOT NULL, attempt integer NOT NULL, at double precision NOT NULL,
            status_code integer, error text, duration_ms double precision);
        CREATE INDEX IF NOT EXISTS webhook_attempts_delivery ON {s}.webhook_attempts (delivery_id, seq)""")
