"""The schema stage: validate each chunk with the project's validator and apply the policy
(forward / repair / quarantine) to the lines that break a rule.

The fast path does no per-line Python work beyond what ``validate_chunk`` does: a chunk of
valid lines goes through as the validator's own line list and record list. Two things happen
only off it:

- files that ``schema.dialects`` names are converted line by line from their JSON dialect
  (:mod:`obskit.schema.dialects`) before they are validated;
- crash output between the JSON lines (a Go panic, a Python traceback...) is grouped into one
  record by :mod:`sidecar.transform.multiline`; while a group is open, the chunk's ``end``
  (its file's checkpoint) stays at the group's first line.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

import msgspec
import orjson
from msgspec import UNSET

from obskit.schema import Policy, Record, Violation, split_lines, validate_chunk, validate_lines
from obskit.schema import rules as R
from obskit.schema.dialects import Dialect, convert_lines, dialect_named
from sidecar.config import Action, SchemaConfig
from sidecar.metrics import Metrics
from sidecar.source.chunk import Chunk
from sidecar.source.paths import PathMatcher
from sidecar.transform.multiline import (
    RECORD_OVERHEAD,
    FileStatuses,
    Group,
    Held,
    Limits,
    Multiline,
    build_record,
)
from sidecar.transform.quarantine import DeadLetter, guess_service, utc_now, violation_reasons
from sidecar.transform.repair import fix_level, repair_line

_PLUS_ONE = (1).__add__
_record_decoder = msgspec.json.Decoder(Record)
#: Files remembered per file key (their plan, their last record's service); the oldest go.
_REMEMBERED = 4096


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


@dataclass(frozen=True, slots=True)
class FilePlan:
    """What the stage does with one file, decided from its name when it is first seen (so a
    file renamed by rotation keeps its plan)."""

    convert: bool = False
    #: the dialect to convert from; ``None`` with ``convert``: each line's own (``auto``)
    dialect: Dialect | None = None
    service: str | None = None
    multiline: bool = True


@dataclass(slots=True)
class _Out:
    lines: list[bytes] = field(default_factory=list)
    records: list[Any] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)


class SchemaStage:
    """Applies :class:`~sidecar.config.SchemaConfig` to chunks."""

    def __init__(self, cfg: SchemaConfig, dead_letter: DeadLetter, metrics: Metrics) -> None:
        self.cfg = cfg
        self.policy = Policy(max_line_bytes=int(cfg.max_line_bytes))
        self.dead = dead_letter
        self.metrics = metrics
        self._dialect_rules = [(PathMatcher(r.include, []), r) for r in cfg.dialects]
        ml = cfg.multiline
        self._multiline_on = ml.enabled
        self._multiline_off = PathMatcher(ml.exclude, []) if ml.exclude else None
        self.multiline = Multiline(
            Limits(
                ml.max_lines,
                min(int(ml.max_bytes), int(cfg.max_line_bytes) - RECORD_OVERHEAD),
                float(ml.max_wait),
            )
        )
        self._plans: dict[str, FilePlan] = {}
        self._services: dict[str, str] = {}
        self.clock = time.monotonic

    def action(self, rule: str) -> Action:
        act = self.cfg.rules.get(rule, self.cfg.on_invalid)
        if act == "forward" and rule in ("OBS001", "OBS002", "OBS011", "OBS012"):
            return "quarantine"
        return act

    # -- plans ------------------------------------------------------------------------------
    def plan(self, file_key: str, path: str) -> FilePlan:
        """The plan of a file, from its name the first time its key is seen."""
        plan = self._plans.get(file_key)
        if plan is None:
            plan = self._plans[file_key] = self._plan_for(os.path.basename(path))
            if len(self._plans) > _REMEMBERED:
                del self._plans[next(iter(self._plans))]
        return plan

    def _plan_for(self, name: str) -> FilePlan:
        multiline = self._multiline_on and not (
            self._multiline_off is not None and self._multiline_off(name)
        )
        for matches, rule in self._dialect_rules:
            if matches(name):
                return FilePlan(True, dialect_named(rule.dialect), rule.service, multiline)
        return FilePlan(multiline=multiline)

    # -- chunks -----------------------------------------------------------------------------
    def process(self, chunk: Chunk) -> Prepared:
        """Validate ``chunk``; quarantine what must be; return what goes to the sinks."""
        plan = self.plan(chunk.file_key, chunk.path)
        data = chunk.data
        originals: dict[int, tuple[bytes, str]] | None = None
        raw: list[bytes] | None = None
        if plan.convert:
            raw = split_lines(data)
            converted, changed, names = convert_lines(
                raw, plan.dialect, plan.service or self.cfg.service_default
            )
            res = validate_lines(converted, self.policy)
            originals = dict(
                zip(changed, zip(map(raw.__getitem__, changed), names, strict=True), strict=True)
            )
            self._count_converted(plan, res.records, changed, names)
        else:
            res = validate_chunk(data, self.policy)
        lines = res.lines
        if chunk.offsets is not None:
            offsets = list(chunk.offsets)
        else:
            # From the lines as read: a converted line is longer or shorter than its original.
            read = raw if raw is not None else lines
            offsets = list(accumulate(map(_PLUS_ONE, map(len, read)), initial=chunk.start))
            offsets.pop()
        self.metrics.read(len(lines), len(data))
        records: list[Any] = res.records
        if b"\r" in data:
            lines = [ln[:-1] if ln.endswith(b"\r") else ln for ln in lines]
        errors = [i for i, vs in res.violations.items() if any(v.severity == "error" for v in vs)]
        key = chunk.file_key
        if not errors and not chunk.too_long and key not in self.multiline.open:
            if plan.multiline and records:
                self._note_service(key, records[-1])
            return Prepared(key, chunk.path, lines, records, offsets, chunk.end, chunk.id_key)
        errors.sort()
        return self._slow(chunk, plan, lines, records, offsets, res.violations, errors, originals)

    def _slow(
        self,
        chunk: Chunk,
        plan: FilePlan,
        lines: list[bytes],
        records: list[Any],
        offsets: list[int],
        violations: dict[int, list[Violation]],
        errors: list[int],
        originals: dict[int, tuple[bytes, str]] | None,
    ) -> Prepared:
        key, path = chunk.file_key, chunk.path
        ml = self.multiline if plan.multiline else None
        out = _Out()
        counts: Counter[tuple[str, str | None]] = Counter()
        if chunk.too_long:
            self._close_group(key, out, counts, None)
        for tl in chunk.too_long:
            self._quarantine_too_long(chunk, tl)
        n = len(lines)
        prev = 0
        now = self.clock()
        for i in [*errors, n]:
            if prev < i:
                # Valid lines: they end an open group, then go through as they are.
                self._close_group(key, out, counts, records[prev])
                out.lines += lines[prev:i]
                out.records += records[prev:i]
                out.offsets += offsets[prev:i]
                if ml is not None:
                    self._note_service(key, records[i - 1])
            if i == n:
                break
            prev = i + 1
            line, offset = lines[i], offsets[i]
            if ml is not None:
                nxt = offsets[i + 1] if i + 1 < n else chunk.end
                held = Held(line, offset, violations[i])
                closed, taken = ml.feed(key, path, chunk.id_key, held, nxt, now, utc_now)
                for g in closed:
                    self._emit(g, out, counts, None)
                if taken:
                    continue
            original = originals.get(i) if originals else None
            kept = self._invalid(path, key, line, offset, violations[i], counts, original)
            if kept is not None:
                out.lines.append(kept[0])
                out.records.append(kept[1])
                out.offsets.append(offset)
        if counts:
            self.metrics.quarantined_many(counts)
        end = chunk.end
        group = self.multiline.open.get(key)
        if group is not None:
            end = group.start  # hold the checkpoint at the open crash's first line
        return Prepared(key, path, out.lines, out.records, out.offsets, end, chunk.id_key)

    # -- dialects ---------------------------------------------------------------------------
    def _count_converted(
        self, plan: FilePlan, records: list[Any], changed: list[int], names: list[str]
    ) -> None:
        # Counted when the converted line passes: a failed one is quarantined instead.
        passed = list(map(records.__getitem__, changed))
        if plan.dialect is not None:  # one dialect: count in C
            n = len(passed) - passed.count(None)
            if n:
                self.metrics.converted(plan.dialect.name, n)
            return
        done = Counter(name for name, rec in zip(names, passed, strict=True) if rec is not None)
        for name, n in done.items():
            self.metrics.converted(name, n)

    # -- multi-line crash groups ------------------------------------------------------------
    def flush_due(self, now: float, files: FileStatuses, final: bool = False) -> list[Prepared]:
        """Crash groups that are complete (quiet for ``schema.multiline.max_wait`` with their
        file read to its end, or their file no longer followed), as prepared lines; all open
        groups when ``final`` (shutdown). The engine calls this every loop."""
        if not self.multiline.open:
            return []
        out = []
        for g in self.multiline.due(now, files, final):
            o = _Out()
            counts: Counter[tuple[str, str | None]] = Counter()
            self._emit(g, o, counts, None)
            if counts:
                self.metrics.quarantined_many(counts)
            out.append(Prepared(g.file_key, g.path, o.lines, o.records, o.offsets, g.end, g.id_key))
        return out

    def _close_group(
        self, key: str, out: _Out, counts: Counter[tuple[str, str | None]], after: Any
    ) -> None:
        if self.multiline.open:
            g = self.multiline.close(key)
            if g is not None:
                self._emit(g, out, counts, after)

    def _emit(
        self, g: Group, out: _Out, counts: Counter[tuple[str, str | None]], after: Any
    ) -> None:
        """A closed group as one record, or its lines quarantined when it never showed its
        shape (or its record would not pass the validator)."""
        if g.confirmed:
            built = build_record(g, self._service_for(g, after), self.policy)
            if built is not None:
                out.lines.append(built[0])
                out.records.append(built[1])
                out.offsets.append(g.start)
                self.metrics.repaired("multiline")
                self.metrics.grouped(len(g.held))
                return
        for h in g.held:
            kept = self._invalid(g.path, g.file_key, h.line, h.offset, h.violations, counts)
            if kept is not None:
                out.lines.append(kept[0])
                out.records.append(kept[1])
                out.offsets.append(h.offset)

    def _service_for(self, g: Group, after: Any) -> str:
        # What the file says wins over configuration: its last record before the crash, or
        # the one right after it; then the dialect rule's service, service_default, unknown.
        known = self._services.get(g.file_key)
        if known:
            return known
        if isinstance(after, Record):
            return after.service
        plan = self._plans.get(g.file_key)
        return (plan.service if plan else None) or self.cfg.service_default or "unknown"

    def _note_service(self, key: str, record: Any) -> None:
        if record is not None:
            self._services[key] = record.service
            if len(self._services) > _REMEMBERED:
                del self._services[next(iter(self._services))]

    # -- invalid lines ----------------------------------------------------------------------
    def _invalid(
        self,
        path: str,
        file_key: str,
        line: bytes,
        offset: int,
        violations: list[Violation],
        counts: Counter[tuple[str, str | None]],
        original: tuple[bytes, str] | None = None,
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
        if original is not None:
            # A converted line: keep what the service wrote, with the reasons its conversion
            # still failed.
            line, dialect = original
            note = f" (after conversion from {dialect})"
            errors = [msgspec.structs.replace(v, message=v.message + note) for v in errors]
        service = guess_service(line)
        self.dead.write(
            line,
            file=path,
            file_key=file_key,
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
