from pathlib import Path

import pytest

from memlane import ConfigError, Memory, StoreError
from memlane.config import default_db_path, load_config


def test_defaults_are_the_embedded_stack(isolated_env: Path) -> None:
    cfg = load_config({})
    assert cfg.vector_store.provider == "sqlite"
    assert cfg.embedder is None, "no embedder named: the store's own, or the static default for a new store"
    assert cfg.llm.provider == "openai"
    assert default_db_path() == isolated_env / "memlane.db"


def test_memory_without_config_uses_memlane_home(isolated_env: Path) -> None:
    with Memory() as m:
        assert m.store.path == isolated_env / "memlane.db"
        assert (isolated_env / "memlane.db").exists()


def test_unknown_top_level_key_is_named() -> None:
    with pytest.raises(ConfigError, match="unknown config key 'vector_stor'"):
        load_config({"vector_stor": {}})


def test_unknown_provider_lists_known_ones() -> None:
    with pytest.raises(ConfigError, match="unknown embedder provider 'fastembed'.*sentence_transformers"):
        Memory({"embedder": {"provider": "fastembed"}})


def test_seed_qdrant_config_without_a_server_is_a_clear_error_at_start() -> None:
    with pytest.raises(StoreError, match="cannot reach Qdrant at http://localhost:6333"):
        Memory({"vector_store": {"provider": "qdrant", "config": {"host": "localhost", "port": 6333}}})


def test_unknown_provider_option_is_named_with_its_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown config key 'vector_store.config.pth'"):
        Memory({"vector_store": {"provider": "sqlite", "config": {"pth": str(tmp_path / "x.db")}}})


def test_bad_value_is_named() -> None:
    with pytest.raises(ConfigError, match="retrieval.keyword_weight"):
        load_config({"retrieval": {"keyword_weight": 3}})


@pytest.mark.parametrize(
    "name,text",
    [
        ("c.yaml", "vector_store:\n  provider: sqlite\n  config:\n    path: {path}\n"),
        ("c.json", '{{"vector_store": {{"provider": "sqlite", "config": {{"path": "{path}"}}}}}}'),
        ("c.toml", '[vector_store]\nprovider = "sqlite"\n[vector_store.config]\npath = "{path}"\n'),
    ],
)
def test_config_files(tmp_path: Path, name: str, text: str) -> None:
    db = tmp_path / "from-file.db"
    (tmp_path / name).write_text(text.format(path=db))
    assert load_config(tmp_path / name).vector_store.config == {"path": str(db)}


def test_memlane_config_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "c.yaml").write_text("retrieval:\n  fusion: rrf\n")
    monkeypatch.setenv("MEMLANE_CONFIG", str(tmp_path / "c.yaml"))
    assert load_config(None).retrieval.fusion == "rrf"


def test_unparseable_or_missing_file(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("a: [")
    with pytest.raises(ConfigError, match="cannot parse"):
        load_config(tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_mem0_style_keys_are_accepted(tmp_path: Path) -> None:
    cfg = load_config({"version": "v1.1", "history_db_path": str(tmp_path / "h.db"),
                       "custom_fact_extraction_prompt": "x", "custom_update_memory_prompt": "y"})
    assert cfg.custom_fact_extraction_prompt == "x"


def test_infer_without_any_llm_endpoint_names_the_fix(tmp_path: Path) -> None:
    with Memory({"vector_store": {"provider": "sqlite", "config": {"path": str(tmp_path / "m.db")}}}) as m:
        with pytest.raises(ConfigError, match="OPENAI_BASE_URL"):
            m.add("I like tea", user_id="alice")


def test_mem0_keys_memlane_does_not_use_are_said_never_dropped(caplog: pytest.LogCaptureFixture) -> None:
    """mem0's ``version`` is honoured (v1.1 is the shape memlane answers in; v1.0 is refused with
    a message), ``history_db_path`` is accepted and its non-use logged."""
    assert load_config({"version": "v1.1"}).version == "v1.1"
    with pytest.raises(ConfigError, match="version"):
        load_config({"version": "v1.0"})
    with caplog.at_level("WARNING", logger="memlane.config"):
        load_config({"history_db_path": "/tmp/history.db"})
    assert "history_db_path '/tmp/history.db' is not used" in caplog.text
