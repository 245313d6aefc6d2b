"""The schema stage: validate each chunk with the project's validator and apply the policy
(forward / repair / quarantine) to the lines that break a rule.

The fast path does no per-line Python work beyond what ``validate_chunk`` does: a chunk of
valid lines goes through as the validator's own line list and record list.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

import msgspec
import orjson
from msgspec import UNSET

from obskit.schema import Policy, Record, Violation, check_line, validate_chunk
from obskit.schema import rules as R
from sidecar.config import Action, SchemaConfig
from sidecar.metrics import Metrics
from sidecar.source.chunk import Chunk
from sidecar.transform.quarantine import DeadLetter, guess_service, utc_now, violation_reasons
from sidecar.transform.repair import fix_level, repair_line

_PLUS_ONE = (1).__add__
_record_decoder = msgspec.json.Decoder(Record)


@dataclass(slots=True)
class Prepared:
    """Lines of one chunk ready to batch: ``offsets[i]`` is ``lines[i]``'s start in the file;
    ``end`` is where the chunk ends (the checkpoint once everything before is acknowledged);
    ``id_key`` names the lines for ids (``Chunk.id_key``; empty: ``file_key``)."""

    file_key: str
    path: str
    lines: list[bytes]
    records: list[Record]
    offsets: list[int]
    end: int
    id_key: str = ""


class SchemaStage:
    """Applies :class:`~sidecar.config.SchemaConfig` to chunks."""

    def __init__(self, cfg: SchemaConfig, dead_letter: DeadLetter, metrics: Metrics) -> None:
        self.cfg = cfg
        self.policy = Policy(max_line_bytes=int(cfg.max_line_bytes))
        self.dead = dead_letter
        self.metrics = metrics

    def action(self, rule: str) -> Action:
        act = self.cfg.rules.get(rule, self.cfg.on_invalid)
        if act == "forward" and rule in ("OBS001", "OBS002", "OBS011", "OBS012"):
            return "quarantine"
        return act

    def process(self, chunk: Chunk) -> Prepared:
        """Validate ``chunk``; quarantine what must be; return what goes to the sinks."""
        data = chunk.data
        res = validate_chunk(data, self.policy)
        lines = res.lines
        if chunk.offsets is not None:
            offsets = list(chunk.offsets)
        else:
            offsets = list(accumulate(map(_PLUS_ONE, map(len, lines)), initial=chunk.start))
            offsets.pop()
        self.metrics.read(len(lines), len(data))
        for tl in getattr(chunk, "too_long", None) or ():
            self._quarantine_too_long(chunk, tl)
        records: list[Any] = res.records
        if b"\r" in data:
            lines = [ln[:-1] if ln.endswith(b"\r") else ln for ln in lines]
        errors = [i for i, vs in res.violations.items() if any(v.severity == "error" for v in vs)]
        if not errors:
            return Prepared(
                chunk.file_key, chunk.path, lines, records, offsets, chunk.end, chunk.id_key
            )
        drop: list[int] = []
        counts: Counter[tuple[str, str | None]] = Counter()
        for i in sorted(errors):
            out = self._invalid(chunk, lines[i], offsets[i], res.violations[i], counts)
            if out is None:
                drop.append(i)
            else:
                lines[i], records[i] = out
        if counts:
            self.metrics.quarantined_many(counts)
        # Few lines are dropped: delete them in place from the end (C memmoves, no per-line
        # Python loop over the whole chunk).
        for i in sorted(drop, reverse=True):
            del lines[i], records[i], offsets[i]
        return Prepared(
            chunk.file_key, chunk.path, lines, records, offsets, chunk.end, chunk.id_key
        )

    def _invalid(
        self,
        chunk: Chunk,
        line: bytes,
        offset: int,
        violations: list[Violation],
        counts: Counter[tuple[str, str | None]],
    ) -> tuple[bytes, Record] | None:
        errors = [v for v in violations if v.severity == "error"]
        actions = {self.action(v.rule) for v in errors}
        if "quarantine" not in actions and "repair" in actions:
            fixed = repair_line(line, errors, self.cfg.service_default, self.policy)
            if fixed is not None:
                new_line, record, rules_fixed = fixed
                for rule in rules_fixed:
                    self.metrics.repaired(rule)
                return new_line, record
        elif "quarantine" not in actions:
            for v in errors:
                self.metrics.forwarded_invalid(v.rule)
            return line, self._loose_record(line)
        service = guess_service(line)
        self.dead.write(
            line,
            file=chunk.path,
            file_key=chunk.file_key,
            offset=offset,
            reasons=violation_reasons(errors),
            service=service,
        )
        rule = errors[0].rule
        counts[rule, service] += 1
        if rule not in self.metrics.totals.examples:
            self.metrics.example(rule, errors[0].format())
        return None

    def _quarantine_too_long(self, chunk: Chunk, tl: Any) -> None:
        v = Violation(
            R.LINE_TOO_LONG,
            None,
            f"line is {tl.length} bytes, more than the maximum {self.policy.max_line_bytes}; "
            "only its first bytes are kept here",
            1,
        )
        self.dead.write(
            bytes(tl.head),
            file=chunk.path,
            file_key=chunk.file_key,
            offset=tl.offset,
            reasons=violation_reasons([v]),
            line_length=tl.length,
        )
        self.metrics.quarantined(R.LINE_TOO_LONG, guess_service(bytes(tl.head)), v.format())

    def records_for(self, lines: list[bytes], data: bytes) -> list[Record]:
        """The schema fields of lines this stage let through (``data``: the lines joined by
        newlines), decoded again: for batches read back from a spool, whose records are not
        stored. Lines forwarded despite errors get their best-effort record again."""
        try:
            out: list[Record] = _record_decoder.decode_lines(data)
            if len(out) == len(lines):
                return out
        except (msgspec.DecodeError, msgspec.ValidationError):
            pass
        out = []
        for ln in lines:
            try:
                out.append(_record_decoder.decode(ln))
            except (msgspec.DecodeError, msgspec.ValidationError):
                out.append(self._loose_record(ln))
        return out

    def _loose_record(self, line: bytes) -> Record:
        """Best-effort schema fields of a line forwarded despite errors (sinks need a
        timestamp, level and service to route it); the line itself is shipped unchanged."""
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            obj = {}
        if not isinstance(obj, dict):
            obj = {}
        ts = obj.get("timestamp")
        level = fix_level(obj.get("level")) or "INFO"
        svc = obj.get("service")
        if not isinstance(svc, str) or R.check_service(svc) is not None:
            svc = self.cfg.service_default or "unknown"
        trace = obj.get("trace_id")
        msg = obj.get("message")
        return Record(
            timestamp=ts if isinstance(ts, str) and R.check_timestamp(ts) is None else utc_now(),
            level=level,  # type: ignore[arg-type]
            service=svc,
            message=msg if isinstance(msg, str) else "",
            trace_id=trace if isinstance(trace, str) and not R.check_trace_id(trace) else UNSET,
        )


def recheck(line: bytes, policy: Policy) -> list[Violation]:
    """Violations of one line (used by tests and the summary)."""
    return check_line(line, policy)[1]
