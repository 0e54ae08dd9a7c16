"""Prometheus text exposition of the server's counters (no client library needed)."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable


@dataclass
class Metrics:
    requests: dict[tuple[str, str, int], int] = field(default_factory=lambda: defaultdict(int))
    latency_sum: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    latency_count: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    upstream_errors: int = 0

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests[(method, route, status)] += 1
        self.latency_sum[route] += seconds
        self.latency_count[route] += 1

    def render(self, projects: Iterable[tuple[str, dict[str, object], dict[str, object]]]) -> str:
        """``projects``: (name, client stats, outbox status) for every loaded project."""
        out = [
            "# HELP memlane_requests_total HTTP requests by method, route and status.",
            "# TYPE memlane_requests_total counter",
        ]
        for (method, route, status), n in sorted(self.requests.items()):
            out.append(f'memlane_requests_total{{method="{method}",route="{route}",status="{status}"}} {n}')
        out += ["# HELP memlane_request_duration_seconds Time spent answering, by route.",
                "# TYPE memlane_request_duration_seconds summary"]
        for route in sorted(self.latency_count):
            out.append(f'memlane_request_duration_seconds_sum{{route="{route}"}} {self.latency_sum[route]:.6f}')
            out.append(f'memlane_request_duration_seconds_count{{route="{route}"}} {self.latency_count[route]}')
        out += ["# HELP memlane_upstream_errors_total Errors from the upstream model server.",
                "# TYPE memlane_upstream_errors_total counter", f"memlane_upstream_errors_total {self.upstream_errors}"]
        rows = list(projects)
        for name, help_text, kind, key, source in (
            ("memlane_recalls_total", "Chat calls that searched memory.", "counter", "recalls", 1),
            ("memlane_recall_hits_total", "Memories injected into chat calls.", "counter", "recalled_memories", 1),
            ("memlane_recall_failures_total", "Recalls that failed (chat went on without memories).", "counter", "recall_failures", 1),
            ("memlane_outbox_depth", "Exchanges waiting to be learnt from.", "gauge", "pending", 2),
            ("memlane_outbox_dead", "Exchanges set aside as dead (memlane outbox requeue puts them back).", "gauge", "dead", 2),
            ("memlane_learned_total", "Exchanges learnt from.", "counter", "learned", 2),
            ("memlane_learn_failures_total", "Failed learning attempts (retried).", "counter", "failed_attempts", 2),
        ):
            out += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
            for project, stats, outbox in rows:
                value = (stats if source == 1 else outbox).get(key, 0)
                out.append(f'{name}{{project="{project}"}} {value}')
        return "\n".join(out) + "\n"


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
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.observe(scope["method"], route, status, time.perf_counter() - started)
