"""The configuration reference, generated from the typed config so it never drifts:
``python -m memlane.config_reference > docs/configuration.md`` (a test checks the file is current).

Each section's docstring and each key's type and default come from ``memlane.config``; the
``#:`` comment above a key in that module is its description.
"""

from __future__ import annotations

import importlib
import inspect
import re
from typing import Any

from pydantic import BaseModel

from memlane import config as config_module
from memlane.config import MemlaneConfig

PROVIDERS = {
    "vector_store": "`sqlite` (default; `path`), `pgvector` (`dsn` or host/port/user/password/dbname, `schema_name`), "
                    "`qdrant` (`host`+`port`, `url`, `path`, `collection_name`, `records`)",
    "embedder": "none given: the store's own MiniLM if it was built with it, else `model2vec` (the shipped static model); "
                "`sentence_transformers` (MiniLM, `memlane[minilm]`), `onnx` (MiniLM as int8 ONNX without torch, `memlane[onnx]`; "
                "`path`, `tokenizer`, `threads`), `openai` (`model`, `base_url`, `api_key`); "
                "mem0's names for OpenAI-compatible servers are read as `openai` with their address: `ollama` "
                "(`ollama_base_url`), `lmstudio` (`lmstudio_base_url`), `vllm` (`vllm_base_url`), `together`, "
                "`huggingface` with `huggingface_base_url` (TEI), `litellm` (a LiteLLM proxy's `base_url`)",
    "llm": "`openai`: any OpenAI-compatible server (`model`, `base_url`, `api_key`, `timeout`, `max_retries`, `max_tokens` (a cap; each call sizes its own), `response_format`: `auto` (a JSON schema, then JSON mode, then plain text when the server refuses; see docs/local-models.md), `json_schema`, `json_object` or `text`); "
           "mem0's names for OpenAI-compatible servers are read as `openai` with their address and key: `ollama` "
           "(`ollama_base_url`, default http://localhost:11434), `lmstudio` (`lmstudio_base_url`), `vllm` (`vllm_base_url`, "
           "`VLLM_BASE_URL`), `groq` (`GROQ_API_KEY`), `together` (`TOGETHER_API_KEY`), `deepseek` (`DEEPSEEK_API_KEY`), "
           "`litellm` (a LiteLLM proxy's `base_url`); `azure_openai` is an error that spells the `openai` section for "
           "Azure's v1 API",
    "reranker": "none by default; `http` (a `/rerank` server: TEI, Infinity, vLLM, llama.cpp, Jina, Cohere), `cross_encoder` "
                "(a local sentence-transformers CrossEncoder folder, `memlane[minilm]`), `llm` (the memory LLM); their keys "
                "are below, and docs/rerankers.md says how each is used",
}

#: the reranker providers whose options get a table of their own
RERANKERS = {"http": "memlane.rerankers.http", "cross_encoder": "memlane.rerankers.cross_encoder", "llm": "memlane.rerankers.llm"}


def _comments(model: type[BaseModel]) -> dict[str, str]:
    """``#:`` comments above each field in the class source."""
    out: dict[str, str] = {}
    pending: list[str] = []
    for line in inspect.getsource(model).splitlines():
        stripped = line.strip()
        if stripped.startswith("#:"):
            pending.append(stripped[2:].strip())
            continue
        found = re.match(r"(\w+)\s*:", stripped)
        if found and pending:
            out[found[1]] = " ".join(pending)
        if not stripped.startswith("#"):
            pending = []
    return out


def _type(annotation: Any) -> str:
    text = re.sub(r"typing\.|<class '([^']+)'>", lambda m: m[1] or "", str(annotation)).replace("NoneType", "None")
    return text.replace("memlane.config.", "").replace("|", "\\|")  # a pipe would split the table cell


def _default(field: Any) -> str:
    if field.default_factory is not None:
        return "(section)" if isinstance(field.default_factory(), BaseModel) else repr(field.default_factory())
    return "(required)" if field.is_required() else repr(field.default)


def _section(name: str, model: type[BaseModel], doc: str | None = None) -> list[str]:
    doc = inspect.getdoc(model) or "" if doc is None else doc
    lines = [f"## `{name}`", "", doc, "", "| key | type | default | what it does |", "|---|---|---|---|"]
    notes: dict[str, str] = {}
    for cls in reversed(model.__mro__):  # a provider's Options inherit keys (and their comments) from a base
        if inspect.isclass(cls) and issubclass(cls, BaseModel) and cls.__module__.startswith("memlane."):
            notes.update(_comments(cls))
    for key, field in model.model_fields.items():
        lines.append(f"| `{key}` | `{_type(field.annotation)}` | `{_default(field)}` | {notes.get(key, '')} |")
    return lines + [""]


def _nested_sections(prefix: str, model: type[BaseModel]) -> list[str]:
    """A section inside a section (``server.webhooks``) gets its own table after its parent's."""
    lines: list[str] = []
    for key, field in model.model_fields.items():
        annotation = field.annotation
        if inspect.isclass(annotation) and issubclass(annotation, BaseModel) and annotation.__module__ == config_module.__name__:
            lines += _section(f"{prefix}.{key}", annotation)
    return lines


def render() -> str:
    lines = ["# Configuration reference", "",
             "Generated from `memlane.config` by `python -m memlane.config_reference` (checked by a test). "
             "A config is mem0's dict shape, or a YAML/JSON/TOML file (`--config`, `MEMLANE_CONFIG`); "
             "unknown keys are errors that name the key.", "",
             "## Providers (`{\"provider\": ..., \"config\": {...}}`)", ""]
    lines += [f"- `{name}`: {text}" for name, text in PROVIDERS.items()] + [""]
    top = MemlaneConfig.model_fields
    lines += ["## Top level", "", "| key | type | default |", "|---|---|---|"]
    for key, field in top.items():
        lines.append(f"| `{key}` | `{_type(field.annotation)}` | `{_default(field)}` |")
    lines.append("")
    for key, field in top.items():
        annotation = field.annotation
        if inspect.isclass(annotation) and issubclass(annotation, BaseModel) and annotation.__module__ == config_module.__name__ \
                and annotation.__name__ != "ProviderSection":
            lines += _section(key, annotation)
            lines += _nested_sections(key, annotation)
    for name, module in RERANKERS.items():
        options = importlib.import_module(module).Options
        lines += _section(f"reranker: {name}", options, f"`reranker: {{provider: {name}, config: {{...}}}}`.")
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(render(), end="")
