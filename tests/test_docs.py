"""Docs that are checked: the references are what the code says, and the samples run."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from memlane.config import MemlaneConfig, ProviderSection
from memlane.config_reference import render
from memlane.errors import StoreError
from memlane.server.app import create_app
from memlane.server.keys import KeyStore
from memlane.testing import ScriptedUpstream
from memlane.testing.live_server import LiveServer
from tests.scenarios import client_config, restaurant_llm
from tests.threads import wait_until

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_the_configuration_reference_is_current() -> None:
    assert (DOCS / "configuration.md").read_text() == render(), "run: python -m memlane.config_reference > docs/configuration.md"


def test_every_config_key_is_in_the_reference() -> None:
    text = (DOCS / "configuration.md").read_text()
    for key, field in MemlaneConfig.model_fields.items():
        assert f"`{key}`" in text
        section = field.annotation
        if section is ProviderSection:  # provider sections are described by provider, above the tables
            continue
        for sub in getattr(section, "model_fields", {}):
            assert f"`{sub}`" in text, f"{key}.{sub}"


def test_the_cli_reference_is_current() -> None:
    from memlane.cli.reference import render as render_cli

    assert (DOCS / "cli.md").read_text() == render_cli(), "run: python -m memlane.cli.reference > docs/cli.md"


def test_the_readme_links_a_page_per_face() -> None:
    readme = (DOCS.parent / "README.md").read_text()
    for page in ("client.md", "server.md", "cli.md", "configuration.md", "local-models.md", "migrating-from-mem0.md"):
        assert (DOCS / page).exists() and f"docs/{page}" in readme, page


def python_blocks(page: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(), re.S)


def test_mem0s_proxy_samples_run_with_only_the_import_changed(tmp_path: Path, upstream: ScriptedUpstream,
                                                              monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    hosted, self_hosted, conversation = python_blocks("migrating-from-mem0.md")
    for sample in (hosted, self_hosted):
        assert "from memlane import Mem0" in sample and "mem0" not in sample.replace("from memlane import Mem0", "")
    upstream.handler = restaurant_llm
    keys = KeyStore(tmp_path / "keys.db")
    key, _ = keys.create("default")
    with LiveServer(create_app(client_config(tmp_path / "server.db", upstream), keys=keys, drain_seconds=5)) as server:
        monkeypatch.setenv("MEMLANE_HOST", server.url)
        scope: dict[str, object] = {}
        exec(compile(hosted.replace('"ml-..."', repr(key)), "migrating-from-mem0.md (1)", "exec"), scope)
        exec(compile(conversation, "migrating-from-mem0.md (3)", "exec"), scope)
        assert "Noted! Here is my suggestion." in capsys.readouterr().out
        memory = scope["client"].memory  # type: ignore[attr-defined]
        assert wait_until(lambda: "Is allergic to cheese" in {m["memory"] for m in memory.get_all(user_id="alice")["results"]}, 30)
    with pytest.raises(StoreError, match="localhost:6333"):  # no Qdrant server here: one clear error
        exec(compile(self_hosted, "migrating-from-mem0.md (2)", "exec"), {})


def test_the_responses_page_samples_run_as_written(tmp_path: Path, upstream: ScriptedUpstream, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    through_server, drop_in = python_blocks("responses.md")
    upstream.handler = restaurant_llm
    monkeypatch.setenv("OPENAI_BASE_URL", upstream.url)
    monkeypatch.setenv("OPENAI_API_KEY", "upstream-key")
    first, _, then = through_server.partition("# GET /v1/exchanges/{id}?wait=30\n")
    with LiveServer(create_app(client_config(tmp_path / "server.db", upstream), keys=KeyStore(tmp_path / "keys.db"),
                               drain_seconds=5)) as server:
        sample: dict[str, object] = {}
        exec(compile(first.replace("http://127.0.0.1:8765", server.url), "responses.md (1)", "exec"), sample)
        learnt = lambda: len(httpx.get(server.url + "/v1/memories", params={"user_id": "alice"}).json()["results"]) == 2  # noqa: E731
        assert wait_until(learnt, 30)
        exec(compile(then, "responses.md (1, after learning)", "exec"), sample)
    scope: dict[str, object] = {}
    exec(compile(drop_in, "responses.md (2)", "exec"), scope)
    out = capsys.readouterr().out
    assert out.count("Noted! Here is my suggestion.") == 2 and "Is allergic to cheese" in out
    scope["client"].close()  # type: ignore[attr-defined]
