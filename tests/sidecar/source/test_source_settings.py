"""SourceSettings: defaults per platform, strict fields, validation messages."""

from __future__ import annotations

import sys

import msgspec
import pytest

from sidecar.source.paths import PathMatcher
from sidecar.source.settings import SourceSettings


def test_default_folder_per_platform(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "win32")
    assert SourceSettings().path == "C:\\app\\logs"
    monkeypatch.setattr(sys, "platform", "linux")
    assert SourceSettings().path == "/app/logs"


def test_defaults_pick_up_rotations_but_not_archives() -> None:
    s = SourceSettings()
    m = PathMatcher(s.include, s.exclude)
    for name in [
        "app.log",
        "checkout.20261125T203000Z.4242.0001.log",
        "app.log.1",
        "app.log.12",
        "app.log.2026-11-25",
    ]:
        assert m(name), name
    for name in ["app.log.1.gz", "app.log.gz", "notes.txt", "app.log.tmp", "app.logx"]:
        assert not m(name), name


def test_windows_matching_is_case_insensitive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "win32")
    m = PathMatcher(["*.log"], ["*.GZ"])
    assert m("APP.LOG") and not m("x.log.gz".upper())


def test_unknown_fields_and_bad_values_are_rejected() -> None:
    with pytest.raises(msgspec.ValidationError, match="unknown field `poll`"):
        msgspec.convert({"poll": 1}, SourceSettings)
    with pytest.raises(msgspec.ValidationError, match="start_at"):
        msgspec.convert({"start_at": "middle"}, SourceSettings)
    with pytest.raises(msgspec.ValidationError, match="read_chunk_bytes: must be larger"):
        SourceSettings(max_line_bytes=1 << 20, read_chunk_bytes=1 << 20)
    with pytest.raises(msgspec.ValidationError, match="poll_interval: must be > 0"):
        msgspec.convert({"poll_interval": 0}, SourceSettings)
    s = msgspec.convert({"partial_line_timeout": None, "start_at": "end"}, SourceSettings)
    assert s.partial_line_timeout is None and s.start_at == "end"


def test_patterns_with_a_slash_match_the_relative_path_others_the_name() -> None:
    """As in .gitignore: ``*.log`` matches a name at any depth; ``checkout/*.log`` and
    ``archive/**`` match the path relative to the folder, ``*`` within one folder, ``**``
    across folders (Vector's, Filebeat's and Fluent Bit's path globs)."""
    m = PathMatcher(["*.log", "*.log.[0-9]*"], ["archive/**", "*.gz"])
    assert m("a.log", "a.log") and m("a.log", "svc/deep/a.log") and m("a.log.1", "x/a.log.1")
    assert not m("a.log", "archive/a.log") and not m("a.log", "archive/old/a.log")
    assert not m("a.log.1.gz", "x/a.log.1.gz")
    only = PathMatcher(["checkout/*.log", "**/payments/*.log"], [])
    assert only("a.log", "checkout/a.log") and only("p.log", "x/y/payments/p.log")
    assert only("p.log", "payments/p.log")  # "**/" also matches no folder
    assert not only("a.log", "checkout/old/a.log")  # "*" stays within one folder
    assert not only("a.log", "a.log") and not only("a.log", "other/checkout/a.log")
    assert PathMatcher(["[!x]*.log"], [])("a.log") and not PathMatcher(["[!x]*.log"], [])("x.log")


def test_windows_relative_patterns_accept_backslashes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "win32")
    m = PathMatcher(["Checkout\\*.LOG"], [])
    assert m("a.log", "checkout/a.log") and not m("a.log", "a.log")
