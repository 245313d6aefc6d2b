"""One delivery loop for every sink: retries, back-off, splitting, poison isolation, dead
letters and loud failures live here, once.

A sink only says how a batch is cut into requests (:meth:`Sink.parts`) and what one attempt
of one part gave (:meth:`Sink.attempt` returns an :class:`Outcome` or raises). The loop:

- **Delivered** lines are counted; **rejected** ones (the server said which, and why) go back
  to the worker for the dead-letter file. Nothing the server accepted is sent again.
- **Retry** (429, 5xx, a network error, a full disk: trouble that is not the lines' fault)
  waits with exponential back-off and jitter, honouring ``Retry-After``, and sends the same
  lines again, forever unless ``max_retry_duration`` is set. While the backend cannot be
  reached at all, the wait is capped at ``max_wait_unreachable`` (1 s), so the first push goes
  out about a second after the backend returns.
- **Split**: the server refused the request as a whole without saying which line is at fault
  (a 413, an unattributable 400): the part is halved until the culprits are alone, and a
  line refused alone is dead-lettered with the server's reason.
- **Poison**: an exception that is not a transient I/O error (the sink could not encode a
  line, a server-side parser crash surfacing as an error the sink does not know) is tried
  :data:`STRIKES` times, then the part is halved; a line that still fails alone is
  dead-lettered with the error, so one bad line never blocks a sink.

Every failure is reported to the sink's :class:`FailureLog` (first failure at once, then at
most one line per cause and interval, with the sink's URL and a masked, truncated detail)
and to :class:`SinkHealth` (how long the sink has been failing, for ``/readyz``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from obskit._http import Backoff
from obskit.secrets import mask_secrets

if TYPE_CHECKING:
    from sidecar.sinks.base import Batch, Sink

#: Attempts of a part that fails with an unexpected error before it is halved.
STRIKES = 3
#: Longest wait between attempts while the backend cannot be reached at all (connection
#: refused, timed out): each attempt is itself the probe.
MAX_WAIT_UNREACHABLE = 1.0
#: Causes meaning "the backend could not be reached" (see :data:`MAX_WAIT_UNREACHABLE`).
UNREACHABLE = frozenset({"connect", "timeout", "network", "protocol"})


@dataclass(slots=True)
class Outcome:
    """What one attempt of one part gave. Indices are positions in the batch.

    ``delivered`` lines were stored; ``rejected`` maps lines refused for good to ``(reason,
    category)``; ``retry`` lines must be sent again after a wait (``cause`` for metrics and
    logs, ``detail`` for humans, ``hint`` the server's ``Retry-After``); ``again`` lines must be
    sent again at once (the sink changed how it encodes them); ``split`` is set when the
    server refused the whole part without saying which line: the reason a line refused alone
    is dead-lettered with.
    """

    delivered: int = 0
    wire_bytes: int = 0
    rejected: dict[int, tuple[str, str]] = field(default_factory=dict)
    retry: list[int] = field(default_factory=list)
    cause: str = ""
    detail: str = ""
    hint: float | None = None
    again: list[int] = field(default_factory=list)
    split: str | None = None
    split_category: str = ""

    @classmethod
    def ok(cls, lines: int, wire_bytes: int = 0) -> Outcome:
        """Every line of the part was stored."""
        return cls(delivered=lines, wire_bytes=wire_bytes)

    @classmethod
    def transient(
        cls, part: list[int], cause: str, detail: str = "", hint: float | None = None
    ) -> Outcome:
        """Nothing was stored, and it was not the lines' fault: send them all again later."""
        return cls(retry=list(part), cause=cause, detail=detail, hint=hint)

    @classmethod
    def refused(cls, reason: str, category: str) -> Outcome:
        """The server refused the whole part without naming the lines at fault."""
        return cls(split=reason, split_category=category)


class TransientError(Exception):
    """Raised by a sink's attempt for trouble that is not the lines' fault (the archive folder
    is gone, the disk is full): retried with back-off, never dead-lettered. ``cause`` is a
    short label for metrics."""

    def __init__(self, cause: str, detail: str) -> None:
        super().__init__(detail)
        self.cause = cause
        self.detail = detail


@dataclass
class DeliveryReport:
    """What happened to a batch: ``rejected`` (index, reason), sorted by index."""

    rejected: list[tuple[int, str]]
    delivered: int


class GiveUp(Exception):
    """``max_retry_duration`` elapsed for a part."""


class SinkHealth:
    """Whether a sink is delivering: the start of the current failure streak (monotonic
    seconds, None while healthy), the last failure, and when it last delivered."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.failing_since: float | None = None
        self.last_error: str = ""
        self.last_error_at: float | None = None  # wall clock, for humans
        self.last_success: float | None = None  # monotonic
        self.failures = 0

    def failed(self, cause: str, detail: str) -> None:
        with self._lock:
            if self.failing_since is None:
                self.failing_since = time.monotonic()
            self.failures += 1
            self.last_error = f"{cause}: {detail}" if detail else cause
            self.last_error_at = time.time()

    def delivered(self) -> float | None:
        """Record a success; returns how long the streak that just ended lasted (or None)."""
        with self._lock:
            self.last_success = time.monotonic()
            since, self.failing_since = self.failing_since, None
            self.failures = 0
            return None if since is None else self.last_success - since

    def failing_for(self, now: float | None = None) -> float:
        """Seconds the sink has been failing without a single success (0 when healthy)."""
        since = self.failing_since
        if since is None:
            return 0.0
        return (time.monotonic() if now is None else now) - since


class FailureLog:
    """Logs a sink's failures loudly but boundedly: the first of each cause at once, then at
    most one line per cause and ``interval`` (with how many were folded in), and one line when
    the sink recovers. ``where`` is the sink's URL or folder, without credentials; details
    are masked and truncated (:func:`obskit.secrets.mask_secrets`)."""

    def __init__(
        self,
        sink: str,
        where: str,
        log: Callable[..., None],
        interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sink = sink
        self.where = where
        self.log = log
        self.interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._folded: dict[str, int] = {}

    def failed(self, cause: str, detail: str, action: str) -> None:
        now = self._clock()
        with self._lock:
            last = self._last.get(cause)
            if last is not None and now - last < self.interval:
                self._folded[cause] = self._folded.get(cause, 0) + 1
                return
            self._last[cause] = now
            folded = self._folded.pop(cause, 0)
        fields: dict[str, Any] = {
            "sink": self.sink,
            "cause": cause,
            "url": self.where,
            "action": action,
        }
        if detail:
            fields["detail"] = mask_secrets(detail)
        if folded:
            fields["similar_since_last_report"] = folded
        self.log("WARN" if last is None else "ERROR", f"sink {self.sink}: {cause}", **fields)

    def recovered(self, after: float) -> None:
        with self._lock:
            self._last.clear()
            self._folded.clear()
        self.log(
            "INFO",
            f"sink {self.sink}: delivering again after {after:.1f}s of failures",
            sink=self.sink,
            url=self.where,
        )


class Delivery:
    """Delivers batches for one sink (see the module docstring). Thread-safe for one
    :meth:`deliver` at a time; parts of one batch go out ``sink.concurrency`` at a time."""

    def __init__(self, sink: Sink, log: Callable[..., None] | None = None) -> None:
        self.sink = sink
        self.health = SinkHealth()
        self.failures = FailureLog(sink.name, sink.describe_target(), log or _no_log)
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def set_log(self, log: Callable[..., None]) -> None:
        self.failures.log = log

    # -- the loop ---------------------------------------------------------------------------
    def deliver(self, batch: Batch) -> DeliveryReport:
        """Deliver ``batch``; block through retries; raise :class:`SinkStopped` on shutdown.
        Returns the lines rejected for good, with reasons."""
        rejected: dict[int, str] = {}
        if not len(batch):
            return DeliveryReport([], 0)
        try:
            parts = self.sink.parts(batch)
        except Exception as exc:  # a line the sink cannot even plan: isolate it
            self._failed("error", f"{type(exc).__name__}: {exc}", "isolating the batch")
            parts = [list(range(len(batch)))]
        delivered = [0]
        if len(parts) <= 1 or self.sink.concurrency <= 1:
            for part in parts:
                self._drive(batch, part, rejected, delivered)
        else:
            self._drive_concurrently(batch, parts, rejected, delivered)
        return DeliveryReport(sorted(rejected.items()), delivered[0])

    def _drive_concurrently(
        self,
        batch: Batch,
        parts: list[list[int]],
        rejected: dict[int, str],
        delivered: list[int],
    ) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                self.sink.concurrency, thread_name_prefix=f"sink-{self.sink.name}"
            )
        running: set[Future[None]] = set()
        try:
            for part in parts:
                if len(running) >= self.sink.concurrency:
                    done, running = wait(running, return_when=FIRST_COMPLETED)
                    for f in done:
                        f.result()
                running.add(self._pool.submit(self._drive, batch, part, rejected, delivered))
        finally:
            done, _ = wait(running)  # never leave a request behind
        for f in done:
            f.result()

    def _drive(
        self,
        batch: Batch,
        part: list[int],
        rejected: dict[int, str],
        delivered: list[int],
    ) -> None:
        """Send ``part`` until each of its lines is delivered or rejected for good."""
        from sidecar.sinks.base import SinkStopped

        sink = self.sink
        cfg = sink.retry
        backoff = Backoff(cfg)
        # (lines, strikes so far, when the part first failed)
        stack: list[tuple[list[int], int, float | None]] = [(part, 0, None)]
        while stack:
            lines, strikes, since = stack.pop()
            if sink.stopping.is_set():
                raise SinkStopped(f"{sink.name}: stopping")
            try:
                out = sink.attempt(batch, lines)
            except SinkStopped:
                raise
            except TransientError as exc:
                since = self._wait(backoff, exc.cause, exc.detail, None, since, lines, rejected)
                if since is not None:
                    stack.append((lines, strikes, since))
                continue
            except Exception as exc:
                cause = sink.transient_cause(exc)
                detail = f"{type(exc).__name__}: {exc}"
                if cause is not None:
                    since = self._wait(backoff, cause, detail, None, since, lines, rejected)
                    if since is not None:
                        stack.append((lines, strikes, since))
                    continue
                # Not I/O trouble: these lines make the sink fail. Try again a few times
                # (it may be a passing state), then isolate the culprit by halving.
                strikes += 1
                if strikes < STRIKES:
                    self._failed("error", detail, f"attempt {strikes} of {STRIKES}")
                    if sink.stopping.wait(min(0.5 * strikes, cfg.max)):
                        raise SinkStopped(f"{sink.name}: stopping") from None
                    stack.append((lines, strikes, since))
                elif len(lines) > 1:
                    self._failed("error", detail, f"isolating the failing lines of {len(lines)}")
                    half = len(lines) // 2
                    stack += [(lines[half:], 0, None), (lines[:half], 0, None)]
                else:
                    self._failed("error", detail, "dead-lettering the line")
                    self._reject(rejected, lines[0], f"{sink.name}: cannot send: {detail}", "error")
                continue
            self._apply(out, lines, batch, backoff, stack, rejected, delivered, since)

    def _apply(
        self,
        out: Outcome,
        lines: list[int],
        batch: Batch,
        backoff: Backoff,
        stack: list[tuple[list[int], int, float | None]],
        rejected: dict[int, str],
        delivered: list[int],
        since: float | None,
    ) -> None:
        sink = self.sink
        if out.delivered or out.rejected:
            recovered = self.health.delivered()
            if recovered is not None:
                self.failures.recovered(recovered)
            backoff.reset()
        if out.delivered:
            with self._lock:
                delivered[0] += out.delivered
            sink.metrics.sent(out.delivered, out.wire_bytes)
        for i, (reason, category) in out.rejected.items():
            self._reject(rejected, i, reason, category)
        if out.split is not None:
            if len(lines) > 1:
                half = len(lines) // 2
                stack += [(lines[half:], 0, None), (lines[:half], 0, None)]
            else:
                self._reject(rejected, lines[0], out.split, out.split_category or "refused")
        if out.again:
            stack.append((out.again, 0, None))
        if out.retry:
            since = self._wait(backoff, out.cause, out.detail, out.hint, since, out.retry, rejected)
            if since is not None:
                stack.append((out.retry, 0, since))

    def _wait(
        self,
        backoff: Backoff,
        cause: str,
        detail: str,
        hint: float | None,
        since: float | None,
        lines: list[int],
        rejected: dict[int, str],
    ) -> float | None:
        """Report a transient failure and sleep before the next attempt. Returns when the
        part first failed, or None when its retry budget is spent (its lines are then
        dead-lettered)."""
        from sidecar.sinks.base import SinkStopped

        sink = self.sink
        now = time.monotonic()
        since = now if since is None else since
        budget = sink.max_retry_duration
        if budget is not None and now - since > budget:
            reason = f"{sink.name}: gave up after max_retry_duration ({cause})"
            self._failed(cause, detail, f"giving up on {len(lines)} lines")
            for i in lines:
                self._reject(rejected, i, reason, "retry_budget")
            return None
        delay = backoff.next_delay(hint)
        if hint is None and cause in UNREACHABLE:
            delay = min(delay, MAX_WAIT_UNREACHABLE)
        self._failed(cause, detail, f"retrying {len(lines)} lines in {delay:.1f}s")
        sink.metrics.retry(cause)
        if sink.stopping.wait(delay):
            raise SinkStopped(f"{sink.name}: stopping during retry ({cause})")
        return since

    def _failed(self, cause: str, detail: str, action: str) -> None:
        self.health.failed(cause, mask_secrets(detail))
        self.failures.failed(cause, detail, action)

    def _reject(self, rejected: dict[int, str], i: int, reason: str, category: str) -> None:
        with self._lock:
            rejected[i] = mask_secrets(reason)
        self.sink.metrics.dead_lettered(category)


def _no_log(*args: Any, **kwargs: Any) -> None:
    pass
