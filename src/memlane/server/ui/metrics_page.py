"""What the inspector's Metrics page shows: totals since the process started (from the
cumulative counters and histograms /metrics exposes) and charts of the recent readings."""

from __future__ import annotations

from typing import Any, Sequence

from memlane.server.metrics_history import Buckets, Point, quantile
from memlane.server.ui.charts import Series, chart, legend

#: readings listed under the charts
RECENT = 30
BLUE, ORANGE, GREEN, RED, GREY = "#3559c7", "#e07b24", "#2e9d5b", "#c73535", "#8a93a6"


def metrics_context(totals: tuple[str, dict[str, Any], dict[str, Buckets]] | None, points: Sequence[Point]) -> dict[str, Any]:
    return {"totals": _totals(totals), "charts": _charts(points), "readings": len(points),
            "recent": list(reversed(points[-RECENT:]))}


def _totals(reading: tuple[str, dict[str, Any], dict[str, Buckets]] | None) -> list[tuple[str, str]]:
    counters, histograms = (reading[1], reading[2]) if reading else ({}, {})

    def ms(stage: str, q: float) -> str:
        value = quantile(q, histograms.get(stage, []))
        return "–" if value is None else f"{value * 1000:.1f} ms"

    recalls = counters.get("recalls", 0)
    hits = counters.get("recalls_with_memories", 0)
    return [
        ("requests", str(counters.get("requests", 0))),
        ("chats", str(counters.get("chats", 0))),
        ("recall hit rate", f"{100 * hits / recalls:.0f}% of {recalls}" if recalls else "–"),
        ("recall p50 / p95", f"{ms('recall', 0.5)} / {ms('recall', 0.95)}"),
        ("model p50 / p95", f"{ms('upstream', 0.5)} / {ms('upstream', 0.95)}"),
        ("learnt · failed attempts", f"{counters.get('learned', 0)} · {counters.get('failed_attempts', 0)}"),
        ("outbox waiting", str(counters.get("pending", 0))),
    ]


def _per_minute(points: Sequence[Point], field: str) -> list[float | None]:
    return [round(getattr(p, field) * 60 / p.seconds, 2) if p.seconds > 0 else None for p in points]


def _charts(points: Sequence[Point]) -> list[dict[str, Any]]:
    times = [p.at for p in points]
    hit_rate = [None if p.hit_rate is None else round(100 * p.hit_rate, 1) for p in points]
    specs: list[tuple[str, str, list[Series], float | None]] = [
        ("Requests per minute", "", [Series("requests", _per_minute(points, "requests"), GREY, bars=True),
                                     Series("chats", _per_minute(points, "chats"), BLUE)], None),
        ("Recall latency", " ms", [Series("p50", [p.recall_p50_ms for p in points], BLUE),
                                   Series("p95", [p.recall_p95_ms for p in points], ORANGE)], None),
        ("Recall hit rate (recalls that injected memories)", "%", [Series("hit rate", hit_rate, GREEN)], 100.0),
        ("Model latency (upstream)", " ms", [Series("p50", [p.upstream_p50_ms for p in points], BLUE),
                                             Series("p95", [p.upstream_p95_ms for p in points], ORANGE)], None),
        ("Learning per minute", "", [Series("learnt", _per_minute(points, "learned"), GREEN, bars=True),
                                     Series("failed attempts", _per_minute(points, "learn_failures"), RED)], None),
        ("Outbox waiting", "", [Series("exchanges", [float(p.outbox_depth) for p in points], GREY)], None),
    ]
    return [{"title": title, "svg": chart(title, times, series, unit, top), "legend": legend(series, unit)}
            for title, unit, series, top in specs]
