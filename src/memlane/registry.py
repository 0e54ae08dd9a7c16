"""One registry of providers, keyed by the config's ``provider`` string.

Built-in providers are registered by import path and imported lazily, so that the default
(static) embedder and the OpenAI one never import torch, and a missing optional dependency is an error naming the
package to install rather than an ImportError at start-up. Third parties add a provider with
one ``register(kind, name, factory)`` call.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Literal

from memlane.errors import ConfigError

Kind = Literal["vector_store", "embedder", "llm"]

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
    },
    "llm": {
        "openai": "memlane.llms.openai:OpenAILLM",
    },
}

_registered: dict[str, dict[str, Callable[..., Any]]] = {k: {} for k in _BUILTIN}


def register(kind: Kind, name: str, factory: Callable[..., Any]) -> None:
    """Add or replace a provider; ``factory(options_dict, **context)`` builds it."""
    _registered[kind][name] = factory


def providers(kind: Kind) -> list[str]:
    return sorted(set(_BUILTIN[kind]) | set(_registered[kind]))


def get_factory(kind: Kind, name: str) -> Callable[..., Any]:
    if name in _registered[kind]:
        return _registered[kind][name]
    target = _BUILTIN[kind].get(name)
    if target is None:
        raise ConfigError(
            f"unknown {kind} provider {name!r}; known providers: {', '.join(providers(kind))}",
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
