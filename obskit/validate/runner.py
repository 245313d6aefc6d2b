"""Run the validator over many inputs and collect what the reporters print."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, BinaryIO

from obskit.schema import rules
from obskit.schema.hints import Hinter
from obskit.schema.policy import Policy
from obskit.schema.stream import LineReport, StreamSummary
from obskit.schema.violation import Violation
from obskit.validate.inputs import Input

if TYPE_CHECKING:
    from concurrent.futures import Executor

from obskit.validate.parallel import (
    Options,
    Unit,
    UnitResult,
    check_unit,
    ignore_interrupts,
    interrupts_held,
    plan,
)


@dataclass
class FileResult:
    """What one input produced: its reports (up to the error cap) and counts. ``folder`` is
    true for a folder that could not be listed (then ``io_error`` says why)."""

    path: str
    summary: StreamSummary
    reports: list[LineReport] = field(default_factory=list)
    io_error: str | None = None
    folder: bool = False


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

    @property
    def file_count(self) -> int:
        """How many files were checked (or could not be read); unlistable folders excluded."""
        return sum(not f.folder for f in self.files)


class WorkerLost(RuntimeError):
    """A worker process ended without an answer (killed, out of memory)."""


class _Collector:
    """Keeps reports in input order until ``max_errors`` violations, passing each kept one to
    ``on_report``: the same whether the reports come from this process or from workers.
    Hints (``--dialect``) are added here, file by file in line order, so "the first such line
    of a file" is the same whatever ``-j``."""

    def __init__(
        self,
        max_errors: int | None,
        on_report: Callable[[str, LineReport], None] | None,
        policy: Policy,
        dialect: str | None,
    ) -> None:
        self.max_errors = max_errors
        self.on_report = on_report
        self.kept = 0
        self.truncated = False
        self._policy, self._dialect = policy, dialect
        self._hinters: dict[int, Hinter] = {}

    def add(self, fr: FileResult, rep: LineReport) -> None:
        if rep.raw is not None:
            hinter = self._hinters.get(id(fr))
            if hinter is None:
                hinter = self._hinters[id(fr)] = Hinter(self._dialect, fr.path, self._policy)
            rep.violations = hinter.annotate(rep.raw, rep.violations)
            rep.raw = None  # kept reports hold only what they show
        if self.max_errors is not None and self.kept >= self.max_errors:
            self.truncated = True
            return
        self.kept += len(rep.violations)
        fr.reports.append(rep)
        if self.on_report is not None:
            self.on_report(fr.path, rep)


def run_validation(
    paths: Sequence[str | Input],
    policy: Policy,
    *,
    max_errors: int | None = None,
    accept_utf16: bool = False,
    on_report: Callable[[str, LineReport], None] | None = None,
    stdin: BinaryIO | None = None,
    jobs: int = 1,
    range_bytes: int | None = None,
    start_method: str | None = None,
    executor: Executor | None = None,
    dialect: str | None = None,
) -> RunResult:
    """Validate each path (``-`` is stdin); stop keeping reports after ``max_errors``
    violations, but keep counting.

    With ``jobs`` > 1 the files, and byte ranges of large files, are checked in that many
    worker processes; the result is the same as with one, in the same order. ``range_bytes``
    fixes the size of the ranges, ``start_method`` the multiprocessing start method (by
    default fork on Linux, spawn elsewhere); an ``executor`` given is used instead of a new
    process pool. ``dialect``: see ``obskit validate --dialect``.
    """
    items = [p if isinstance(p, Input) else Input(p) for p in paths]
    opts = Options(policy, accept_utf16, max_errors)
    collector = _Collector(max_errors, on_report, policy, dialect)
    results = [
        FileResult(i.path, StreamSummary(), io_error=i.error, folder=i.error is not None)
        for i in items
    ]
    work = plan([(n, i.path) for n, i in enumerate(items) if i.error is None], jobs, range_bytes)
    units = work.units
    if work.parallel:
        pooled = [u for u in units if u.path != "-"]
        if executor is None:
            # Imported here: a run in one process (small inputs, -j 1) does not pay for them.
            from concurrent.futures import ProcessPoolExecutor
            from multiprocessing import get_context

            method = start_method or ("fork" if sys.platform == "linux" else "spawn")
            pool = ProcessPoolExecutor(
                min(jobs, len(pooled)),
                mp_context=get_context(method),
                initializer=ignore_interrupts,
            )
            try:
                _run_units(units, pooled, opts, pool, stdin, results, collector)
            except BaseException:
                # Ctrl-C or a lost worker: stop now, even a worker blocked on a slow read.
                for proc in list(getattr(pool, "_processes", {}).values()):
                    proc.terminate()
                raise
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
        else:
            _run_units(units, pooled, opts, executor, stdin, results, collector)
    else:
        for u in units:
            fr = results[u.index]
            found = check_unit(u, opts, partial(collector.add, fr), stdin)
            fr.summary, fr.io_error = found.summary, found.io_error

    total = StreamSummary()
    for fr in results:
        total.merge(fr.summary)
    res = RunResult(results, total, collector.truncated)
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


def _run_units(
    units: list[Unit],
    pooled: list[Unit],
    opts: Options,
    pool: Executor,
    stdin: BinaryIO | None,
    results: list[FileResult],
    collector: _Collector,
) -> None:
    from concurrent.futures.process import BrokenProcessPool  # loaded with the pool

    lines_before = [0] * len(results)  # per input: lines of its ranges merged so far
    try:
        with interrupts_held():  # the workers start here: Ctrl-C is the parent's
            answers = pool.map(partial(check_unit, opts=opts), pooled)  # in order
        for u in units:
            res = check_unit(u, opts, stdin=stdin) if u.path == "-" else next(answers)
            _merge(u, res, results[u.index], lines_before, collector)
    except BrokenProcessPool as exc:
        raise WorkerLost("a worker process ended without an answer (killed?)") from exc


def _merge(
    u: Unit, res: UnitResult, fr: FileResult, lines_before: list[int], collector: _Collector
) -> None:
    if fr.io_error is not None:
        return  # an earlier range could not be read: one process would have stopped there
    base = lines_before[u.index]
    for rep in res.reports:
        rep.line += base
        collector.add(fr, rep)
    if res.dropped:
        collector.truncated = True  # the parent keeps fewer than each unit, never more
    if u.end < 0:
        fr.summary = res.summary
    else:
        fr.summary.merge(res.summary)
    lines_before[u.index] += res.summary.lines
    fr.io_error = res.io_error
