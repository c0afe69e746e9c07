"""What `conduit test` found: one result per check, latency percentiles, and the
text, JSON and JUnit XML renderings of it."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Status = Literal["pass", "fail", "skip"]


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    reason: str  # one line
    seconds: float = 0.0
    details: str = ""  # optional longer text: a response body, a log tail


def percentile(samples: list[float], fraction: float) -> float:
    """Linear interpolation between the closest ranks (numpy's default)."""
    ordered = sorted(samples)
    position = (len(ordered) - 1) * fraction
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass
class Report:
    project: str
    target: str
    results: list[CheckResult] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)  # successful timed /predict calls

    @property
    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if r.status == "fail"]

    @property
    def ok(self) -> bool:
        return not self.failures

    def count(self, status: Status) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def p50_ms(self) -> float | None:
        return round(percentile(self.latency_ms, 0.50), 3) if self.latency_ms else None

    @property
    def p95_ms(self) -> float | None:
        return round(percentile(self.latency_ms, 0.95), 3) if self.latency_ms else None

    def summary(self) -> str:
        verdict = "ok" if self.ok else "FAILED"
        return f"{verdict}: {self.count('pass')} passed, {self.count('fail')} failed, {self.count('skip')} skipped"

    def render(self) -> str:
        width = max((len(r.name) for r in self.results), default=0)
        lines = [f"contract test of {self.project} at {self.target}"]
        for result in self.results:
            lines.append(f"  {result.status.upper():4}  {result.name:<{width}}  {result.reason}")
            if result.details and result.status == "fail":
                lines.extend(f"        | {line}" for line in result.details.splitlines())
        if self.latency_ms:
            lines.append(f"latency: p50 {self.p50_ms} ms, p95 {self.p95_ms} ms over {len(self.latency_ms)} requests")
        lines.append(self.summary())
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "project": self.project,
            "target": self.target,
            "passed": self.count("pass"),
            "failed": self.count("fail"),
            "skipped": self.count("skip"),
            "checks": [
                {"name": r.name, "status": r.status, "reason": r.reason, "seconds": round(r.seconds, 4),
                 **({"details": r.details} if r.details else {})}
                for r in self.results
            ],
            "latency_ms": {"p50": self.p50_ms, "p95": self.p95_ms, "requests": len(self.latency_ms)},
        }

    def to_junit(self, path: str | Path) -> None:
        suite = ET.Element("testsuite", {
            "name": f"conduit contract: {self.project}",
            "tests": str(len(self.results)),
            "failures": str(self.count("fail")),
            "errors": "0",
            "skipped": str(self.count("skip")),
            "time": f"{sum(r.seconds for r in self.results):.3f}",
        })
        properties = ET.SubElement(suite, "properties")
        for name, value in (("target", self.target), ("latency_p50_ms", self.p50_ms), ("latency_p95_ms", self.p95_ms)):
            ET.SubElement(properties, "property", {"name": name, "value": "" if value is None else str(value)})
        for result in self.results:
            case = ET.SubElement(suite, "testcase", {
                "classname": f"conduit.contract.{self.project}", "name": result.name, "time": f"{result.seconds:.3f}",
            })
            if result.status == "fail":
                ET.SubElement(case, "failure", {"message": result.reason}).text = result.details or result.reason
            elif result.status == "skip":
                ET.SubElement(case, "skipped", {"message": result.reason})
        root = ET.Element("testsuites")
        root.append(suite)
        ET.indent(root)
        ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)




def startup_failure(project: str, target: str, message: str) -> Report:
    """The report when the server never got ready: one failed check, the log as details."""
    first, _, rest = message.partition("\n")
    return Report(project, target, [CheckResult("server gets ready", "fail", first, details=rest.strip())])
