"""Secrets are masked at any depth, on both paths, with configurable keys and patterns."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import orjson
from sdk_helpers import assert_valid, read_records

import obskit
from obskit.sdk.redact import MASK, Redactor


def test_default_keys_masked_at_any_depth_both_paths(sdk: Any, log_dir: Path) -> None:
    sdk()
    payload = {
        "user": "bob",
        "Authorization": "Bearer abc",
        "headers": [{"X-Api-Key": "k1"}, {"Cookie": "c"}],
        "db": {"password": "p", "host": "h", "inner": ({"access_token": "t"},)},
    }
    obskit.get_logger().info("req", password="hunter2", **payload)
    logging.getLogger("std").info("req", extra={"client_secret": "s", "payload": payload})
    obskit.bind(session_token="st")
    obskit.get_logger().info("bound")
    lines = read_records(log_dir)
    assert_valid(lines)
    text = b"\n".join(lines)
    for secret in (b"hunter2", b"Bearer abc", b"k1", b'"c"', b'"p"', b'"t"', b'"s"', b'"st"'):
        assert secret not in text
    a, b, c = map(orjson.loads, lines)
    assert a["password"] == MASK and a["user"] == "bob" and a["db"]["host"] == "h"
    assert a["headers"][0]["X-Api-Key"] == MASK and a["db"]["inner"][0]["access_token"] == MASK
    assert b["client_secret"] == MASK and b["payload"]["Authorization"] == MASK
    assert c["session_token"] == MASK
    assert payload["db"]["password"] == "p"  # the caller's data is not modified


def test_configured_keys_and_patterns(sdk: Any, log_dir: Path) -> None:
    sdk(redact_keys=["ssn"], redact_patterns=[r"^card_\d+$"])
    obskit.get_logger().info("x", ssn="1", card_1="4111", card_x="ok", password="visible")
    (line,) = read_records(log_dir)
    rec = orjson.loads(line)
    assert rec["ssn"] == MASK and rec["card_1"] == MASK
    assert rec["card_x"] == "ok" and rec["password"] == "visible"  # replaced the default list


def test_env_list_for_redaction(sdk: Any, log_dir: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("OBSKIT_REDACT_KEYS", "pin, ssn")
    sdk()
    obskit.get_logger().info("x", pin="1234", user_pin_hint="h", other="o")
    rec = orjson.loads(read_records(log_dir)[0])
    assert rec["pin"] == MASK and rec["user_pin_hint"] == MASK and rec["other"] == "o"


def test_redactor_returns_same_object_when_nothing_to_mask() -> None:
    r = Redactor(["secret"])
    data = {"a": [1, {"b": 2}]}
    assert r.nested(data) is data
    assert r.nested({"a": {"secret": 1}}) == {"a": {"secret": MASK}}
    assert not r.is_secret(3)
