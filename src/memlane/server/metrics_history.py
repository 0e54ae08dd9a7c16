"""The recent past of a project's metrics, for the inspector's charts: every ``interval`` seconds
the cumulative counters and histograms are read and the change since the last reading becomes
one point (requests, chats, recalls, recalls that found memories, recall and upstream latency
percentiles, learning). Kept in memory per process, at most ``size`` points per project.

Percentiles come from the histograms' bucket counts, interpolated within a bucket as Prometheus's
``histogram_quantile`` does, so the page and a Grafana panel over ``/metrics`` agree.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

#: a histogram's cumulative buckets: (upper bound, observations at or below it), +Inf last
Buckets = list[tuple[float, float]]

#: the client counters a point keeps the change of (ClientStats / outbox status field names)
COUNTERS = ("chats", "recalls", "recalls_with_memories", "recall_failures")
OUTBOX_COUNTERS = ("learned", "failed_attempts")


@dataclass(frozen=True)
class Point:
    """What happened in one interval ending at ``at`` (Unix seconds)."""

    at: float
    seconds: float
    requests: int
    chats: int
    recalls: int
    recalls_with_memories: int
    recall_failures: int
    learned: int
    learn_failures: int
    outbox_depth: int
    recall_p50_ms: float | None
    recall_p95_ms: float | None
    upstream_p50_ms: float | None
    upstream_p95_ms: float | None

    @property
    def hit_rate(self) -> float | None:
        """The share of recalls that injected at least one memory; None without recalls. (A
        reading taken mid-recall counts it as begun but not yet as a hit: at most 1 here.)"""
        return min(1.0, self.recalls_with_memories / self.recalls) if self.recalls else None


def quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """The ``q`` quantile (0..1) of the observations counted in cumulative ``buckets``; None when
    there are none. Within a bucket observations are taken as evenly spread; above the last
    finite bound the answer is that bound (the histogram knows no more)."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank and count > lower_count:
            if math.isinf(bound):
                return lower_bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return lower_bound


def difference(now: Buckets, before: Buckets | None) -> Buckets:
    """The observations made between two readings of the same histogram."""
    if not before:
        return list(now)
    return [(bound, count - old) for (bound, count), (_, old) in zip(now, before)]


def buckets_of(histogram: Any, project: str) -> Buckets:
    """A ``prometheus_client`` histogram's cumulative buckets for one project's label."""
    found: Buckets = []
    for family in histogram.collect():
        for sample in family.samples:
            if sample.name.endswith("_bucket") and sample.labels.get("project") == project:
                found.append((float(sample.labels["le"]), float(sample.value)))
    return sorted(found)


@dataclass
class _Reading:
    counters: dict[str, int]
    histograms: dict[str, Buckets]
    at: float


class MetricsHistory:
    """``sample()`` turns the change since the previous reading into a point per project;
    ``run(interval)`` samples until cancelled. Thread-safe: pages read while the sampler writes."""

    def __init__(self, read: Callable[[], Iterable[tuple[str, dict[str, Any], dict[str, Buckets]]]], *,
                 size: int = 360, clock: Callable[[], float] = time.time) -> None:
        """``read``: for each loaded project, (name, cumulative counters, cumulative buckets of
        the ``recall`` and ``upstream`` histograms)."""
        self._read = read
        self._clock = clock
        self._points: dict[str, deque[Point]] = {}
        self._last: dict[str, _Reading] = {}
        self._size = size
        self._lock = threading.Lock()

    def sample(self) -> None:
        now = self._clock()
        for project, counters, histograms in self._read():
            reading = _Reading({k: int(v or 0) for k, v in counters.items()}, histograms, now)
            with self._lock:
                before = self._last.get(project)
                self._last[project] = reading
                if before is not None:
                    self._points.setdefault(project, deque(maxlen=self._size)).append(_point(reading, before))

    def points(self, project: str) -> list[Point]:
        """The project's points, oldest first."""
        with self._lock:
            return list(self._points.get(project, ()))

    async def run(self, interval: float) -> None:
        """Sample every ``interval`` seconds until cancelled (the server's lifespan does)."""
        while True:
            await asyncio.to_thread(self.sample)
            await asyncio.sleep(interval)


def _point(now: _Reading, before: _Reading) -> Point:
    def change(key: str) -> int:
        return max(0, now.counters.get(key, 0) - before.counters.get(key, 0))

    def ms(stage: str, q: float) -> float | None:
        value = quantile(q, difference(now.histograms.get(stage, []), before.histograms.get(stage)))
        return None if value is None else round(value * 1000, 3)

    return Point(
        at=now.at, seconds=now.at - before.at, requests=change("requests"),
        chats=change("chats"), recalls=change("recalls"), recalls_with_memories=change("recalls_with_memories"),
        recall_failures=change("recall_failures"), learned=change("learned"), learn_failures=change("failed_attempts"),
        outbox_depth=now.counters.get("pending", 0),
        recall_p50_ms=ms("recall", 0.5), recall_p95_ms=ms("recall", 0.95),
        upstream_p50_ms=ms("upstream", 0.5), upstream_p95_ms=ms("upstream", 0.95),
    )
