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
