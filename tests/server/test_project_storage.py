"""Where each project's memories live on each backend: never where another project's are."""

from __future__ import annotations

from typing import Any

import pytest

from memlane import ConfigError
from memlane.config import MemlaneConfig
from memlane.server.projects import project_config


def store_of(vector_store: dict[str, Any], project: str) -> dict[str, Any]:
    config = MemlaneConfig.model_validate({"vector_store": vector_store})
    return project_config(config, project).vector_store.model_dump()["config"]


def test_each_project_gets_its_own_schema_collection_or_file() -> None:
    pg = {"provider": "pgvector", "config": {"dsn": "postgresql://db/memlane"}}
    schemas = {store_of(pg, p)["schema_name"] for p in ("Acme", "acme", "a-cme", "a_cme")}
    assert len(schemas) == 4 and all(len(s) <= 63 and s.startswith("memlane_") for s in schemas)
    qdrant = {"provider": "qdrant", "config": {"host": "q", "records": {"provider": "postgres"}}}
    acme = store_of(qdrant, "acme")
    assert acme["collection_name"].startswith("memlane_acme_") and acme["records"]["config"]["schema_name"].startswith("qdrant_memlane_acme_")
    local = store_of({"provider": "qdrant", "config": {"path": "/data/q"}}, "acme")
    assert local["records_path"] == "/data/q/records.acme.db"
    assert store_of({"provider": "sqlite", "config": {"path": "/data/m.db"}}, "acme")["path"] == "/data/m.acme.db"


def test_the_default_project_is_the_configured_store() -> None:
    config = MemlaneConfig.model_validate({"vector_store": {"provider": "pgvector", "config": {"dsn": "postgresql://db/x"}}})
    assert project_config(config, "default") is config


def test_a_store_without_project_support_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    from memlane import registry

    monkeypatch.setitem(registry._registered["vector_store"], "custom-test-store", lambda options, **_: None)
    config = MemlaneConfig.model_validate({"vector_store": {"provider": "custom-test-store"}})
    with pytest.raises(ConfigError, match="not supported on the 'custom-test-store' store"):
        project_config(config, "acme")
