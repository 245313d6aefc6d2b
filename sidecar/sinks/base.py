"""The sink interface every destination implements (file archive, Loki, Elasticsearch, OTLP).

A sink says how a :class:`Batch` is cut into requests (:meth:`Sink.parts`) and what one
attempt of one part gave (:meth:`Sink.attempt`, an :class:`~sidecar.sinks.delivery.Outcome`);
the one delivery loop (:mod:`sidecar.sinks.delivery`) does the rest: retries, back-off,
splitting, poison isolation, dead letters and loud failures. :meth:`Sink.send` runs that loop
for one batch and returns what could not be delivered, so nothing is ever dropped silently.
"""

from __future__ import annotations

import abc
import errno
import threading
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

from obskit._http import RetryConfig, describe_error
from obskit.schema.record import Record

if TYPE_CHECKING:
    from sidecar.sinks.delivery import Delivery, Outcome


class LineId(NamedTuple):
    """A line's identity: its file's id key (``Chunk.id_key``: the file, or the original of a
    copy+truncate copy) and its byte offset there. The same after any retry or restart, so
    backends that support ids can deduplicate."""

    key: str
    offset: int


def cut_by_size(
    items: Sequence[bytes | None], max_bytes: int, max_items: int | None = None
) -> list[list[int]]:
    """Indices of ``items`` (encoded requests' pieces, in order) cut into runs of at most
    ``max_bytes`` (and ``max_items``); a run holds at least one item. ``None`` (an item that
    could not be encoded) goes alone: its attempt raises again and the delivery loop isolates
    it."""
    out: list[list[int]] = []
    idx: list[int] = []
    size = 0
    for i, data in enumerate(items):
        if data is None:
            out.append([i])
            continue
        if idx and (
            size + len(data) > max_bytes or (max_items is not None and len(idx) >= max_items)
        ):
            out.append(idx)
            idx, size = [], 0
        idx.append(i)
        size += len(data)
    if idx:
        out.append(idx)
    return out


class Batch:
    """Lines ready to ship, columnar (no object per line).

    ``lines[i]`` is the line as it will be shipped (UTF-8 JSON, no newline, possibly
    repaired); ``records[i]`` its decoded schema fields; ``offsets[i]`` its byte offset in its
    file, and ``runs`` names the files: ``(index of the first line, id key)`` for each run of
    lines from one file, so :meth:`line_id` is ``(id key, offset)`` without a string per line.
    ``static`` holds the enrichment fields of this sidecar (``environment``, ``host``, ...).
    ``extents`` maps each id key to ``(offset of its first line, offset past its last)``:
    lines of one file are in file order, so a sink can tell cheaply whether a batch replays
    lines it already stored (the file sink does, after a crash). ``paths`` maps id keys to the
    file path last read under them (for dead-letter entries); ``read_time`` is when the lines
    were read (Unix seconds).
    """

    __slots__ = (
        "_nbytes",
        "extents",
        "lines",
        "offsets",
        "paths",
        "read_time",
        "records",
        "runs",
        "seq",
        "static",
    )

    def __init__(
        self,
        seq: int,
        lines: list[bytes],
        records: list[Record],
        *,
        offsets: list[int],
        runs: list[tuple[int, str]],
        static: dict[str, str] | None = None,
        extents: dict[str, tuple[int, int]] | None = None,
        paths: dict[str, str] | None = None,
        read_time: float = 0.0,
    ) -> None:
        self.seq = seq
        self.lines = lines
        self.records = records
        self.offsets = offsets
        self.runs = runs
        self.static: dict[str, str] = static if static is not None else {}
        self.extents: dict[str, tuple[int, int]] = extents if extents is not None else {}
        self.paths: dict[str, str] = paths if paths is not None else {}
        self.read_time = read_time
        self._nbytes = -1

    def line_id(self, i: int) -> LineId:
        """The identity of line ``i``."""
        runs = self.runs
        n = bisect_right(runs, (i, "\U0010ffff")) - 1
        return LineId(runs[n][1], self.offsets[i])

    def keys_and_offsets(self) -> list[tuple[str, list[int], int]]:
        """``(id key, offsets, index of the first line)`` for each run of lines of one file."""
        out = []
        runs, offsets = self.runs, self.offsets
        for n, (start, key) in enumerate(runs):
            stop = runs[n + 1][0] if n + 1 < len(runs) else len(offsets)
            out.append((key, offsets[start:stop], start))
        return out

    def keys(self) -> list[str]:
        """The id key of every line (one reference per line, no new strings)."""
        out: list[str] = []
        for key, offsets, _ in self.keys_and_offsets():
            out += [key] * len(offsets)
        return out

    def select(self, indices: list[int]) -> Batch:
        """A batch of the lines ``indices`` (in order) of this one, same seq and fields."""
        runs: list[tuple[int, str]] = []
        keys = self.keys()
        extents: dict[str, tuple[int, int]] = {}
        for n, i in enumerate(indices):
            key = keys[i]
            if not runs or runs[-1][1] != key:
                runs.append((n, key))
            if key not in extents:
                extents[key] = (self.offsets[i], self.extents.get(key, (0, 0))[1])
        return Batch(
            self.seq,
            [self.lines[i] for i in indices],
            [self.records[i] for i in indices],
            offsets=[self.offsets[i] for i in indices],
            runs=runs,
            static=self.static,
            extents=extents,
            paths=self.paths,
            read_time=self.read_time,
        )

    def __len__(self) -> int:
        return len(self.lines)

    def __repr__(self) -> str:
        return f"Batch(seq={self.seq}, lines={len(self.lines)}, extents={self.extents!r})"

    @property
    def nbytes(self) -> int:
        """The lines' bytes; counted once (the engine and the tracker both ask, and the lines
        of a batch never change once it is built)."""
        if self._nbytes < 0:
            self._nbytes = sum(map(len, self.lines))
        return self._nbytes


