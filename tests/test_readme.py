"""The README's examples run as written (with this machine's addresses put in)."""

from __future__ import annotations

import re
from pathlib import Path

from memlane.server.app import create_app
from memlane.server.keys import KeyStore
from memlane.testing import ScriptedUpstream
from memlane.testing.live_server import LiveServer
from tests.scenarios import client_config, restaurant_llm

README = Path(__file__).resolve().parents[1] / "README.md"


def python_block_after(heading: str) -> str:
    text = README.read_text()
    section = text[text.index(heading):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]


def test_the_hosted_example_runs_line_by_line(tmp_path: Path, upstream: ScriptedUpstream, capsys: object) -> None:
    upstream.handler = restaurant_llm
    keys = KeyStore(tmp_path / "keys.db")
    key, _ = keys.create("acme")
    with LiveServer(create_app(client_config(tmp_path / "server.db", upstream), keys=keys, drain_seconds=5)) as server:
        code = (python_block_after("## Hosted mode")
                .replace('"ml-..."', repr(key)).replace('"http://127.0.0.1:8765"', repr(server.url))
                .replace('"http://127.0.0.1:11434/v1"', repr(upstream.url)))
        exec(compile(code, "README.md (hosted mode)", "exec"), {})
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert "Noted! Here is my suggestion." in out and "'results'" in out


def test_the_embedded_example_runs_as_written(isolated_env: Path, upstream: ScriptedUpstream, monkeypatch: object) -> None:
    """The drop-in client section, with OPENAI_BASE_URL pointing at a model server as the
    quickstart says: the preference is remembered."""
    upstream.handler = restaurant_llm
    monkeypatch.setenv("OPENAI_BASE_URL", upstream.url)  # type: ignore[attr-defined]
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")  # type: ignore[attr-defined]
    scope: dict[str, object] = {}
    exec(compile(python_block_after("## The drop-in client"), "README.md (drop-in client)", "exec"), scope)
    remembered = {m["memory"] for m in scope["client"].memory.get_all(user_id="alice")["results"]}  # type: ignore[attr-defined]
    assert remembered == {"Is allergic to cheese", "Loves Indian food"}
    scope["client"].close()  # type: ignore[attr-defined]
