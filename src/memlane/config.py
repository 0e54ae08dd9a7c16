"""Typed configuration: the mem0-style dict, a YAML/JSON/TOML file, or the environment.

Unknown keys are an error naming the key: a typo in a config silently falling back to a default
is the kind of bug that costs a day. Provider-specific sections are validated by the provider's
own ``Options`` model when the provider is built (see ``memlane.registry``).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Literal, Mapping, TypeVar
from urllib.parse import urlsplit

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from memlane import registry
from memlane.errors import ConfigError

DEFAULT_HOME = "~/.memlane"


def memlane_home() -> Path:
    """Where memlane keeps its files: ``MEMLANE_HOME`` or ``~/.memlane``."""
    return Path(os.environ.get("MEMLANE_HOME") or DEFAULT_HOME).expanduser()


def default_db_path() -> Path:
    return memlane_home() / "memlane.db"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProviderSection(_Strict):
    """``{"provider": name, "config": {...}}``: the shape mem0 uses for every backend."""

    provider: str
    config: dict[str, Any] = Field(default_factory=dict)


class UpstreamConfig(_Strict):
    """Where chat calls go; defaults to ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY``."""

    base_url: str | None = None
    api_key: str | None = None
    #: Where Anthropic Messages calls (``POST /v1/messages``) go: a server that speaks Anthropic's
    #: protocol, without ``/v1`` (the anthropic SDK adds it). Default: ``ANTHROPIC_BASE_URL``,
    #: else https://api.anthropic.com when a key is set.
    anthropic_base_url: str | None = None
    #: The key sent to it. Default: ``ANTHROPIC_API_KEY``; none needed for a local server.
    anthropic_api_key: str | None = None
    #: Seconds to wait on each read from the model server (per chunk when streaming), so a hung
    #: upstream fails in bounded time; generations that pause longer need a larger value.
    timeout: float = Field(default=120.0, gt=0)
    #: Seconds to open a connection to it.
    connect_timeout: float = Field(default=5.0, gt=0)
    #: Retries of a failed upstream call (connection errors, 408/409/429/5xx, as the openai SDK
    #: retries). Default: 2 in the embedded client, which is the caller's only client; 0 in
    #: ``memlane serve``, whose callers' own SDKs retry, so a failure is retried once end to end.
    max_retries: int | None = Field(default=None, ge=0)

    def retries(self, *, serving: bool) -> int:
        return self.max_retries if self.max_retries is not None else (0 if serving else 2)


class RetrievalConfig(_Strict):
    """How hybrid search fuses its two signals (measured on LoCoMo, see bench/README.md)."""

    fusion: Literal["weighted", "rrf"] = "weighted"
    #: Share of the keyword (BM25) signal in the weighted fusion; the rest is cosine.
    keyword_weight: float = Field(default=0.5, ge=0.0, le=1.0)
    #: How many candidates each signal contributes before fusion, at least ``limit``.
    candidates: int = Field(default=100, ge=1, le=10_000)
    rrf_k: int = Field(default=60, ge=1)
    #: Added to the score of a memory said by someone the query names (the memory's
    #: ``metadata.actor_id``, set from a message's ``name``). LoCoMo dev recall@10 0.740 -> 0.775.
    speaker_bonus: float = Field(default=0.2, ge=0.0, le=1.0)
    #: Added to the score of a memory from the period the query names ("in May 2023", "last
    #: summer", counted back from the scope's latest memory).
    time_bonus: float = Field(default=0.1, ge=0.0, le=1.0)
    #: Weight of term alignment (each question word's closest word in the memory, by static word
    #: vectors; 0..1) added to the fused score of the top candidates. LoCoMo dev recall@10
    #: 0.777 -> 0.791 at 0.3 (0.2: 0.794, 0.4: 0.787); 0 turns it off.
    alignment_weight: float = Field(default=0.3, ge=0.0, le=1.0)
    #: Added to the score of a memory spoken in the role the query asks about: the assistant's
    #: replies for "what did you recommend to me?", the user's own turns for "what did I
    #: watch?" (memlane.query.intent; a memory's ``metadata.role``, set by ``add``). MemoryBank
    #: dev R@1 0.565 -> 0.609 alone; LoCoMo unchanged (its turns are all the user's).
    role_bonus: float = Field(default=0.2, ge=0.0, le=1.0)
    #: Added, on top of ``time_bonus``, to the score of a memory from the one day the query
    #: names ("on May 6th", "on 8 May, 2023"): a question naming a day is about that day.
    #: MemoryBank dev R@5 0.826 -> 0.935 alone.
    day_bonus: float = Field(default=0.4, ge=0.0, le=1.0)
    #: Added to the score of a memory that names something (a quoted title, a capitalised name
    #: inside a sentence) the query does not and few candidates do, when the query asks for a
    #: name ("what was its name?", "which books?", "where did I go?"; memlane.engine.naming).
    #: MemoryBank dev R@1 0.609 -> 0.696 with the role and day bonuses; LoCoMo dev recall@10
    #: 0.749 -> 0.754 (bare text).
    name_bonus: float = Field(default=0.2, ge=0.0, le=1.0)
    #: Added to the score of a memory whose stance agrees with the one the query asks about:
    #: an aversion (an allergy, an intolerance, a dislike, "can't eat") for "which foods must I
    #: avoid?" or "what can't I eat?", a liking (love, enjoy, favourite) for "what do I enjoy?"
    #: (memlane.query.stance). Word vectors put "foods" next to "cuisine" and read no stance.
    #: Paraphrase set R@1 0.88 -> 0.92 (0.2: 0.88); MemoryBank dev unchanged; LoCoMo dev
    #: recall@10 0.791 -> 0.790 (name + timestamp), 0.754 -> 0.756 (bare text).
    stance_bonus: float = Field(default=0.1, ge=0.0, le=1.0)
    #: Where the recalled memories' system message goes (memlane.proxy.placement). ``pinned``
    #: (default): each turn's block stays where it was first sent, in the later requests of the
    #: conversation, and only memories not shown yet go before the latest user turn, so each
    #: request repeats the previous one as its exact prefix and providers' prompt caches
    #: (OpenAI, Anthropic, vLLM, llama.cpp) keep the whole history. ``before_last_user``: a
    #: fresh block before the latest user turn each time. ``after_system``: after the caller's
    #: leading system messages, for chat templates that take a system message only at the start.
    memory_placement: Literal["pinned", "before_last_user", "after_system"] = "pinned"
    #: blocks a process keeps for ``pinned`` (least recently used go first; about the size of a
    #: block each, ~1-3 KB); a conversation whose blocks were dropped gets fresh ones
    pinned_blocks: int = Field(default=10_000, ge=0, le=10_000_000)


class OutboxConfig(_Strict):
    """How the background learner works through the outbox of exchanges."""

    retry_base_seconds: float = Field(default=2.0, gt=0)
    retry_max_seconds: float = Field(default=300.0, gt=0)
    #: A claimed item returns to the queue if its worker neither finishes nor fails by then.
    lease_seconds: float = Field(default=120.0, gt=0)
    poll_seconds: float = Field(default=1.0, gt=0)
    #: How long a client waits for the outbox at interpreter exit, at most; what is left stays
    #: in the outbox for the next client on the store (nothing is lost, exit never hangs longer).
    exit_flush_seconds: float = Field(default=10.0, ge=0)
    #: Failed attempts after which an exchange is set aside as dead (kept, listed, re-queueable
    #: with ``memlane outbox requeue``); errors retrying cannot fix set it aside at once.
    max_attempts: int = Field(default=8, ge=1)
    #: Attempts after which an exchange whose answers the memory model keeps getting wrong
    #: (unusable JSON even after the repair round) is set aside as dead, with the answer in its
    #: reason: asking the same model the same question again rarely helps.
    max_unusable_attempts: int = Field(default=2, ge=1)
    #: Learner threads per client. Each takes the oldest exchange of a scope nobody is working
    #: on, so one slow exchange holds up only its own scope.
    workers: int = Field(default=2, ge=1, le=32)
    #: Exchanges of one scope learnt together when several are waiting: one extraction call over
    #: their turns (each exchange kept apart; no more than fits ``inference.max_input_chars``),
    #: one reconcile call, one commit, with the same memories, history and metadata as one at a
    #: time (memlane.engine.learning says how). Only exchanges with the same metadata, timestamp
    #: and memory model go together; a batch that fails is learnt again one exchange at a time.
    #: 1 learns one exchange per claim; so does a ``custom_fact_extraction_prompt`` (it states
    #: its own answer, one exchange's facts).
    batch_size: int = Field(default=8, ge=1, le=64)
    #: When a claim finds fewer than ``batch_size`` exchanges of a scope and the oldest of them
    #: arrived less than this long ago, the learner lets them wait until it did, so that the
    #: exchanges arriving meanwhile go in the same batch: under load, fewer LLM calls per
    #: exchange (a learner that keeps up otherwise learns each exchange almost alone); an
    #: exchange is learnt at most this much later, and not at all later while someone waits for
    #: it (``flush``, the server's ``GET /v1/exchanges/{id}?wait=``), nor when nothing could join
    #: it (a retry; an exchange leaving no room within ``inference.max_input_chars``). One worker
    #: holds a scope's short batch (still leased); the others learn other scopes meanwhile.
    #: Measured in memlane serve under load: 0.65-0.79 -> 0.27 LLM calls per exchange at 0.1
    #: (bench/README.md). 0 learns what is there at once.
    batch_wait_seconds: float = Field(default=0.1, ge=0, le=10)
    #: Each learning step first waits, up to this long, until no recall is running in this
    #: process (memlane.engine.foreground): under load learning lags instead of slowing chats.
    #: 0 never waits.
    yield_seconds: float = Field(default=0.25, ge=0)
    #: Exchanges the outbox may hold (per store; on the server, per project), waiting or dead:
    #: beyond it ``POST /v1/exchanges`` is 429 and a chat's exchange is not learnt from (the
    #: chat itself is answered; the drop is counted and logged), so one project cannot fill the disk.
    max_queued: int = Field(default=10_000, ge=1)
    #: Megabytes of exchanges the outbox may hold, as ``max_queued`` (one exchange bigger than
    #: this alone is 413).
    max_queued_mb: float = Field(default=64.0, gt=0)


class InferenceConfig(_Strict):
    """Bounds on what one exchange sends to fact extraction (a 10 MB message once went whole)."""

    #: Characters of conversation per extraction call; longer exchanges are cut into chunks at
    #: turn (then line) boundaries, one extraction call each.
    max_input_chars: int = Field(default=12_000, ge=500)
    #: Extraction calls one exchange may take; beyond ``max_chunks * max_input_chars`` the oldest
    #: part of the exchange is left out (and logged).
    max_chunks: int = Field(default=4, ge=1, le=64)
    #: Extracted facts longer than this are dropped (counted as ``too_long``): a fact is a
    #: sentence, and a model that runs on is not stating one.
    max_fact_chars: int = Field(default=300, ge=20)
    #: Drop extracted facts that come from the assistant's turns rather than the user's
    #: (suggestions, general knowledge), that are questions, or that copy the prompt's example
    #: (memlane.engine.fact_check). Off keeps every fact the model gives.
    check_facts: bool = True
    #: After reconcile, ask the memory model once more about each fact it added beside existing
    #: memories: is the one memory most like it still true? A "no" updates (or deletes) that
    #: memory (memlane.engine.confirm). For small local models, which often add a correction
    #: beside the memory it corrects; one more call per such fact.
    confirm_changes: bool = False
    #: What to learn and what never to, in your words ("never store health information"), given
    #: to every extraction; the model marks facts they exclude and those are dropped (counted as
    #: ``excluded``). A project's own (``update_project``) and an add's win over it.
    custom_instructions: str | None = None
    #: The categories extraction files each fact under (stored as ``metadata.categories``, in the
    #: same call): names, or ``{"name": "what it holds"}`` objects. None: a project's own, else
    #: mem0's default list when ``assign_categories`` is on, else no categories.
    custom_categories: list[str | dict[str, str]] | None = None
    #: Assign mem0's default categories when no list is given (off: a longer answer costs tokens,
    #: and small models answer it worse; memlane.engine.guidance).
    assign_categories: bool = False
    #: Ask extraction for a few search keys per fact ("Is allergic to cheese": "food allergy",
    #: "cannot eat dairy"), stored as ``metadata.search_keys`` and indexed with the fact's
    #: keyword context (never shown as its text), so a later question in other words finds it.
    #: With small local models leave it off: Qwen2.5-1.5B, asked for keys, learnt no fact from
    #: 14 of 24 sentences it learnt without them (bench/README.md).
    search_keys: bool = False


class WebhooksConfig(_Strict):
    """Delivery of per-project webhooks (memory add / update / delete): each change is queued
    in the project's store in the transaction that makes it, then POSTed by a background
    deliverer in ``memlane serve``, signed, retried with exponential backoff (docs/webhooks.md)."""

    #: Let webhooks target loopback, private (10/8, 172.16/12, 192.168/16, fc00::/7), link-local
    #: (169.254/16, fe80::/10) and other non-public addresses. Off, such a URL is refused with a
    #: 400 at create/update, and every delivery checks the addresses its host resolves to again
    #: (a name re-pointed at an inside address later gets nothing).
    allow_private: bool = False
    #: Seconds a receiver has to answer one delivery; a slower answer counts as a failed attempt.
    timeout_seconds: float = Field(default=10.0, gt=0)
    #: Failed attempts after which a delivery is set aside as dead (kept and listed;
    #: ``memlane webhooks requeue`` sends it again).
    max_attempts: int = Field(default=12, ge=1)
    #: The wait after the first failed attempt; it doubles after each further one (with up to
    #: a fifth of random jitter), up to ``retry_max_seconds``.
    retry_base_seconds: float = Field(default=2.0, gt=0)
    retry_max_seconds: float = Field(default=3600.0, gt=0)
    #: How often the deliverer looks for due deliveries.
    poll_seconds: float = Field(default=1.0, gt=0)
    #: Deliveries sent at once per server process; at most one per webhook at a time, so a slow
    #: receiver holds one of them, never the others' deliveries.
    workers: int = Field(default=4, ge=1, le=64)
    #: Days delivered deliveries (and their attempts) are kept for the inspector and
    #: ``memlane webhooks deliveries``; dead ones stay until re-queued or their webhook is deleted.
    delivered_kept_days: float = Field(default=7.0, ge=0)


class ServerConfig(_Strict):
    """``memlane serve``: where its keys live, how long shutdown drains, and request limits
    (each refused with a clear 4xx in OpenAI's error envelope)."""

    #: the API keys file; default MEMLANE_HOME/keys.db (``memlane keys`` uses the same)
    keys_path: str | None = None
    #: seconds a shutdown waits for the learning outbox to drain (what is left stays queued)
    drain_seconds: float = Field(default=30.0, ge=0)
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    max_messages: int = Field(default=2_000, ge=1)
    #: largest ``limit``/``top_k`` a request may ask for
    max_limit: int = Field(default=1_000, ge=1)
    #: largest metadata object (as JSON) on every way in, chats included
    max_metadata_bytes: int = Field(default=16 * 1024, ge=64)
    #: chats per project whose recall (query, injected memories, scores, time) and learning
    #: outcome the inspector shows (/ui/chats); kept in memory per process; 0 turns it off
    recall_log: int = Field(default=100, ge=0, le=100_000)
    #: seconds between the readings of each project's metrics that the inspector charts
    #: (/ui/metrics); 0 turns the charts off (/metrics is unaffected)
    metrics_interval: float = Field(default=10.0, ge=0)
    #: readings kept per project (in memory, per process): 360 x 10 s is the last hour
    metrics_points: int = Field(default=360, ge=2, le=100_000)
    #: longest text a memory may have, on every way in (the REST and mem0 adds, import,
    #: update, the CLI, the clients): every later chat of its scope sends it upstream
    max_memory_chars: int = Field(default=20_000, ge=100)
    #: nesting of arrays/objects a JSON body may have
    max_json_depth: int = Field(default=64, ge=8, le=512)
    #: host names this server answers to besides loopback names, IP addresses and the name it
    #: is bound to (``"memlane.internal"``; ``".example.com"``: it and its subdomains; ``"*"``:
    #: any). Any other ``Host`` gets 421, so a web page that re-points its own name at this
    #: machine (DNS rebinding) cannot read it
    allowed_hosts: list[str] = Field(default_factory=list)
    #: web origins (``scheme://host[:port]``) whose pages may call the API from a browser; they
    #: get CORS headers. Loopback pages may always write; writes from any other page get 403
    cors_origins: list[str] = Field(default_factory=list)
    #: threads per project for its quick memory calls (reads, single writes); each project has
    #: its own, so one project's load never holds another's
    project_threads: int = Field(default=4, ge=1, le=256)
    #: threads per project for memory calls that wait on the memory LLM or walk a whole scope
    #: (``infer`` adds, import, export, scope deletes), apart from the quick ones
    project_slow_threads: int = Field(default=4, ge=1, le=256)
    #: memory calls per project and kind that may wait for one of those threads; beyond that a
    #: call is refused at once with 429 (``rate_limit_error``) and a ``Retry-After``
    project_queue: int = Field(default=64, ge=0, le=100_000)
    #: per-project webhooks for memory changes: delivery, retries, and which targets are allowed
    webhooks: WebhooksConfig = Field(default_factory=WebhooksConfig)
    #: where ``memlane serve`` learns: ``process`` (learner processes beside the server,
    #: started, watched and stopped by it; chats never share a CPU or the GIL with learning)
    #: or ``thread`` (worker threads inside each server process). The embedded client
    #: (``Memlane()`` without a server) always learns in its own threads
    learner: Literal["process", "thread"] = "process"
    #: learner processes ``memlane serve`` starts (``learner: process``), once, whatever
    #: ``--workers``; each serves every project, sharing the outboxes through their leases
    learner_processes: int = Field(default=1, ge=1, le=32)
    #: seconds between two reads of the keys file by a learner process, to pick up projects
    #: created since it started
    learner_rescan_seconds: float = Field(default=2.0, gt=0)
    #: seconds a stopping server gives its learner processes after SIGTERM before killing them
    learner_stop_seconds: float = Field(default=10.0, ge=0)

    @pydantic.field_validator("cors_origins")
    @classmethod
    def _origins_are_origins(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/") or parts.query:
                raise ValueError(f"{origin!r} is not a web origin: write it as scheme://host[:port], e.g. https://app.example.com")
        return origins

    def keys_file(self) -> Path:
        return Path(self.keys_path).expanduser() if self.keys_path else memlane_home() / "keys.db"


class MemlaneConfig(_Strict):
    vector_store: ProviderSection = Field(
        default_factory=lambda: ProviderSection(provider="sqlite")
    )
    #: None: the store's own embedder if it was built with MiniLM (so an existing store keeps
    #: its vector space), else the static model shipped with memlane (``model2vec``)
    embedder: ProviderSection | None = None
    llm: ProviderSection = Field(default_factory=lambda: ProviderSection(provider="openai"))
    #: Re-orders each search's fused top candidates (``config.top_n`` of them, at least the
    #: search's limit): ``http`` (a ``/v1/rerank`` server: TEI, Infinity, vLLM, llama.cpp, Jina,
    #: Cohere), ``cross_encoder`` (a local sentence-transformers CrossEncoder folder) or ``llm``
    #: (the memory LLM scores them in one call). None: no reranking. A reranker that fails or
    #: times out never fails a search: the fused order is kept, and that is counted and logged.
    #: No reranker model ships with memlane (docs/rerankers.md)
    reranker: ProviderSection | None = None
    upstream: UpstreamConfig = Field(default_factory=UpstreamConfig)
    retrieval: RetrievalConfig = Field(default_factory=RetrievalConfig)
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    inference: InferenceConfig = Field(default_factory=InferenceConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    #: mem0's separate history file. memlane keeps history in the store itself (a change and
    #: its history row commit together), so the path is not used; saying so is logged once.
    history_db_path: str | None = None
    custom_fact_extraction_prompt: str | None = None
    custom_update_memory_prompt: str | None = None
    #: mem0's output format: "v1.1" (``{"results": [...]}``), the only shape memlane answers in.
    version: Literal["v1.1"] | None = None

    @pydantic.model_validator(mode="after")
    def _mem0_provider_names(self) -> MemlaneConfig:
        """mem0's names for OpenAI-compatible servers (``ollama`` with ``ollama_base_url``...)
        become the ``openai`` provider here, so whatever reads the llm section (the memory LLM,
        chats that go to its endpoint) sees one shape; see ``registry.openai_equivalent``."""
        for kind in ("llm", "embedder"):
            section: ProviderSection | None = getattr(self, kind)
            if section is not None:
                provider, options = registry.openai_equivalent(kind, section.provider, section.config)
                if (provider, options) != (section.provider, section.config):
                    setattr(self, kind, ProviderSection(provider=provider, config=options))
        return self

    @pydantic.model_validator(mode="after")
    def _say_what_is_not_used(self) -> MemlaneConfig:
        if self.history_db_path:
            logging.getLogger("memlane.config").warning(
                "history_db_path %r is not used: memlane keeps each memory's history in its store, committed with the change",
                self.history_db_path)
        return self


def describe_errors(error: pydantic.ValidationError, where: str | None = None) -> str:
    """The one formatter of config errors: each names its full key path (``where`` prefixes it)."""
    parts = []
    for item in error.errors():
        key = ".".join([*([where] if where else []), *(str(p) for p in item["loc"])]) or "config"
        parts.append(f"unknown config key {key!r}" if item["type"] == "extra_forbidden" else f"{key}: {item['msg']}")
    return "; ".join(parts)


M = TypeVar("M", bound=BaseModel)


def validate_section(model: type[M], data: Mapping[str, Any], where: str) -> M:
    """Validate one provider's options, naming the full key path on error."""
    try:
        return model.model_validate(dict(data))
    except pydantic.ValidationError as exc:
        raise ConfigError(describe_errors(exc, where), param=where) from None


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    p = Path(path).expanduser()
    if not p.exists():
        raise ConfigError(f"config file not found: {p}")
    text = p.read_text()
    suffix = p.suffix.lower()
    try:
        if suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        elif suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except Exception as exc:  # noqa: BLE001 - any parser's error becomes one clear message
        raise ConfigError(f"cannot parse config file {p}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a mapping at the top level")
    return data


def load_config(
    source: MemlaneConfig | Mapping[str, Any] | str | os.PathLike[str] | None = None,
) -> MemlaneConfig:
    """Build a config from a dict, a file path, or (``None``) ``MEMLANE_CONFIG`` / defaults."""
    if isinstance(source, MemlaneConfig):
        return source
    if source is None:
        env_path = os.environ.get("MEMLANE_CONFIG")
        data: Mapping[str, Any] = read_config_file(env_path) if env_path else {}
    elif isinstance(source, (str, os.PathLike)):
        data = read_config_file(source)
    elif isinstance(source, Mapping):
        data = source
    else:
        raise ConfigError(f"config must be a dict or a file path, not {type(source).__name__}")
    try:
        return MemlaneConfig.model_validate(dict(data))
    except pydantic.ValidationError as exc:
        raise ConfigError(describe_errors(exc)) from None
