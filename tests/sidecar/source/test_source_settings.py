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
    with pytest.raises(msgspec.ValidationError, match="read_chunk_bytes must be larger"):
        SourceSettings(max_line_bytes=1 << 20, read_chunk_bytes=1 << 20)
    with pytest.raises(msgspec.ValidationError, match="poll_interval must be > 0"):
        msgspec.convert({"poll_interval": 0}, SourceSettings)
    s = msgspec.convert({"partial_line_timeout": None, "start_at": "end"}, SourceSettings)
    assert s.partial_line_timeout is None and s.start_at == "end"
