"""The sink interface every destination implements (file archive, Loki, Elasticsearch).

The engine gives each sink its own worker thread and queue; the worker calls :meth:`Sink.send`
for one :class:`Batch` at a time. ``send`` blocks until the backend confirmed every line or
rejected some for good (retries, backoff and splitting happen inside), and returns what it
could not deliver. A batch is acknowledged to the checkpoint store only when every sink has
returned for it; rejected lines go to the dead-letter file with the sink's reason, so nothing
is ever dropped silently.
"""

from __future__ import annotations

import abc
import threading
from dataclasses import dataclass, field

from obskit.schema.record import Record


@dataclass(slots=True)
class Batch:
    """Lines ready to ship, columnar (no object per line).

    ``lines[i]`` is the line as it will be shipped (UTF-8 JSON, no newline, possibly
    repaired); ``records[i]`` its decoded schema fields; ``ids[i]`` a deterministic id made of
    the file identity and the line's byte offset (``<file_key>-<offset>``), the same after any
    retry or restart, so backends that support ids can deduplicate. ``static`` holds the
    enrichment fields of this sidecar (``environment``, ``host``, ``pod``, ...).
    ``extents`` maps each file key in the batch to ``(offset of its first line, offset just
    past its last line)``: lines of one file are in file order, so a sink can tell cheaply
    whether a batch replays lines it already stored (the file sink does, after a crash).
    """

    seq: int
    lines: list[bytes]
    records: list[Record]
    ids: list[str]
    static: dict[str, str] = field(default_factory=dict)
    extents: dict[str, tuple[int, int]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.lines)

    @property
    def nbytes(self) -> int:
        return sum(map(len, self.lines))


@dataclass(slots=True)
class SendResult:
    """What a sink could not deliver for good: ``(index in batch, reason)`` pairs.

    An empty result means every line was accepted (for Elasticsearch, an existing ``_id``
    counts as accepted).
    """

    rejected: list[tuple[int, str]] = field(default_factory=list)


class SinkStopped(Exception):
    """Raised by :meth:`Sink.send` when the sidecar is shutting down before the batch was
    delivered; the batch is not acknowledged and will be read again after a restart."""


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

    def spool_bytes(self, nbytes: int) -> None:
        """Current size of this sink's disk spool."""


class Sink(abc.ABC):
    """A destination. Subclasses implement :meth:`send`; :attr:`stopping` is set on shutdown
    and must interrupt retry waits (use ``self.stopping.wait(delay)`` to sleep)."""

    #: Short name used in metrics and logs (``loki``, ``elasticsearch``, ``file``).
    kind: str = "sink"

    def __init__(self, name: str) -> None:
        self.name = name
        self.stopping = threading.Event()
        self.metrics = SinkMetrics()

    def start(self) -> None:  # noqa: B027 - optional hook
        """Open connections or files; called once before the first :meth:`send`."""

    @abc.abstractmethod
    def send(self, batch: Batch) -> SendResult:
        """Deliver ``batch``; block through retries; raise :class:`SinkStopped` on shutdown."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources; called once after the last :meth:`send`."""
