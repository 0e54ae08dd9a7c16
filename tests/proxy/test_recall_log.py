"""The recall log behind the inspector's Recent chats: bounded, off with a switch, and it
records what learning from each logged exchange changed."""

from __future__ import annotations

from pathlib import Path

from memlane import Memlane
from memlane.testing import ScriptedUpstream
from tests.scenarios import client_config, restaurant_llm


def test_the_log_is_bounded_and_records_what_was_learnt(tmp_path: Path, upstream: ScriptedUpstream) -> None:
    upstream.handler = restaurant_llm
    with Memlane(config=client_config(tmp_path / "m.db", upstream) | {"server": {"recall_log": 2}}) as client:
        for text in ("I love Indian food", "hello", "what should I eat?"):
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": text}], user_id="alice")
            assert client.flush(timeout=30)
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], user_id="bob")
        assert client.flush(timeout=30)
        recent = client.recent_recalls()
        assert [r["query"] for r in recent] == ["hi", "what should I eat?"]  # newest first, two kept
        assert [r["query"] for r in client.recent_recalls({"user_id": "alice"})] == ["what should I eat?"]
        assert recent[1]["memories"][0]["memory"] == "Loves Indian food" and recent[1]["learned"] == []
        assert recent[1]["recall_ms"] >= 0 and recent[1]["scope"] == {"user_id": "alice"}


def test_the_log_can_be_switched_off(tmp_path: Path, upstream: ScriptedUpstream) -> None:
    with Memlane(config=client_config(tmp_path / "m.db", upstream) | {"server": {"recall_log": 0}}) as client:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], user_id="alice")
        assert client.recent_recalls() == []
