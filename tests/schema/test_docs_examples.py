"""docs/schema.md shows, per rule, a failing line and the exact error: keep them true."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from obskit.schema import RULES, Policy, check_line

DOC = Path(__file__).resolve().parents[2] / "docs" / "schema.md"
POLICY = {
    "OBS020": Policy(required_fields=("env",)),
    "OBS021": Policy(allowed_services=("checkout-api", "re:payments-[a-z]+")),
    "OBS101": Policy(warn_duplicate_keys=True),
}


def _sections() -> dict[str, list[str]]:
    text = DOC.read_text(encoding="utf-8")
    out = {}
    for m in re.finditer(
        r"^### (OBS\d{3}) .*?\{#(obs\d{3})\}\n(.*?)(?=^### |^## )", text, re.M | re.S
    ):
        assert m.group(1).lower() == m.group(2)
        out[m.group(1)] = re.findall(r"```text\n(.*?)\n```", m.group(3), re.S)
    return out


SECTIONS = _sections()


def test_every_rule_has_a_section() -> None:
    assert set(SECTIONS) == set(RULES)


@pytest.mark.parametrize("rule", sorted(r for r, b in SECTIONS.items() if len(b) == 2))
def test_example_line_gives_the_documented_error(rule: str) -> None:
    raw, printed = SECTIONS[rule]
    _, viol = check_line(raw.encode("utf-8"), POLICY.get(rule, Policy()))
    got = [
        f"app.log:1:{v.column or 1}: {v.format()}" + ("" if v.severity == "error" else " (warning)")
        for v in viol
    ]
    assert got == [printed]
