"""The one duration and size parser (``obskit._durations``): the sidecar config's forms and
the trace command line's forms are one grammar."""

from __future__ import annotations

import pytest

from obskit._durations import parse_duration, parse_duration_ns, parse_size

S = 1_000_000_000


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("5s", 5),
        ("1.5s", 1.5),
        ("1m", 60),
        ("2h", 7200),
        ("1d", 86400),
        ("1w", 604800),
        ("1h30m", 5400),
        (" 1h 30m ", 5400),
        ("90", 90),  # config files: a plain number is seconds
        ("0", 0),
        (2.5, 2.5),
        (0, 0),
    ],
)
def test_config_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["", "5x", "-1s", "1h30", "s", "1.2.3s", True, -1, None])
def test_config_duration_errors_name_the_forms(bad: object) -> None:
    with pytest.raises(ValueError, match=r"duration"):
        parse_duration(bad)


def test_command_line_durations_are_exact_and_need_a_unit() -> None:
    assert parse_duration_ns("24h") == 24 * 3600 * S
    assert parse_duration_ns("1h30m") == 5400 * S
    assert parse_duration_ns("1.5s") == 1_500_000_000
    assert parse_duration_ns("1ms") == 1_000_000
    assert parse_duration_ns("7D") == 7 * 86400 * S
    for bad in ("", "24", "h", "-1h", "1y", "0s"):
        with pytest.raises(ValueError, match="use a number and a unit"):
            parse_duration_ns(bad)


def test_sizes() -> None:
    assert parse_size("64KiB") == 64 << 10
    assert parse_size("10MB") == 10 << 20
    assert parse_size("1gib") == 1 << 30
    assert parse_size(123) == 123
    with pytest.raises(ValueError, match="size"):
        parse_size("lots")
