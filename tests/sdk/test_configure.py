"""configure(): env defaults, idempotence, stdout-only mode, unusable folders, shutdown."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from pathlib import Path, PureWindowsPath
from typing import Any

import orjson
import pytest
from sdk_helpers import assert_valid, read_records

import obskit
from obskit.schema import validate_line
from obskit.sdk.queue import AsyncWriter
from obskit.sdk.segments import SegmentWriter
from obskit.sdk.settings import default_log_dir, resolve


def test_env_vars_are_the_defaults(sdk: Any, tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("OBSKIT_SERVICE", "from-env")
    monkeypatch.setenv("OBSKIT_LEVEL", "warning")
    monkeypatch.setenv("OBSKIT_LOG_DIR", str(tmp_path / "envlogs"))
    settings = obskit.configure()
    assert settings.service == "from-env" and settings.level == "WARN"
    obskit.get_logger().info("filtered")
    logging.getLogger("e").warning("kept")
    (line,) = read_records(tmp_path / "envlogs")
    assert orjson.loads(line)["service"] == "from-env"
    # explicit arguments win over the environment
    assert obskit.configure(service="explicit", log_dir=tmp_path / "x").service == "explicit"


def test_bad_options_are_clear_errors() -> None:
    with pytest.raises(obskit.ConfigError, match="OBSKIT_LEVEL = 'loud'"):
        resolve(env={"OBSKIT_LEVEL": "loud"})
    with pytest.raises(obskit.ConfigError, match="must be lower-case"):
        resolve(env={}, service="Orders")
    with pytest.raises(obskit.ConfigError, match="unknown option"):
        resolve(env={}, colour=True)
    with pytest.raises(obskit.ConfigError, match="OBSKIT_MAX_BYTES"):
        resolve(env={"OBSKIT_MAX_BYTES": "-1"})
    with pytest.raises(obskit.ConfigError, match="nowhere"):
        obskit.configure(service="s", log_dir=None, stdout=False)
    assert resolve(env={"OBSKIT_LOG_DIR": "none"}).log_dir is None
    assert resolve(env={}).log_dir == default_log_dir()


def test_default_folder_per_platform(monkeypatch: Any) -> None:
    monkeypatch.setattr(sys, "platform", "win32")
    assert PureWindowsPath(str(default_log_dir())) == PureWindowsPath("C:/app/logs")
    monkeypatch.setattr(sys, "platform", "linux")
    assert default_log_dir().as_posix() == "/app/logs"


def test_configure_twice_is_idempotent(sdk: Any, log_dir: Path) -> None:
    sdk()
    obskit.get_logger().info("one")
    assert obskit.flush()
    seg = obskit.stats()["segment"]
    sdk()
    logging.getLogger().info("two")
    assert obskit.flush()
    assert obskit.stats()["segment"] == seg is not None
    assert (
        len(logging.getLogger().handlers)
        == sum(1 for h in logging.getLogger().handlers if not isinstance(h, obskit.ObskitHandler))
        + 1
    )
    assert len(read_records(log_dir)) == 2


def test_reconfigure_switches_existing_loggers(sdk: Any, tmp_path: Path) -> None:
    sdk(service="first", log_dir=tmp_path / "a")
    log = obskit.get_logger("cached")
    log.info("one")
    sdk(service="second", log_dir=tmp_path / "b")
    log.info("two")
    (a,) = read_records(tmp_path / "a")
    (b,) = read_records(tmp_path / "b")
    assert orjson.loads(a)["service"] == "first" and orjson.loads(b)["service"] == "second"


def test_stdout_only_when_log_dir_none(sdk: Any, capfd: Any) -> None:
    sdk(service="obskit-sidecar", stdout=True, log_dir=None)
    obskit.get_logger().info("to stdout")
    logging.getLogger("x").warning("also")
    obskit.flush()
    out = capfd.readouterr().out.encode().splitlines()
    assert [orjson.loads(x)["message"] for x in out] == ["to stdout", "also"]
    assert_valid(out)
    assert obskit.stats()["segment"] is None


def test_unwritable_folder_falls_back_to_stdout(sdk: Any, tmp_path: Path, capfd: Any) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    sdk(log_dir=blocker / "logs")
    obskit.get_logger().info("still logged")
    obskit.flush()
    cap = capfd.readouterr()
    assert "cannot create log folder" in cap.err and str(blocker / "logs") in cap.err
    (line,) = cap.out.encode().splitlines()
    assert validate_line(line) == []


def test_write_failure_later_falls_back_to_stdout(tmp_path: Path, capfd: Any) -> None:
    class FullDisk(SegmentWriter):
        def write(self, data: bytes) -> None:
            raise OSError(28, "No space left on device")

    writer = AsyncWriter(FullDisk(tmp_path, "svc"), stdout=False)
    writer.put(b'{"a":1}')
    writer.put(b'{"a":2}')
    assert writer.flush(5)
    writer.close()
    cap = capfd.readouterr()
    assert "No space left on device" in cap.err and cap.err.count("obskit:") == 1
    assert cap.out.splitlines() == ['{"a":1}', '{"a":2}']
    assert writer.stats()["write_errors"] == 1


def test_full_queue_drops_newest_and_counts(tmp_path: Path) -> None:
    gate = threading.Event()
    busy = threading.Event()

    class Slow(SegmentWriter):
        def write(self, data: bytes) -> None:
            busy.set()
            assert gate.wait(10)
            super().write(data)

    writer = AsyncWriter(Slow(tmp_path, "svc"), stdout=False, queue_size=10)
    writer.put(b"0")  # taken by the writer thread, which then blocks in write()
    assert busy.wait(10)
    for i in range(1, 30):
        writer.put(str(i).encode())
    assert writer.stats()["dropped"] == 19
    gate.set()
    assert writer.flush(5)
    writer.close()
    data = b"".join(p.read_bytes() for p in sorted(tmp_path.glob("*.log")))
    assert data.split() == [str(i).encode() for i in range(11)]  # the newest were dropped


def test_logging_after_shutdown_still_written(sdk: Any, log_dir: Path) -> None:
    sdk()
    obskit.get_logger().info("before")
    obskit.shutdown()
    obskit.get_logger().info("after")
    lines = read_records(log_dir)
    assert [orjson.loads(x)["message"] for x in lines] == ["before", "after"]


def test_atexit_flushes_without_explicit_shutdown(tmp_path: Path) -> None:
    code = (
        "import obskit, sys\n"
        "obskit.configure(service='bye', log_dir=sys.argv[1], flush_interval=60)\n"
        "log = obskit.get_logger()\n"
        "[log.info('line', i=i) for i in range(5000)]\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OBSKIT_")}
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, timeout=60, env=env)
    lines = b"".join(p.read_bytes() for p in tmp_path.glob("*.log")).splitlines()
    assert len(lines) == 5000
    assert_valid(lines[:10])


def test_import_obskit_is_cheap() -> None:
    code = (
        "import sys, obskit, obskit.schema\n"
        "heavy = ('structlog', 'opentelemetry', 'pythonjsonlogger')\n"
        "heavy = [m for m in heavy if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "obskit.configure  # first use imports the SDK\n"
        "assert 'structlog' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_uncaught_exceptions_are_logged(tmp_path: Path) -> None:
    code = (
        "import threading, obskit, sys\n"
        "obskit.configure(service='crashy', log_dir=sys.argv[1])\n"
        "t = threading.Thread(target=lambda: 1 / 0, name='worker-1'); t.start(); t.join()\n"
        "raise KeyError('gone')\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OBSKIT_")}
    res = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, timeout=60, env=env
    )
    assert res.returncode == 1 and b"KeyError" in res.stderr  # the usual behaviour stays
    lines = b"".join(p.read_bytes() for p in tmp_path.glob("*.log")).splitlines()
    assert_valid(lines)
    thread_rec, main_rec = map(orjson.loads, lines)
    assert thread_rec["error.type"] == "ZeroDivisionError"
    assert thread_rec["thread_name"] == "worker-1"
    assert main_rec["error.type"] == "KeyError" and main_rec["message"] == "uncaught exception"


def test_root_handlers_replaced_unless_kept(sdk: Any, log_dir: Path) -> None:
    root = logging.getLogger()
    stray = logging.StreamHandler()
    root.addHandler(stray)
    sdk()
    assert stray not in root.handlers
    root.addHandler(stray)
    sdk(keep_handlers=True, service="other")
    assert stray in root.handlers
    root.removeHandler(stray)


def test_warnings_become_records(sdk: Any, log_dir: Path) -> None:
    import warnings

    sdk()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("old api", DeprecationWarning, stacklevel=1)
    (rec,) = [orjson.loads(x) for x in read_records(log_dir)]
    assert rec["level"] == "WARN" and rec["logger"] == "py.warnings"
    assert "old api" in rec["message"]


def test_raising_the_level_applies_to_cached_loggers(sdk: Any, log_dir: Path) -> None:
    sdk(level="DEBUG")
    log = obskit.get_logger("cached")
    log.debug("kept")  # caches the DEBUG-filtering logger
    sdk(level="WARN")
    log.info("dropped now")
    log.warning("kept too")
    assert [orjson.loads(x)["message"] for x in read_records(log_dir)] == ["kept", "kept too"]
