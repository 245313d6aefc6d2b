"""Both paths (structlog and stdlib) write the same schema v1 fields; checked on real files."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from pathlib import Path
from typing import Any

import orjson
import structlog
from sdk_helpers import assert_valid, read_records

import obskit
from obskit.schema import timestamp_ns


def _records(folder: Path) -> list[dict[str, Any]]:
    lines = read_records(folder)
    assert_valid(lines)
    return [orjson.loads(line) for line in lines]


def test_structlog_and_stdlib_share_fields(sdk: Any, log_dir: Path) -> None:
    sdk(level="DEBUG")
    obskit.get_logger("app.orders").info("order placed", order_id=42)
    logging.getLogger("app.orders").info("order placed", extra={"order_id": 42})
    a, b = _records(log_dir)
    assert (
        list(a)
        == list(b)
        == [
            "timestamp",
            "level",
            "service",
            "message",
            "logger",
            "order_id",
        ]
    )
    for rec in (a, b):
        assert rec["level"] == "INFO"
        assert rec["service"] == "test-svc"
        assert rec["message"] == "order placed"
        assert rec["logger"] == "app.orders"
        assert rec["order_id"] == 42
        assert rec["timestamp"].endswith("Z") and len(rec["timestamp"]) == 27
        age = dt.datetime.now(dt.timezone.utc).timestamp() * 1e9 - timestamp_ns(rec["timestamp"])
        assert 0 <= age < 60e9


def test_plain_structlog_get_logger_is_configured(sdk: Any, log_dir: Path) -> None:
    sdk()
    structlog.get_logger().info("plain", n=1)
    (rec,) = _records(log_dir)
    assert rec["message"] == "plain" and "logger" not in rec


def test_level_mapping_keeps_original_name(sdk: Any, log_dir: Path) -> None:
    sdk(level="DEBUG")
    log = obskit.get_logger("x")
    log.debug("d")
    log.warning("w")
    log.critical("c")
    std = logging.getLogger("y")
    std.warning("w")
    std.critical("c")
    logging.addLevelName(5, "TRACE")
    std.setLevel(1)
    std.log(5, "t")
    recs = _records(log_dir)
    got = [(r["level"], r.get("level_name")) for r in recs]
    assert got == [
        ("DEBUG", None),
        ("WARN", None),
        ("ERROR", "CRITICAL"),
        ("WARN", None),
        ("ERROR", "CRITICAL"),
        ("DEBUG", "TRACE"),
    ]


def test_level_filter(sdk: Any, log_dir: Path) -> None:
    sdk(level="WARN")
    obskit.get_logger().info("hidden")
    logging.getLogger("z").info("hidden")
    obskit.get_logger().warning("shown")
    logging.getLogger("z").error("shown")
    assert [r["message"] for r in _records(log_dir)] == ["shown", "shown"]


def test_exception_fields_on_one_line(sdk: Any, log_dir: Path) -> None:
    sdk()

    class PaymentError(Exception):
        pass

    try:
        raise PaymentError("card declined\nsecond line")
    except PaymentError:
        obskit.get_logger("p").exception("payment failed")
        logging.getLogger("p").exception("payment failed")
    lines = read_records(log_dir)
    assert len(lines) == 2
    for rec in map(orjson.loads, lines):
        assert rec["level"] == "ERROR"
        assert rec["error.type"].endswith("PaymentError")
        assert rec["error.message"] == "card declined\nsecond line"
        assert "Traceback (most recent call last)" in rec["error.stack"]
        assert "raise PaymentError" in rec["error.stack"]
    assert_valid(lines)


def test_user_fields_named_like_schema_fields_are_renamed(sdk: Any, log_dir: Path) -> None:
    sdk()
    obskit.get_logger().info("x", level=3, service="other", timestamp=1, trace_id="nope")
    logging.getLogger("s").info("x", extra={"service": "other", "level_name": "L"})
    with obskit.bound(span_id="bad", logger="mine"):
        obskit.get_logger().info("y")
    a, b, c = _records(log_dir)
    assert a["level"] == "INFO" and a["ctx_level"] == 3
    assert a["service"] == "test-svc" and a["ctx_service"] == "other"
    assert a["ctx_timestamp"] == 1 and a["ctx_trace_id"] == "nope" and "trace_id" not in a
    assert b["ctx_service"] == "other" and b["ctx_level_name"] == "L"
    assert c["ctx_span_id"] == "bad" and c["ctx_logger"] == "mine" and "span_id" not in c


def test_unserialisable_values_never_raise(sdk: Any, log_dir: Path) -> None:
    sdk()

    class Weird:
        def __repr__(self) -> str:
            return "<Weird>"

    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    cyclic: list[Any] = []
    cyclic.append(cyclic)
    log = obskit.get_logger()
    log.info("a", obj=Weird(), big=2**100, tags={"x"}, broken=Broken(), keys={1: "one"})
    log.info("lone \ud800 surrogate", cyc=cyclic)
    logging.getLogger("b").info("%s", Weird(), extra={"when": dt.date(2024, 1, 2)})
    bad = logging.LogRecord("b", logging.INFO, __file__, 1, "bad %d format", ("x",), None)
    obskit.ObskitHandler().handle(bad)  # pytest's own capture handler would raise here
    a, b, c, d = _records(log_dir)
    assert a["obj"] == "<Weird>" and a["big"] == str(2**100) and a["tags"] == ["x"]
    assert a["broken"] == "<unrepresentable Broken>" and a["keys"] == {"1": "one"}
    assert "surrogate" in b["message"]
    assert c["message"] == "<Weird>" and c["when"] == "2024-01-02"
    assert "bad %d format" in d["message"]


def test_dict_message_on_stdlib_path(sdk: Any, log_dir: Path) -> None:
    sdk()
    logging.getLogger("d").info({"event_kind": "audit", "password": "p"})
    (rec,) = _records(log_dir)
    assert rec["message"] == "" and rec["event_kind"] == "audit"
    assert rec["password"] == "[REDACTED]"


def test_too_long_line_is_shrunk_not_dropped(sdk: Any, log_dir: Path) -> None:
    sdk(max_line_bytes=20_000)
    obskit.get_logger().info("big " + "x" * 50_000, blob=["y" * 1000] * 100)
    (rec,) = _records(log_dir)
    assert rec["truncated"] is True and rec["message"].startswith("big xxx")


def test_bound_context_is_per_thread_and_restored(sdk: Any, log_dir: Path) -> None:
    sdk()
    log = obskit.get_logger()
    obskit.bind(tenant="acme")
    seen: list[dict[str, Any]] = []

    def worker() -> None:
        seen.append(obskit.get_bound())
        obskit.bind(tenant="other-thread")
        log.info("in thread")

    t = threading.Thread(target=worker)
    t.start()
    t.join(5)
    with obskit.bound(request_id="r-1", tenant="inner"):
        log.info("inside")
    log.info("after", tenant="call-wins")
    obskit.unbind("tenant")
    log.info("unbound")
    recs = _records(log_dir)
    assert seen == [{}]  # a plain new thread starts with an empty context
    by_msg = {r["message"]: r for r in recs}
    assert by_msg["in thread"]["tenant"] == "other-thread"
    assert by_msg["inside"]["request_id"] == "r-1" and by_msg["inside"]["tenant"] == "inner"
    assert by_msg["after"]["tenant"] == "call-wins" and "request_id" not in by_msg["after"]
    assert "tenant" not in by_msg["unbound"]


def test_bound_logger_fields_and_positional_args(sdk: Any, log_dir: Path) -> None:
    sdk()
    log = obskit.get_logger("b").bind(user="u1")
    log.info("hello %s", "world", n=1)
    (rec,) = _records(log_dir)
    assert rec["message"] == "hello world" and rec["user"] == "u1" and rec["n"] == 1


def test_asyncio_tasks_have_their_own_context(sdk: Any, log_dir: Path) -> None:
    import asyncio

    sdk()
    log = obskit.get_logger("aio")

    async def handle(request_id: str) -> None:
        with obskit.bound(request_id=request_id):
            await asyncio.sleep(0.01)  # the other task runs meanwhile
            log.info("done")

    async def main() -> None:
        await asyncio.gather(handle("a"), handle("b"))

    asyncio.run(main())
    recs = _records(log_dir)
    assert sorted(r["request_id"] for r in recs) == ["a", "b"]


def test_stdout_and_file_together(sdk: Any, log_dir: Path, capfd: Any) -> None:
    sdk(stdout=True)
    obskit.get_logger().info("both")
    (line,) = read_records(log_dir)
    assert capfd.readouterr().out.encode().splitlines() == [line]


def test_handler_filters_apply(sdk: Any, log_dir: Path) -> None:
    sdk()
    handler = next(h for h in logging.getLogger().handlers if isinstance(h, obskit.ObskitHandler))
    handler.addFilter(lambda rec: rec.name != "noisy")
    logging.getLogger("noisy").info("dropped")
    logging.getLogger("quiet").info("kept")
    assert [r["logger"] for r in _records(log_dir)] == ["quiet"]
