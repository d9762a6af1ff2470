"""Prometheus metrics of a backend process.

Under gunicorn with several workers set `PROMETHEUS_MULTIPROC_DIR` (gunicorn_conf.py does) so `/metrics`
aggregates all workers. Training outcomes and served versions are read from the job store and the model store
at scrape time, because training runs in other processes (RQ workers).
"""
from __future__ import annotations

import os
from typing import Callable, Iterable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

REQUESTS = Counter("labelloop_http_requests", "HTTP requests answered", ["backend", "endpoint", "status"])
LATENCY = Histogram("labelloop_http_request_duration_seconds", "Time to answer a request", ["backend", "endpoint"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120))
PREDICTIONS = Counter("labelloop_predictions", "Task predictions made", ["backend", "outcome"])
PREDICT_BATCH = Histogram("labelloop_predict_batch_tasks", "Tasks per /predict request", ["backend"],
                          buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000))


class StateCollector(Collector):
    """Training job outcomes and served model versions, read when scraped."""

    def __init__(self, backend: str, outcomes: Callable[[], dict[str, int]],
                 versions: Callable[[], Iterable[tuple[int, str]]],
                 results: Callable[[], dict[str, int]] = dict):
        self.backend, self.outcomes, self.versions, self.results = backend, outcomes, versions, results

    def collect(self):
        jobs = CounterMetricFamily("labelloop_training_jobs", "Training jobs by final outcome",
                                   labels=["backend", "outcome"])
        for outcome, count in sorted(self.outcomes().items()):
            jobs.add_metric([self.backend, outcome], count)
        yield jobs
        results = CounterMetricFamily("labelloop_training_results", "Succeeded training jobs by what became of "
                                      "the trained model (published, rejected, skipped)", labels=["backend", "result"])
        for result, count in sorted(self.results().items()):
            results.add_metric([self.backend, result], count)
        yield results
        served = GaugeMetricFamily("labelloop_served_model_version", "1 for the model version served per project",
                                   labels=["backend", "project", "model_version"])
        for project, version in self.versions():
            served.add_metric([self.backend, str(project), version], 1)
        yield served


def render(state: StateCollector) -> tuple[bytes, str]:
    """The metrics page: this process's (or all workers') counters plus the state collector."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
        registry.register(state)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    registry.register(state)
    return generate_latest(REGISTRY) + generate_latest(registry), CONTENT_TYPE_LATEST
