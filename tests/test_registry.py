"""A third-party provider takes the same path as the built-in ones: one ``register`` call, then
its name in the config."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pytest

from memlane import ConfigError, Memory, registry


class LetterEmbedder:
    """A tiny deterministic embedder a plugin might ship: letter counts, normalised."""

    def __init__(self, options: dict[str, Any], **_: Any) -> None:
        self.model_id = "letters-" + hashlib.sha1(repr(sorted(options.items())).encode()).hexdigest()[:6]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), 26), dtype=np.float32)
        for row, text in enumerate(texts):
            for char in text.lower():
                if "a" <= char <= "z":
                    out[row, ord(char) - 97] += 1
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def test_a_registered_embedder_runs_the_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry._registered["embedder"], "letters", LetterEmbedder)
    assert "letters" in registry.providers("embedder")
    config = {"vector_store": {"provider": "sqlite", "config": {"path": str(tmp_path / "m.db")}}, "embedder": {"provider": "letters"}}
    with Memory(config) as memory:
        memory.add(["Likes jazz", "Is allergic to cheese"], user_id="alice", infer=False)
        assert memory.search("cheese allergy", user_id="alice", limit=1)["results"][0]["memory"] == "Is allergic to cheese"


def test_an_unknown_provider_names_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="unknown embedder provider 'nope'.*sentence_transformers"):
        Memory({"embedder": {"provider": "nope"}})


# -- mem0's provider names for OpenAI-compatible servers -------------------------------------

MEM0_LLMS = [  # (provider, its mem0 config, environment, the base_url and key memlane's openai provider gets)
    ("ollama", {"ollama_base_url": "http://gpu-box:11434"}, {}, "http://gpu-box:11434/v1/", "ollama"),
    ("ollama", {}, {}, "http://localhost:11434/v1/", "ollama"),
    ("lmstudio", {"lmstudio_base_url": "http://studio:1234/v1"}, {}, "http://studio:1234/v1/", "lm-studio"),
    ("lmstudio", {}, {}, "http://localhost:1234/v1/", "lm-studio"),
    ("vllm", {"vllm_base_url": "http://vllm:8000/v1"}, {"VLLM_API_KEY": "vk"}, "http://vllm:8000/v1/", "vk"),
    ("vllm", {}, {}, "http://localhost:8000/v1/", "vllm-api-key"),
    ("groq", {}, {"GROQ_API_KEY": "gk"}, "https://api.groq.com/openai/v1/", "gk"),
    ("together", {"api_key": "tk"}, {}, "https://api.together.xyz/v1/", "tk"),
    ("deepseek", {}, {"DEEPSEEK_API_KEY": "dk"}, "https://api.deepseek.com/", "dk"),
    ("deepseek", {"deepseek_base_url": "https://proxy.example/v1"}, {"DEEPSEEK_API_KEY": "dk"}, "https://proxy.example/v1/", "dk"),
    ("litellm", {"base_url": "http://localhost:4000/v1", "api_key": "sk-proxy"}, {}, "http://localhost:4000/v1/", "sk-proxy"),
    ("openai", {"openai_base_url": "http://compat:9000/v1", "api_key": "ok"}, {}, "http://compat:9000/v1/", "ok"),
]


def build(kind: str, provider: str, options: dict[str, Any]) -> Any:
    """What the engine builds for one config section, after the config was loaded."""
    from memlane.config import load_config

    section = getattr(load_config({kind: {"provider": provider, "config": options}}), kind)
    return section, registry.get_factory(kind, section.provider)(section.config)


@pytest.mark.parametrize("provider,options,env,base_url,key", MEM0_LLMS)
def test_a_mem0_llm_provider_name_builds_the_openai_provider_for_that_server(
    provider: str, options: dict[str, Any], env: dict[str, str], base_url: str, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "VLLM_BASE_URL", "VLLM_API_KEY", "GROQ_API_KEY", "DEEPSEEK_API_KEY", "DEEPSEEK_API_BASE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    section, llm = build("llm", provider, {"model": "some-model", **options})
    assert section.provider == "openai" and section.config["base_url"].rstrip("/") + "/" == base_url
    assert str(llm.client.base_url).rstrip("/") == base_url.rstrip("/") and llm.client.api_key == key
    assert llm.options.model == "some-model"


def test_a_local_server_never_gets_the_openai_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-real-openai-key")
    _, llm = build("llm", "ollama", {})
    assert llm.client.api_key == "ollama"


@pytest.mark.parametrize("provider,options,base_url,model", [
    ("ollama", {"ollama_base_url": "http://gpu-box:11434/"}, "http://gpu-box:11434/v1/", "nomic-embed-text"),
    ("lmstudio", {}, "http://localhost:1234/v1/", "nomic-ai/nomic-embed-text-v1.5-GGUF/nomic-embed-text-v1.5.f16.gguf"),
    ("vllm", {"model": "BAAI/bge-m3"}, "http://localhost:8000/v1/", "BAAI/bge-m3"),
    ("together", {"api_key": "tk"}, "https://api.together.xyz/v1/", "intfloat/multilingual-e5-large-instruct"),
    ("huggingface", {"huggingface_base_url": "http://tei:8080/v1"}, "http://tei:8080/v1/", "tei"),
    ("litellm", {"base_url": "http://localhost:4000/v1", "model": "text-embedding-3-small"}, "http://localhost:4000/v1/", "text-embedding-3-small"),
    ("openai", {"openai_base_url": "http://compat:9000/v1", "api_key": "k"}, "http://compat:9000/v1/", "text-embedding-3-small"),
])
def test_a_mem0_embedder_provider_name_builds_the_openai_embedder(provider: str, options: dict[str, Any], base_url: str, model: str,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VLLM_BASE_URL", raising=False)
    section, embedder = build("embedder", provider, options)
    assert section.provider == "openai"
    assert str(embedder._client.base_url) == base_url and embedder.options.model == model


@pytest.mark.parametrize("kind,provider,options,says", [
    ("llm", "azure_openai", {"azure_kwargs": {"azure_endpoint": "https://acme.openai.azure.com/", "azure_deployment": "gpt-4o-mini"}},
     '"provider": "openai", "config": {"base_url": "https://acme.openai.azure.com/openai/v1/"'),
    ("embedder", "azure_openai", {}, '"base_url": "https://<resource>.openai.azure.com/openai/v1/"'),
    ("llm", "litellm", {}, "start a LiteLLM proxy (litellm --model ...) and set llm.config.base_url"),
    ("llm", "groq", {}, "needs an API key: set GROQ_API_KEY or llm.config.api_key"),
    ("llm", "together", {}, "set TOGETHER_API_KEY"),
    ("llm", "deepseek", {}, "set DEEPSEEK_API_KEY"),
    ("embedder", "groq", {}, "groq serves no embeddings"),
    ("embedder", "deepseek", {}, "deepseek serves no embeddings"),
    ("embedder", "vllm", {}, "needs embedder.config.model"),
    ("llm", "anthropic", {}, "base_url: https://api.anthropic.com/v1/"),
])
def test_a_mem0_name_memlane_cannot_serve_says_the_exact_equivalent(kind: str, provider: str, options: dict[str, Any], says: str,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GROQ_API_KEY", "TOGETHER_API_KEY", "DEEPSEEK_API_KEY", "EMBEDDING_AZURE_ENDPOINT", "LLM_AZURE_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError) as caught:
        build(kind, provider, options)
    assert says in str(caught.value)


def test_an_ollama_llm_config_with_ollama_base_url_extracts_facts(tmp_path: Path, upstream: Any) -> None:
    """mem0's own ollama section, pointed at the scripted server the way mem0 points at Ollama
    (its root, without /v1): facts are extracted through it, and chats go there too."""
    from memlane import Mem0
    from memlane.testing import Reply

    root = upstream.url.removesuffix("/v1")
    config = {"vector_store": {"provider": "sqlite", "config": {"path": str(tmp_path / "m.db")}},
              "llm": {"provider": "ollama", "config": {"model": "llama3.1:8b", "ollama_base_url": root, "temperature": 0}}}
    upstream.queue(Reply.json({"facts": ["Is allergic to cheese"]}))
    with Memory(config) as memory:
        result = memory.add("I'm allergic to cheese.", user_id="alice")
    assert [r["memory"] for r in result["results"]] == ["Is allergic to cheese"]
    (extract,) = upstream.chat_requests("extract")
    assert extract.path == "/v1/chat/completions" and extract.json["model"] == "llama3.1:8b"
    assert extract.headers["authorization"] == "Bearer ollama"
    upstream.clear()
    with Mem0(config={**config, "vector_store": {"provider": "sqlite", "config": {"path": str(tmp_path / "c.db")}}}) as client:
        client.chat.completions.create(messages=[{"role": "user", "content": "hi"}], model="llama3.1:8b")
    assert [r.stage for r in upstream.chat_requests()] == ["chat"]
