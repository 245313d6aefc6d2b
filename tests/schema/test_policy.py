"""Organisation policy: obskit.toml and [tool.obskit] in pyproject.toml."""

from __future__ import annotations

from pathlib import Path

import pytest

from obskit.schema import Policy, PolicyError, load_policy

FULL = """
max_line_bytes = 65536
allow_blank = true
required_fields = ["env", "version"]
allowed_services = ["checkout-api", "re:payments-[a-z]+"]
warn_duplicate_keys = true

[trace_coverage]
min_fraction = 0.9
min_level = "WARN"
"""

EXPECTED = Policy(
    max_line_bytes=65536,
    allow_blank=True,
    required_fields=("env", "version"),
    allowed_services=("checkout-api", "re:payments-[a-z]+"),
    trace_min_fraction=0.9,
    trace_min_level="WARN",
    warn_duplicate_keys=True,
)


def test_obskit_toml_every_key(tmp_path: Path) -> None:
    (tmp_path / "obskit.toml").write_text(FULL, encoding="utf-8")
    assert load_policy(start=tmp_path) == EXPECTED
    assert load_policy(tmp_path / "obskit.toml") == EXPECTED


def test_obskit_toml_with_bom_and_crlf(tmp_path: Path) -> None:
    p = tmp_path / "obskit.toml"
    p.write_bytes(b"\xef\xbb\xbf" + FULL.replace("\n", "\r\n").encode())
    assert load_policy(p) == EXPECTED


def test_pyproject_tool_obskit(tmp_path: Path) -> None:
    text = "[project]\nname = 'svc'\n\n[tool.obskit]\n" + FULL.replace(
        "[trace_coverage]", "[tool.obskit.trace_coverage]"
    )
    (tmp_path / "pyproject.toml").write_text(text, encoding="utf-8")
    assert load_policy(start=tmp_path) == EXPECTED
    assert load_policy(tmp_path / "pyproject.toml") == EXPECTED


def test_search_goes_upwards_and_prefers_obskit_toml(tmp_path: Path) -> None:
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    (tmp_path / "pyproject.toml").write_text("[tool.obskit]\nmax_line_bytes = 1000\n")
    assert load_policy(start=deep).max_line_bytes == 1000
    (tmp_path / "a" / "obskit.toml").write_text("max_line_bytes = 2000\n")
    assert load_policy(start=deep).max_line_bytes == 2000


def test_pyproject_without_table_is_skipped(tmp_path: Path) -> None:
    inner = tmp_path / "svc"
    inner.mkdir()
    (inner / "pyproject.toml").write_text("[project]\nname = 'svc'\n")
    (tmp_path / "obskit.toml").write_text('required_fields = ["env"]\n')
    assert load_policy(start=inner).required_fields == ("env",)


def test_no_file_means_default(tmp_path: Path) -> None:
    pol = load_policy(start=tmp_path)
    assert pol == Policy() and pol.is_default


@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        ("max_line_bytes = 'big'\n", "max_line_bytes must be an integer"),
        ("max_line_bytes = 8\n", "max_line_bytes must be at least 16"),
        ("max_line_bytes = true\n", "max_line_bytes must be an integer"),
        ("allow_blank = 'no'\n", "allow_blank must be true or false"),
        ("required_fields = 'env'\n", "required_fields must be a list of strings"),
        ("required_fields = [1]\n", "required_fields must be a list of strings"),
        ("allowed_services = 'api'\n", "allowed_services must be a list of strings"),
        ("allowed_services = ['Bad Name']\n", "'Bad Name' is not a valid service name"),
        ("allowed_services = ['re:(']\n", "bad pattern 're:('"),
        ("trace_coverage = 0.5\n", "trace_coverage must be a table"),
        ("[trace_coverage]\nmin_fraction = 1.5\n", "between 0 and 1"),
        ("[trace_coverage]\nmin_fraction = '0.5'\n", "min_fraction must be a number"),
        ("[trace_coverage]\nmin_level = 'WARNING'\n", "min_level must be one of"),
        ("[trace_coverage]\nmin_fractoin = 0.5\n", "unknown key(s) trace_coverage.min_fractoin"),
        ("max_line_byte = 1000\n", "unknown key(s) max_line_byte"),
        ("max_line_bytes = \n", "invalid TOML"),
    ],
)
def test_bad_policy_file_names_file_and_key(tmp_path: Path, toml: str, needle: str) -> None:
    p = tmp_path / "obskit.toml"
    p.write_text(toml, encoding="utf-8")
    with pytest.raises(PolicyError) as exc:
        load_policy(start=tmp_path)
    assert needle in str(exc.value)
    assert str(p) in str(exc.value)


def test_unreadable_policy_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read policy"):
        load_policy(tmp_path / "missing.toml")


def test_integer_fraction_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "obskit.toml").write_text("[trace_coverage]\nmin_fraction = 1\n")
    assert load_policy(start=tmp_path).trace_min_fraction == 1.0


def test_service_allowed() -> None:
    pol = Policy(allowed_services=("api", "re:web-[0-9]+"))
    assert pol.service_allowed("api") and pol.service_allowed("web-12")
    assert not pol.service_allowed("web-") and not pol.service_allowed("api2")
    assert Policy().service_allowed("anything")
