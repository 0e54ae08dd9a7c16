"""The server's Prometheus metrics, on ``prometheus-client``: request counts and latency
histograms by route, and per project the recall, upstream and learning latency histograms and
the clients' counters. Histograms give percentiles to Grafana and to the inspector alike.

Each app has its own registry (several apps in one process never mix). Every series carries a
``project`` label, and a scrape by a key that belongs to a project sees only that project's
series: requests no key was checked for (401s, health checks, unknown paths) are counted with
``project=""`` and appear only in the open scrape of a server without keys.

Label values are bounded whatever the client sends: the method is one of HTTP's own or
``other``, the route is the matched route's template or ``unmatched``, the project a key's.
(Raw request methods as labels once grew every scrape from 94 KB to 48 MB.)
"""

from __future__ import annotations

import time
from typing import Any, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from memlane.server.metrics_history import Buckets, buckets_of

#: the methods counted by name; any other is counted as ``other``
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})
#: the project label of requests no key was checked for
NO_PROJECT = ""

#: seconds: from a sub-millisecond recall to a slow model's minute-long answer
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
#: recall's own: most recalls take 1-10 ms, where a p95 moving by a millisecond matters
RECALL_BUCKETS = (0.0005, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075,
                  0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

#: (metric, help, type, key, where): where 1 is the client's stats, 2 its outbox status
PROJECT_SERIES = (
    ("memlane_chats", "Chat calls made.", "counter", "chats", 1),
    ("memlane_recalls", "Chat calls that searched memory.", "counter", "recalls", 1),
    ("memlane_recall_hits", "Memories injected into chat calls.", "counter", "recalled_memories", 1),
    ("memlane_recalls_with_memories", "Recalls that injected at least one memory (the hit rate's numerator).",
     "counter", "recalls_with_memories", 1),
    ("memlane_recall_failures", "Recalls that failed (chat went on without memories).", "counter", "recall_failures", 1),
    ("memlane_reranked", "Searches the configured reranker ordered.", "counter", "reranked", 1),
    ("memlane_rerank_fallbacks", "Searches that kept the fused order because the reranker failed or timed out.",
     "counter", "rerank_fallbacks", 1),
    ("memlane_exchanges_dropped", "Chat exchanges not learnt from because the outbox was full (outbox.max_queued).",
     "counter", "exchanges_dropped", 1),
    ("memlane_outbox_depth", "Exchanges waiting to be learnt from.", "gauge", "pending", 2),
    ("memlane_outbox_dead", "Exchanges set aside as dead (memlane outbox requeue puts them back).", "gauge", "dead", 2),
    ("memlane_learned", "Exchanges learnt from.", "counter", "learned", 2),
    ("memlane_learn_failures", "Failed learning attempts (retried).", "counter", "failed_attempts", 2),
    ("memlane_learning_llm_calls", "Memory-model calls made while learning (extraction, reconcile, repairs); per exchange: "
     "divide by memlane_learned.", "counter", "llm_calls", 2),
)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("memlane_requests", "HTTP requests by method, route, status and project.",
                                ["method", "route", "status", "project"], registry=self.registry)
        self.request_seconds = Histogram("memlane_request_duration_seconds", "Time spent answering, by route and project.",
                                         ["route", "project"], buckets=BUCKETS, registry=self.registry)
        self.project_requests = Counter("memlane_project_requests", "API requests by project (once its key was checked).",
                                        ["project"], registry=self.registry)
        self.upstream_error_count = Counter("memlane_upstream_errors", "Errors from the upstream model server, by project.",
                                            ["project"], registry=self.registry)
        self.busy = Counter("memlane_project_busy", "Memory calls refused with 429 because the project's lane was full "
                            "(server.project_threads, project_slow_threads, project_queue).", ["project", "lane"],
                            registry=self.registry)
        self.stage_seconds = {
            stage: Histogram(f"memlane_{stage}_duration_seconds", text, ["project"],
                             buckets=RECALL_BUCKETS if stage == "recall" else BUCKETS, registry=self.registry)
            for stage, text in (("recall", "A chat's memory search (embedding, search, fusion, fetch)."),
                                ("upstream", "The model server's answer to a chat (for a stream, until it starts)."),
                                ("learn", "Learning from one exchange in the background (extraction, reconcile, writes)."))
        }

    def observe(self, method: str, route: str, status: int, seconds: float, project: str | None = None) -> None:
        """One answered request; ``method`` is bounded here, ``route`` must be a template."""
        project = project or NO_PROJECT
        self.requests.labels(method if method in METHODS else "other", route, str(status), project).inc()
        self.request_seconds.labels(route, project).observe(seconds)

    def project_request(self, project: str) -> None:
        self.project_requests.labels(project).inc()

    def readings(self, rows: Iterable[tuple[str, dict[str, object], dict[str, object]]]
                 ) -> Iterator[tuple[str, dict[str, Any], dict[str, Buckets]]]:
        """For the inspector's history: each project's cumulative counters (its requests, its
        client's stats, its outbox status) and its recall and upstream histograms' buckets."""
        requests = {s.labels["project"]: s.value for f in self.project_requests.collect() for s in f.samples
                    if s.name.endswith("_total")}
        for project, stats, outbox in rows:
            counters = {**{k: v for k, v in stats.items() if isinstance(v, int)},
                        **{k: v for k, v in outbox.items() if isinstance(v, int)}, "requests": int(requests.get(project, 0))}
            yield project, counters, {stage: buckets_of(self.stage_seconds[stage], project) for stage in ("recall", "upstream")}

    def upstream_error(self, project: str | None) -> None:
        self.upstream_error_count.labels(project or NO_PROJECT).inc()

    def project_busy(self, project: str, lane: str) -> None:
        self.busy.labels(project, lane).inc()

    def watch(self, project: str, client: Any) -> None:
        """Feed a project's client's recall, upstream and learning durations into the histograms."""
        def listener(stage: str, seconds: float) -> None:
            histogram = self.stage_seconds.get(stage)
            if histogram is not None:
                histogram.labels(project).observe(seconds)

        client.on_timing(listener)
        self.upstream_error_count.labels(project)  # the project's series exists (at 0) from its first request

    def render(self, projects: Iterable[tuple[str, dict[str, object], dict[str, object]]], *, only: str | None = None) -> str:
        """The exposition text. ``projects``: (name, client stats, outbox status) of each loaded
        project; ``only``: show that project's series alone (a key's scrape)."""
        rows = [row for row in projects if only is None or row[0] == only]
        families = [_only_project(family, only) for family in self.registry.collect()] + list(_project_families(rows))
        return generate_latest(_Families(families)).decode()


class _Families:
    """What ``generate_latest`` reads: an object whose ``collect`` yields metric families."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def _only_project(family: Metric, project: str | None) -> Metric:
    """``project``'s samples alone; a series without a project label is not any key's."""
    if project is not None:
        family.samples = [s for s in family.samples if s.labels.get("project") == project]
    return family


def _project_families(rows: list[tuple[str, dict[str, object], dict[str, object]]]) -> Iterator[Metric]:
    for name, help_text, kind, key, source in PROJECT_SERIES:
        family: Metric = (CounterMetricFamily if kind == "counter" else GaugeMetricFamily)(name, help_text, labels=["project"])
        for project, stats, outbox in rows:
            family.add_metric([project], float((stats if source == 1 else outbox).get(key, 0) or 0))  # type: ignore[attr-defined]
        yield family


class Observe:
    """ASGI middleware counting requests by route and status. Plain ASGI rather than
    ``BaseHTTPMiddleware``: that one re-streams bodies, and ended a stream cleanly when the
    handler broke off mid-way (a truncated answer looked complete)."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            project = (scope.get("state") or {}).get("project")  # set by auth once a key was checked
            self.metrics.observe(scope["method"], route, status, time.perf_counter() - started, project)
