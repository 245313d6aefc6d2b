"""Hints on violations for lines that are not schema v1 but something known: a line valid in
a JSON dialect (:mod:`obskit.schema.dialects`) or the first line of crash output
(:mod:`obskit.schema.crash`). ``obskit validate`` shows them; they never change a verdict.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Final

import msgspec

from obskit.schema import rules
from obskit.schema.crash import crash_start, looks_json, validate_hint
from obskit.schema.dialects import convert_line, dialect_named, hint
from obskit.schema.policy import Policy
from obskit.schema.precise import DEFAULT_POLICY, check_line
from obskit.schema.violation import Violation

if TYPE_CHECKING:
    from obskit.schema.stream import LineReport

# A cheap screen before decoding a line: a key some dialect uses for its time or message.
_DIALECT_KEYS: Final = re.compile(
    rb'"(?:time|ts|@t|@timestamp|asctime|msg|@m|@mt|event|levelname|log\.level)"'
)


class Hinter:
    """Adds a hint to the first error of a line that looks like a known dialect or crash.

    ``dialect``: ``None`` (no ``--dialect``): only the first such line of a file gets the
    dialect hint; ``auto`` or a dialect name: every line valid in that dialect does. A crash's
    first line always gets its hint. ``path`` names the file in the suggested sidecar rule.
    """

    def __init__(self, dialect: str | None, path: str, policy: Policy = DEFAULT_POLICY) -> None:
        self.every = dialect is not None
        self.dialect = dialect_named(dialect) if dialect is not None else None
        self.path = path
        self.policy = policy
        self.hinted = False

    def annotate_all(self, reports: Iterable[LineReport]) -> Iterator[LineReport]:
        """``reports`` of one file, in order, with hints added where they apply (a report
        carries its line when the line is not a schema v1 record)."""
        for rep in reports:
            if rep.raw is not None:
                rep.violations = self.annotate(rep.raw, rep.violations)
            yield rep

    def annotate(self, line: bytes, violations: list[Violation]) -> list[Violation]:
        """``violations`` with the hint appended to the first error's message, if any."""
        first = next((v for v in violations if v.severity == "error"), None)
        if first is None:
            return violations
        line = line.removesuffix(b"\r")
        text: str | None = None
        if looks_json(line):
            if (self.every or not self.hinted) and _DIALECT_KEYS.search(line):
                text = self._dialect(line)
                self.hinted = self.hinted or text is not None
        else:
            shape = crash_start(line)
            if shape is not None:
                text = validate_hint(shape)
        if text is None:
            return violations
        i = violations.index(first)
        hinted = msgspec.structs.replace(first, message=f"{first.message}; {text}")
        return [*violations[:i], hinted, *violations[i + 1 :]]

    def _dialect(self, line: bytes) -> str | None:
        got = convert_line(line, self.dialect, explain=True)
        if got is None:
            return None
        out, conv, d = got
        assert conv is not None  # explain=True
        _, found = check_line(out, self.policy)
        errors = [v for v in found if v.severity == "error"]
        # A missing service is fine: the sidecar's rule (or service_default) supplies it.
        missing = [v for v in errors if v.rule == rules.MISSING and v.field == "service"]
        if len(errors) > len(missing):
            return None
        if missing:
            conv.added.append("service")
        return hint(conv, d, self.path)
