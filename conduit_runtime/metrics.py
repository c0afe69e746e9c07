"""Prometheus text exposition of the few numbers an operator needs.

Small enough to write by hand, and cheaper per request than a client library's
locks: the event loop is the only writer.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Callable

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    def __init__(self, name: str) -> None:
        self.name = name
        self.responses: Counter[int] = Counter()
        self.bucket_counts = [0] * len(BUCKETS)
        self.duration_sum = 0.0
        self.duration_count = 0

    def observe(self, status: int, seconds: float) -> None:
        self.responses[status] += 1
        self.duration_sum += seconds
        self.duration_count += 1
        index = bisect.bisect_left(BUCKETS, seconds)
        if index < len(BUCKETS):  # past the last bound it counts only in +Inf
            self.bucket_counts[index] += 1

    def render(self, gauges: dict[str, tuple[str, Callable[[], float]]]) -> str:
        model = f'model="{self.name}"'
        lines = [
            "# HELP conduit_predictions_total Prediction requests answered, by HTTP status.",
            "# TYPE conduit_predictions_total counter",
        ]
        lines += [f'conduit_predictions_total{{{model},status="{s}"}} {n}' for s, n in sorted(self.responses.items())]
        lines += [
            "# HELP conduit_prediction_duration_seconds Time from arrival to answer of /predict.",
            "# TYPE conduit_prediction_duration_seconds histogram",
        ]
        cumulative = 0
        for bound, count in zip(BUCKETS, self.bucket_counts, strict=True):
            cumulative += count
            lines.append(f'conduit_prediction_duration_seconds_bucket{{{model},le="{bound}"}} {cumulative}')
        lines.append(f'conduit_prediction_duration_seconds_bucket{{{model},le="+Inf"}} {self.duration_count}')
        lines.append(f"conduit_prediction_duration_seconds_sum{{{model}}} {self.duration_sum}")
        lines.append(f"conduit_prediction_duration_seconds_count{{{model}}} {self.duration_count}")
        for metric, (help_text, read) in gauges.items():
            lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} gauge", f"{metric}{{{model}}} {read()}"]
        return "\n".join(lines) + "\n"
