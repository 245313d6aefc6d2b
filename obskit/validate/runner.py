"""Run the validator over many inputs and collect what the reporters print."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO

from obskit.schema import rules
from obskit.schema.policy import Policy
from obskit.schema.stream import LineReport, StreamSummary, validate_stream
from obskit.schema.violation import Violation


@dataclass
class FileResult:
    """What one input produced: its reports (up to the error cap) and counts."""

    path: str
    summary: StreamSummary
    reports: list[LineReport] = field(default_factory=list)
    io_error: str | None = None


@dataclass
class RunResult:
    """All inputs of one run."""

    files: list[FileResult]
    total: StreamSummary
    truncated: bool = False
    policy_violations: list[Violation] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 all valid, 1 violations found, 2 an input could not be read."""
        if any(f.io_error for f in self.files):
            return 2
        if (
            self.total.invalid
            or self.policy_violations
            or any(f.summary.file_error for f in self.files)
        ):
            return 1
        return 0


def run_validation(
    paths: Sequence[str],
    policy: Policy,
    *,
    max_errors: int | None = None,
    accept_utf16: bool = False,
    on_report: Callable[[str, LineReport], None] | None = None,
    stdin: BinaryIO | None = None,
    dialect: str | None = None,
) -> RunResult:
    """Validate each path (``-`` is stdin); stop keeping reports after ``max_errors``
    violations, but keep counting. ``dialect``: see ``obskit validate --dialect``."""
    total = StreamSummary()
    results: list[FileResult] = []
    kept = 0
    truncated = False
    for path in paths:
        summary = StreamSummary()
        fr = FileResult(path, summary)
        results.append(fr)
        try:
            stream: BinaryIO
            if path == "-":
                stream = stdin or sys.stdin.buffer
                close = False
            else:
                stream = open(path, "rb")  # noqa: SIM115 - closed below
                close = True
            try:
                for rep in validate_stream(
                    stream,
                    policy,
                    summary=summary,
                    accept_utf16=accept_utf16,
                    dialect=dialect,
                    path=path,
                ):
                    if max_errors is not None and kept >= max_errors:
                        truncated = True
                        continue
                    kept += len(rep.violations)
                    fr.reports.append(rep)
                    if on_report is not None:
                        on_report(path, rep)
            finally:
                if close:
                    stream.close()
        except OSError as exc:
            fr.io_error = f"{path}: cannot read: {exc.strerror or exc}"
        except EOFError as exc:
            fr.io_error = f"{path}: truncated gzip stream: {exc}"
        total.merge(summary)
    res = RunResult(results, total, truncated)
    if policy.trace_min_fraction and total.trace_eligible:
        frac = total.trace_carrying / total.trace_eligible
        if frac < policy.trace_min_fraction:
            res.policy_violations.append(
                Violation(
                    rules.POLICY_TRACE_COVERAGE,
                    "trace_id",
                    f"{frac:.1%} of {total.trace_eligible} lines at {policy.trace_min_level} or "
                    f"above carry trace_id; the policy asks for at least "
                    f"{policy.trace_min_fraction:.1%}",
                )
            )
    return res
