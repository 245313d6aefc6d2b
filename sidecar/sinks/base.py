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


class Batch:
    """Lines ready to ship, columnar (no object per line).

    ``lines[i]`` is the line as it will be shipped (UTF-8 JSON, no newline, possibly
    repaired); ``records[i]`` its decoded schema fields; ``ids[i]`` a deterministic id made of
    the file identity and the line's byte offset (``<id_key>-<offset>``, see
    ``Chunk.id_key``), the same after any retry or restart, so backends that support ids can
    deduplicate. ``static`` holds the enrichment fields of this sidecar (``environment``,
    ``host``, ``pod``, ...). ``extents`` maps each id key in the batch to ``(offset of its
    first line, offset just past its last line)``: lines of one file are in file order, so a
    sink can tell cheaply whether a batch replays lines it already stored (the file sink does,
    after a crash).

    The engine gives ``offsets`` (each line's offset) and ``runs`` (``(index of the first
    line, id key)`` for each run of lines with one id key) instead of ``ids``: the id strings
    are then built on first use of :attr:`ids`, so sinks that do not use ids (file, Loki) do
    not pay for them. Either ``ids`` or ``offsets`` + ``runs`` must be given.
    """

    __slots__ = ("_ids", "extents", "lines", "offsets", "records", "runs", "seq", "static")

    def __init__(
        self,
        seq: int,
        lines: list[bytes],
        records: list[Record],
        ids: list[str] | None = None,
        static: dict[str, str] | None = None,
        extents: dict[str, tuple[int, int]] | None = None,
        *,
        offsets: list[int] | None = None,
        runs: list[tuple[int, str]] | None = None,
    ) -> None:
        self.seq = seq
        self.lines = lines
        self.records = records
        self.static: dict[str, str] = static if static is not None else {}
        self.extents: dict[str, tuple[int, int]] = extents if extents is not None else {}
        self.offsets = offsets
        self.runs = runs
        self._ids = ids

    @property
    def ids(self) -> list[str]:
        """``<id_key>-<offset>`` of each line (built once, on first use)."""
        if self._ids is None:
            self._ids = build_ids(self.offsets or [], self.runs or [])
        return self._ids

    def keys_and_offsets(self) -> list[tuple[str, list[int], int]]:
        """``(id key, offsets, index of the first line)`` for each run of lines with one id
        key, without building id strings."""
        if self.offsets is not None and self.runs is not None:
            out = []
            for n, (start, key) in enumerate(self.runs):
                stop = self.runs[n + 1][0] if n + 1 < len(self.runs) else len(self.offsets)
                out.append((key, self.offsets[start:stop], start))
            return out
        res: list[tuple[str, list[int], int]] = []
        for i, ident in enumerate(self.ids):
            key, _, off = ident.rpartition("-")
            if not res or res[-1][0] != key:
                res.append((key, [], i))
            res[-1][1].append(int(off) if off.isdigit() else -1)
        return res

    def __len__(self) -> int:
        return len(self.lines)

    def __repr__(self) -> str:
        return f"Batch(seq={self.seq}, lines={len(self.lines)}, extents={self.extents!r})"

    @property
    def nbytes(self) -> int:
        return sum(map(len, self.lines))


def build_ids(offsets: list[int], runs: list[tuple[int, str]]) -> list[str]:
    """Line ids from offsets and ``(first index, id key)`` runs (see :class:`Batch`)."""
    out: list[str] = []
    for n, (start, key) in enumerate(runs):
        stop = runs[n + 1][0] if n + 1 < len(runs) else len(offsets)
        out += map((key + "-").__add__, map(str, offsets[start:stop]))
    return out


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
