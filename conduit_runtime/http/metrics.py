"""/metrics: the few numbers an operator needs, in Prometheus text, through
prometheus-client.

With one worker the samples live in this process (the gauges are read when
scraped). With several (`server.workers`), each worker writes its own to files
in PROMETHEUS_MULTIPROC_DIR, which the supervisor sets before it starts them,
and whichever worker answers a scrape adds up every worker's files: counters and
histograms are summed, running and queued predictions summed over the live
workers, `conduit_ready` the lowest of them (1 only when every worker is ready).
A worker's gauges are written when it answers a scrape and every half second
(`refresh`), so another worker's may lag by that much.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# name → (help, how it is combined across workers)
GAUGES: dict[str, tuple[str, Literal["livemin", "livesum", "livemax"]]] = {
    "conduit_ready": ("1 once the model is loaded and warmed up.", "livemin"),
    "conduit_predictions_running": ("Predictions running now.", "livesum"),
    "conduit_predictions_queued": ("Predictions waiting for a slot.", "livesum"),
    "conduit_async_predictions_running": ("Async predictions running now.", "livesum"),
    # Only an image whose weights are separate (image.weights) has these two.
    "conduit_weights_fetch_seconds": ("Seconds the model weights took to fetch (or find) and verify at start.",
                                      "livemax"),
    "conduit_weights_bytes": ("Bytes of the model weights, verified at start.", "livemax"),
}

disable_created_metrics()  # no *_created series: every sample an operator sees is one of ours


def multiprocess() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class Metrics:
    def __init__(self, name: str, gauges: dict[str, Callable[[], float]]) -> None:
        """`gauges`: how to read those of GAUGES this server has, in this process."""
        self.name = name
        self.gauges = gauges
        self.shared = multiprocess()
        # In multiprocess mode the samples go to files: they are registered nowhere, and
        # a scrape reads them all through a MultiProcessCollector.
        own = None if self.shared else CollectorRegistry()
        self.responses = Counter("conduit_predictions", "Prediction requests answered, by HTTP status.",
                                 ["model", "status"], registry=own)
        self.durations = Histogram("conduit_prediction_duration_seconds", "Time from arrival to answer of /predict.",
                                   ["model"], buckets=BUCKETS, registry=own).labels(name)
        self.batches = Histogram("conduit_batch_size", "Rows per model call of a batched stage (models[stage].batch).",
                                 ["model", "stage"], buckets=BATCH_BUCKETS, registry=own)
        self.batch_failures = Counter("conduit_batch_failures", "Batched model calls that failed (each then "
                                      "bisected to find the request that fails it).", ["model", "stage"], registry=own)
        self.by_status: dict[int, Counter] = {}
        if own is None:
            self.gauge_values = {
                metric: Gauge(metric, help_text, ["model"], registry=None, multiprocess_mode=mode).labels(name)
                for metric, (help_text, mode) in GAUGES.items() if metric in gauges
            }
            from prometheus_client import multiprocess as shared

            self.registry = CollectorRegistry()
            shared.MultiProcessCollector(self.registry)
        else:
            own.register(ReadAtScrape(name, gauges))
            self.registry = own

    def observe(self, status: int, seconds: float) -> None:
        counter = self.by_status.get(status)
        if counter is None:
            counter = self.by_status[status] = self.responses.labels(self.name, str(status))
        counter.inc()
        self.durations.observe(seconds)

    def observe_batch(self, stage: str, rows: int, failed: bool = False) -> None:
        """A batched call of `rows` rows, or (failed) one that failed."""
        if failed:
            self.batch_failures.labels(self.name, stage).inc()
        else:
            self.batches.labels(self.name, stage).observe(rows)

    def refresh(self) -> None:
        """This worker's gauges into its files (multiprocess mode only)."""
        if self.shared:
            for metric, gauge in self.gauge_values.items():
                gauge.set(self.gauges[metric]())

    def render(self) -> bytes:
        self.refresh()
        return generate_latest(self.registry)


class ReadAtScrape(Collector):
    """The gauges of a single process, read when scraped (nothing to do per request)."""

    def __init__(self, name: str, gauges: dict[str, Callable[[], float]]) -> None:
        self.name = name
        self.gauges = gauges

    def collect(self) -> Iterator[Metric]:
        for metric, (help_text, _) in GAUGES.items():
            if metric not in self.gauges:
                continue
            family = GaugeMetricFamily(metric, help_text, labels=["model"])
            family.add_metric([self.name], self.gauges[metric]())
            yield family


__all__ = ["CONTENT_TYPE", "Metrics", "multiprocess"]
