"""One registry of providers, keyed by the config's ``provider`` string.

Built-in providers are registered by import path and imported lazily, so that the default
(static) embedder and the OpenAI one never import torch, and a missing optional dependency is an error naming the
package to install rather than an ImportError at start-up. Third parties add a provider with
one ``register(kind, name, factory)`` call.

mem0's names for OpenAI-compatible servers (``ollama``, ``lmstudio``, ``vllm``, ``groq``,
``together``, ``deepseek``, ``litellm`` with a proxy's ``base_url``, ``huggingface`` with a TEI
``huggingface_base_url``) are not providers of their own: ``openai_equivalent`` turns such a
section into the ``openai`` provider with that server's address and key, taking mem0's own key
names (``ollama_base_url``...). The config does it when it is loaded, so chats that go to the
llm section's endpoint go to the same server. A mem0 name memlane cannot serve that way
(``azure_openai``, ``anthropic``...) is an error that spells the equivalent.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping

from memlane.errors import ConfigError

Kind = Literal["vector_store", "embedder", "llm", "reranker"]

_BUILTIN: dict[str, dict[str, str]] = {
    "vector_store": {
        "sqlite": "memlane.stores.sqlite:SQLiteStore",
        "pgvector": "memlane.stores.pgvector:PgVectorStore",
        "qdrant": "memlane.stores.qdrant:QdrantStore",
    },
    "embedder": {
        "model2vec": "memlane.embedders.static:StaticEmbedder",
        "static": "memlane.embedders.static:StaticEmbedder",
        "sentence_transformers": "memlane.embedders.sentence_transformers:SentenceTransformerEmbedder",
        "huggingface": "memlane.embedders.sentence_transformers:SentenceTransformerEmbedder",
        "openai": "memlane.embedders.openai:OpenAIEmbedder",
        "onnx": "memlane.embedders.onnx:OnnxEmbedder",
    },
    "llm": {
        "openai": "memlane.llms.openai:OpenAILLM",
    },
    #: applied to a search's fused top candidates (memlane.engine.reranking); none by default
    "reranker": {
        "http": "memlane.rerankers.http:HTTPReranker",
        "cross_encoder": "memlane.rerankers.cross_encoder:CrossEncoderReranker",
        "llm": "memlane.rerankers.llm:LLMReranker",
    },
}

_registered: dict[str, dict[str, Callable[..., Any]]] = {k: {} for k in _BUILTIN}


def register(kind: Kind, name: str, factory: Callable[..., Any]) -> None:
    """Add or replace a provider; ``factory(options_dict, **context)`` builds it."""
    _registered[kind][name] = factory


def providers(kind: Kind) -> list[str]:
    return sorted(set(_BUILTIN[kind]) | set(_registered[kind]))


@dataclass(frozen=True)
class OpenAICompatible:
    """A mem0 provider that is an OpenAI-compatible server under another name."""

    #: mem0's key for the server's address in this provider's config, and its environment variable
    url_key: str | None = None
    url_env: str | None = None
    default_url: str | None = None
    #: mem0 takes the server's root (``http://localhost:11434``); its OpenAI API is under /v1
    api_under_v1: bool = False
    #: the key's environment variable (mem0's), and whether the server refuses calls without one
    key_env: str | None = None
    key_required: bool = False
    #: sent when there is no key: a local server needs none, and OPENAI_API_KEY is never sent elsewhere
    placeholder_key: str | None = None
    default_model: str | None = None
    #: used only when the config names the address (``huggingface`` without one is sentence_transformers)
    only_with_url: bool = False


_LOCAL_OLLAMA = OpenAICompatible("ollama_base_url", None, "http://localhost:11434", True, placeholder_key="ollama")
_LMSTUDIO = OpenAICompatible("lmstudio_base_url", None, "http://localhost:1234/v1", placeholder_key="lm-studio")
_VLLM = OpenAICompatible("vllm_base_url", "VLLM_BASE_URL", "http://localhost:8000/v1", key_env="VLLM_API_KEY",
                         placeholder_key="vllm-api-key")
_TOGETHER = OpenAICompatible(default_url="https://api.together.xyz/v1", key_env="TOGETHER_API_KEY", key_required=True)
_LITELLM = OpenAICompatible("base_url")  # a LiteLLM proxy: its address is required (see _missing_url)
_OPENAI = OpenAICompatible("openai_base_url")  # mem0's name for base_url; memlane's key rule otherwise

MEM0_COMPATIBLE: dict[str, dict[str, OpenAICompatible]] = {
    "llm": {
        "openai": _OPENAI,
        "ollama": _LOCAL_OLLAMA,
        "lmstudio": _LMSTUDIO,
        "vllm": _VLLM,
        "groq": OpenAICompatible(default_url="https://api.groq.com/openai/v1", key_env="GROQ_API_KEY", key_required=True),
        "together": _TOGETHER,
        "deepseek": OpenAICompatible("deepseek_base_url", "DEEPSEEK_API_BASE", "https://api.deepseek.com",
                                     key_env="DEEPSEEK_API_KEY", key_required=True),
        "litellm": _LITELLM,
    },
    "embedder": {
        "openai": _OPENAI,
        "ollama": OpenAICompatible("ollama_base_url", None, "http://localhost:11434", True, placeholder_key="ollama",
                                   default_model="nomic-embed-text"),
        "lmstudio": OpenAICompatible("lmstudio_base_url", None, "http://localhost:1234/v1", placeholder_key="lm-studio",
                                     default_model="nomic-ai/nomic-embed-text-v1.5-GGUF/nomic-embed-text-v1.5.f16.gguf"),
        "vllm": _VLLM,
        "together": OpenAICompatible(default_url="https://api.together.xyz/v1", key_env="TOGETHER_API_KEY", key_required=True,
                                     default_model="intfloat/multilingual-e5-large-instruct"),
        "litellm": _LITELLM,
        "huggingface": OpenAICompatible("huggingface_base_url", key_env="HUGGINGFACE_API_KEY", placeholder_key="hf",
                                        default_model="tei", only_with_url=True),
    },
}

#: mem0 providers that are not OpenAI-compatible under their own name, and what to write instead.
_NOT_COMPATIBLE = {
    "anthropic": "Anthropic's OpenAI-compatible endpoint: {provider: openai, config: {base_url: https://api.anthropic.com/v1/, "
                 "api_key: <ANTHROPIC_API_KEY>, model: <a Claude model>}} or a LiteLLM proxy "
                 "in front of it",
    "gemini": "Gemini's OpenAI-compatible endpoint: {provider: openai, config: {base_url: "
              "https://generativelanguage.googleapis.com/v1beta/openai/, api_key: <GOOGLE_API_KEY>, model: <a Gemini model>}}",
    "xai": "xAI's OpenAI-compatible API: {provider: openai, config: {base_url: https://api.x.ai/v1, api_key: <XAI_API_KEY>, model: ...}}",
    "aws_bedrock": "a LiteLLM proxy (or Bedrock's OpenAI-compatible endpoint) in front of Bedrock: {provider: openai, config: "
                   "{base_url: <the proxy's /v1 address>, model: ...}}",
}


#: mem0's reranker providers, and the memlane section that does the same (memlane's rerankers speak
#: a protocol, not a vendor: see docs/rerankers.md)
_MEM0_RERANKERS = {
    "cohere": "{provider: http, config: {base_url: https://api.cohere.com/v2, api_key: <COHERE_API_KEY>, model: rerank-v3.5}}",
    "zero_entropy": "{provider: http, config: {base_url: <ZeroEntropy's rerank API>, api_key: ..., model: ...}}",
    "openai_compatible": "{provider: http, config: {base_url: <the server's /v1 address>, model: ...}}",
    "tei": "{provider: http, config: {base_url: <the TEI server>, protocol: tei}}",
    "huggingface": "{provider: cross_encoder, config: {model: <a local CrossEncoder model folder>}}",
    "sentence_transformer": "{provider: cross_encoder, config: {model: <a local CrossEncoder model folder>}}",
    "llm_reranker": "{provider: llm} (the memory LLM scores the candidates)",
}


def _azure_equivalent(kind: Kind, options: Mapping[str, Any]) -> str:
    """The ``openai`` section that reaches the same Azure deployment, through Azure OpenAI's v1
    API (OpenAI-compatible since August 2025); memlane has no Azure-specific client."""
    azure = options.get("azure_kwargs") or {}
    prefix = "LLM" if kind == "llm" else "EMBEDDING"
    endpoint = str(azure.get("azure_endpoint") or os.environ.get(f"{prefix}_AZURE_ENDPOINT") or "https://<resource>.openai.azure.com")
    deployment = azure.get("azure_deployment") or os.environ.get(f"{prefix}_AZURE_DEPLOYMENT") or options.get("model") or "<deployment name>"
    return (f"{kind} provider 'azure_openai' is not built in: memlane has no Azure-specific client. Azure OpenAI's v1 API is "
            f"OpenAI-compatible; use {{\"provider\": \"openai\", \"config\": {{\"base_url\": \"{endpoint.rstrip('/')}/openai/v1/\", "
            f"\"api_key\": <your Azure OpenAI key>, \"model\": \"{deployment}\"}}}} (the model is the deployment's name; "
            "Entra ID tokens and api-version based endpoints need a LiteLLM proxy in front)")


def openai_equivalent(kind: Kind, provider: str, options: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The provider and options memlane builds for a config section: a mem0 name for an
    OpenAI-compatible server becomes ``openai`` with that server's ``base_url`` and key; every
    other name is returned unchanged (a registered plugin keeps its name)."""
    options = dict(options)
    if kind in ("vector_store", "reranker") or provider in _registered[kind]:
        return provider, options
    if provider == "azure_openai":
        raise ConfigError(_azure_equivalent(kind, options), param=f"{kind}.provider")
    if provider in _NOT_COMPATIBLE and provider not in _BUILTIN[kind]:
        raise ConfigError(f"{kind} provider {provider!r} is a mem0 provider memlane does not build in (memlane speaks the "
                          f"OpenAI protocol); use {_NOT_COMPATIBLE[provider]}", param=f"{kind}.provider")
    if kind == "embedder" and provider in ("groq", "deepseek"):
        raise ConfigError(f"embedder provider {provider!r}: {provider} serves no embeddings; leave the embedder section out "
                          "(the static model shipped with memlane) or name a server that does (openai, ollama, ...)",
                          param="embedder.provider")
    spec = MEM0_COMPATIBLE.get(kind, {}).get(provider)
    if spec is None or (spec.only_with_url and not options.get(spec.url_key or "")):
        return provider, options
    where = f"{kind}.config"
    url = (options.pop(spec.url_key, None) if spec.url_key else None) or options.pop("base_url", None) \
        or (os.environ.get(spec.url_env) if spec.url_env else None) or spec.default_url
    if provider == "litellm" and not url:
        raise ConfigError(f"{kind} provider 'litellm': memlane does not run the litellm library in-process; start a LiteLLM "
                          f"proxy (litellm --model ...) and set {where}.base_url to its address, e.g. http://localhost:4000/v1 "
                          f"(the same as provider 'openai' with that base_url)", param=f"{where}.base_url")
    if url and spec.api_under_v1 and not str(url).rstrip("/").endswith("/v1"):
        url = str(url).rstrip("/") + "/v1"
    if url:
        options["base_url"] = url
    key = options.get("api_key") or (os.environ.get(spec.key_env) if spec.key_env else None)
    if not key and spec.key_required:
        raise ConfigError(f"{kind} provider {provider!r} needs an API key: set {spec.key_env} or {where}.api_key",
                          param=f"{where}.api_key")
    if key or spec.placeholder_key:
        options["api_key"] = key or spec.placeholder_key
    if not options.get("model"):
        if spec.default_model:
            options["model"] = spec.default_model
        elif kind == "embedder" and spec is not _OPENAI:
            raise ConfigError(f"embedder provider {provider!r} needs {where}.model: the embedding model that server serves",
                              param=f"{where}.model")
    return "openai", options


def get_factory(kind: Kind, name: str) -> Callable[..., Any]:
    if name in _registered[kind]:
        return _registered[kind][name]
    target = _BUILTIN[kind].get(name)
    if target is None and kind == "reranker" and name in _MEM0_RERANKERS:
        raise ConfigError(f"reranker provider {name!r} is mem0's; memlane's equivalent is {_MEM0_RERANKERS[name]}",
                          param="reranker.provider")
    if target is None:
        mem0 = sorted(set(MEM0_COMPATIBLE.get(kind, {})) - set(providers(kind)))
        also = f" (and mem0's names for OpenAI-compatible servers: {', '.join(mem0)})" if mem0 else ""
        raise ConfigError(
            f"unknown {kind} provider {name!r}; known providers: {', '.join(providers(kind))}{also}",
            param=f"{kind}.provider",
        )
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"{kind} provider {name!r} needs a package that is not installed: {exc.name}. "
            f"Install it with: pip install {exc.name}",
            param=f"{kind}.provider",
        ) from None
    factory: Callable[..., Any] = getattr(module, attr)
    return factory
