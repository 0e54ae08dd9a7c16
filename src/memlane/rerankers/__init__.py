"""Rerankers a user plugs in (config ``reranker: {provider, config}``), applied to the fused top
candidates of a search (memlane.engine.reranking):

- ``http``: a server speaking the ``/rerank`` protocol (TEI, Infinity, vLLM, llama.cpp, Jina, Cohere)
- ``cross_encoder``: a local sentence-transformers CrossEncoder model folder
- ``llm``: the memory LLM scores the candidates in one JSON call

No reranker model ships with memlane; see docs/rerankers.md. A third party adds one with
``memlane.registry.register("reranker", name, factory)``.
"""

from memlane.rerankers.base import Reranker, RerankerOptions

__all__ = ["Reranker", "RerankerOptions"]