@dataclass(slots=True)
class SendResult:
    """What a sink could not deliver for good: ``(index in batch, reason)`` pairs.

    An empty result means every line was accepted (for Elasticsearch, an existing ``_id``
    counts as accepted).
    """

    rejected: list[tuple[int, str]] = field(default_factory=list)


class SinkStopped(Exception):
    """Raised by :meth:`Sink.send` when the sidecar is shutting down before the batch was
    delivered; the batch is not acknowledged and will be sent again after a restart."""


class SinkMetrics:
    """What a sink reports while sending. This base does nothing; the engine installs one
    backed by Prometheus collectors (labels: the sink's name)."""

    def request(self, seconds: float, outcome: str) -> None:
        """One request (or file write) took ``seconds``; ``outcome`` e.g. ``204``, ``timeout``."""

    def retry(self, cause: str) -> None:
        """A retry is about to happen because of ``cause`` (``429``, ``5xx``, ``timeout``...)."""

    def sent(self, lines: int, nbytes: int) -> None:
        """``lines`` lines (``nbytes`` bytes on the wire) were accepted by the backend."""

    def dead_lettered(self, reason: str, lines: int = 1) -> None:
        """``lines`` lines were rejected for good; ``reason`` is a short category."""


class Sink(abc.ABC):
    """A destination. Subclasses implement :meth:`attempt` (and usually :meth:`parts`);
    :attr:`stopping` is set on shutdown and interrupts retry waits."""

    #: Short name used in metrics and logs (``loki``, ``elasticsearch``, ``file``).
    kind: str = "sink"
    #: Parts of one batch sent at the same time.
    concurrency: int = 1

    def __init__(self, name: str) -> None:
        self.name = name
        self.stopping = threading.Event()
        self.metrics = SinkMetrics()
        #: Back-off between attempts (the delivery loop reads it).
        self.retry = RetryConfig()
        #: Give up on a part (dead-letter it) after this many seconds of transient failures;
        #: None retries for ever.
        self.max_retry_duration: float | None = None
        self._delivery: Delivery | None = None

    @property
    def delivery(self) -> Delivery:
        """This sink's delivery loop (its health and failure log included)."""
        if self._delivery is None:
            from sidecar.sinks.delivery import Delivery

            self._delivery = Delivery(self)
        return self._delivery

    def start(self) -> None:  # noqa: B027 - optional hook
        """Open connections or files; called once before the first :meth:`send`."""

    def describe_target(self) -> str:
        """Where this sink sends, for logs: a URL without credentials, or a folder."""
        return self.name

    def parts(self, batch: Batch) -> list[list[int]]:
        """The batch cut into requests (indices, in order); one part by default."""
        return [list(range(len(batch)))]

    @abc.abstractmethod
    def attempt(self, batch: Batch, part: list[int]) -> Outcome:
        """Send the lines ``part`` of ``batch`` once and say what happened. Raise for trouble
        that is not the lines' fault (network, disk): :meth:`transient_cause` names it."""

    def transient_cause(self, exc: BaseException) -> str | None:
        """A short cause when ``exc`` is trouble that is not the lines' fault (retried with
        back-off for ever), None when it is not (the lines are then isolated)."""
        import httpx

        if isinstance(exc, httpx.TransportError):
            return describe_error(exc)
        if isinstance(exc, OSError):
            return errno.errorcode.get(exc.errno or 0, "oserror").lower()
        return None

    def send(self, batch: Batch) -> SendResult:
        """Deliver ``batch`` through the delivery loop; block through retries; raise
        :class:`SinkStopped` on shutdown. Returns the lines rejected for good."""
        report = self.delivery.deliver(batch)
        return SendResult(rejected=report.rejected)

    def close(self) -> None:
        """Release resources; called once after the last :meth:`send`."""
        if self._delivery is not None:
            self._delivery.close()
