"""The inspector's metrics over time: percentiles from histogram buckets, points as changes
between readings of the server's real counters, and the charts drawn from them."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree

import pytest

from memlane.server.metrics import Metrics
from memlane.server.metrics_history import MetricsHistory, buckets_of, quantile
from memlane.server.ui.charts import Series, chart, nice_ceiling


def test_quantiles_interpolate_within_a_bucket_as_prometheus_does() -> None:
    metrics = Metrics()
    for seconds in [0.002] * 50 + [0.02] * 45 + [0.2] * 5:  # 50 fast, 45 slower, 5 slow answers
        metrics.stage_seconds["upstream"].labels("acme").observe(seconds)
    buckets = buckets_of(metrics.stage_seconds["upstream"], "acme")
    assert buckets[-1] == (float("inf"), 100.0)
    # p50: the 50th observation is the last of the (0.001, 0.0025] bucket
    assert quantile(0.5, buckets) == pytest.approx(0.0025)
    # p95: the 95th is the last of (0.01, 0.025]; p99 lies in (0.1, 0.25], 4/5 of the way
    assert quantile(0.95, buckets) == pytest.approx(0.025)
    assert quantile(0.99, buckets) == pytest.approx(0.1 + 0.15 * 4 / 5)
    assert quantile(0.5, buckets_of(metrics.stage_seconds["upstream"], "nobody")) is None
    # recall has finer buckets where recalls fall: 1.5-2 ms rather than 1-2.5 ms
    for seconds in (0.0018, 0.0019):
        metrics.stage_seconds["recall"].labels("acme").observe(seconds)
    assert quantile(0.5, buckets_of(metrics.stage_seconds["recall"], "acme")) == pytest.approx(0.00175)


def test_beyond_the_last_bucket_the_answer_is_its_bound() -> None:
    assert quantile(0.99, [(1.0, 0.0), (120.0, 1.0), (float("inf"), 10.0)]) == 120.0


def test_each_point_is_what_changed_since_the_previous_reading() -> None:
    metrics = Metrics()
    stats = {"chats": 0, "recalls": 0, "recalls_with_memories": 0, "recall_failures": 0}
    outbox = {"learned": 0, "failed_attempts": 0, "pending": 0}
    clock = iter(range(1000, 2000, 10))
    history = MetricsHistory(lambda: metrics.readings([("acme", dict(stats), dict(outbox))]), size=3,
                             clock=lambda: float(next(clock)))
    history.sample()
    assert history.points("acme") == []  # one reading is a baseline, not a point

    for _ in range(4):
        metrics.project_request("acme")
        metrics.stage_seconds["recall"].labels("acme").observe(0.004)
    stats.update(chats=4, recalls=4, recalls_with_memories=3)
    outbox.update(learned=2, pending=2)
    history.sample()
    first = history.points("acme")[0]
    assert (first.at, first.seconds, first.requests, first.chats, first.recalls) == (1010.0, 10.0, 4, 4, 4)
    assert first.hit_rate == 0.75 and first.learned == 2 and first.outbox_depth == 2
    assert 2.5 <= (first.recall_p50_ms or 0) <= 5 and first.upstream_p50_ms is None

    metrics.stage_seconds["recall"].labels("acme").observe(0.2)  # one slow recall in the next interval only
    stats.update(chats=5, recalls=5, recalls_with_memories=3)
    history.sample()
    second = history.points("acme")[1]
    assert (second.requests, second.chats, second.recalls, second.hit_rate) == (0, 1, 1, 0.0)
    assert 100 <= (second.recall_p50_ms or 0) <= 250  # the earlier fast ones are not in this interval

    for _ in range(3):
        history.sample()
    assert len(history.points("acme")) == 3 and history.points("acme")[-1].at == 1050.0  # bounded, oldest dropped


def test_a_chart_is_well_formed_svg_with_gaps_and_its_numbers_in_its_label() -> None:
    svg = str(chart("Recall latency", [0.0, 10.0, 20.0, 30.0], [Series("p95", [4.0, None, 6.5, 7.0], "#000")], " ms"))
    root = ElementTree.fromstring(svg)
    assert root.tag == "svg" and "Latest: p95 7 ms" in root.attrib["aria-label"]
    drawn = [e for e in root if e.tag in ("polyline", "circle")]
    assert [e.tag for e in drawn] == ["circle", "polyline"]  # the gap splits the line: a dot, then a line
    assert "10 ms" in svg  # the axis top: the nice ceiling of 7
    empty = ElementTree.fromstring(str(chart("Requests", [], [Series("requests", [], "#000", bars=True)])))
    assert "no readings yet" in empty.attrib["aria-label"]
    escaped = ElementTree.fromstring(str(chart("<b>x</b>", [1.0], [Series("<i>", [1.0], "#000", bars=True)])))
    assert escaped.attrib["aria-label"].startswith("<b>x</b>") and escaped.find("rect") is not None


@pytest.mark.parametrize(("value", "top"), [(0, 1), (0.3, 0.5), (7, 10), (10, 10), (11, 20), (130, 200), (4999, 5000)])
def test_axis_tops_are_round_numbers(value: float, top: float) -> None:
    assert nice_ceiling(value) == pytest.approx(top)
