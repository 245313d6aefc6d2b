"""``obskit.configure()``: one call for structlog and the stdlib root logger."""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
from typing import Any

import structlog

from obskit.sdk.hub import HUB
from obskit.sdk.processors import ObskitLoggerFactory, StructlogRenderer
from obskit.sdk.queue import AsyncWriter
from obskit.sdk.redact import Redactor
from obskit.sdk.render import Renderer
from obskit.sdk.segments import SegmentWriter
from obskit.sdk.settings import UNSET, ConfigError, Settings, resolve
from obskit.sdk.stdlib_formatter import ObskitHandler

_LEVELNO = {
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARN": logging.WARNING,
    "ERROR": logging.ERROR,
    "CRITICAL": logging.CRITICAL,
}
_lock = threading.RLock()
_current: Settings | None = None
_handler: ObskitHandler | None = None
_hooks_installed = False


def configure(
    service: Any = UNSET,
    level: Any = UNSET,
    log_dir: Any = UNSET,
    stdout: Any = UNSET,
    **options: Any,
) -> Settings:
    """Configure structlog and the stdlib root logger to write schema v1 lines.

    Every argument not given comes from its ``OBSKIT_*`` environment variable, then the
    default (see docs/sdk.md). ``log_dir=None`` with ``stdout=True`` writes to stdout only.
    Calling again with the same settings does nothing; with different settings it switches
    every existing logger to the new ones. Returns the resolved :class:`Settings`.

    Raises :class:`ConfigError` for an invalid option; an unusable log folder is reported
    on stderr and logging continues on stdout (the service never crashes for its logs).
    """
    global _current
    settings = resolve(service=service, level=level, log_dir=log_dir, stdout=stdout, **options)
    if settings.log_dir is None and not settings.stdout:
        raise ConfigError("obskit: log_dir=None and stdout=False leave nowhere to write logs")
    with _lock:
        if settings == _current and HUB.writer is not None:
            return settings
        segments = None
        to_stdout = settings.stdout
        if settings.log_dir is not None:
            seg = SegmentWriter(
                settings.log_dir,
                settings.service,
                max_bytes=settings.max_bytes,
                rotate_seconds=settings.rotate_seconds,
                keep_segments=settings.keep_segments,
                keep_bytes=settings.keep_bytes,
            )
            try:
                seg.ensure_folder()
                segments = seg
            except OSError as exc:
                sys.stderr.write(f"obskit: {exc}; logging to stdout instead\n")
                to_stdout = True
        writer = AsyncWriter(
            segments,
            to_stdout,
            queue_size=settings.queue_size,
            flush_interval=settings.flush_interval,
        )
        renderer = Renderer(
            settings.service,
            Redactor(settings.redact_keys, settings.redact_patterns),
            settings.max_line_bytes,
            _LEVELNO[settings.level],
        )
        old = HUB.writer
        HUB.renderer = renderer
        HUB.writer = writer
        if old is not None:
            old.close()
        _configure_structlog(settings)
        _configure_stdlib(settings)
        _install_hooks()
        _install_excepthooks(settings.capture_exceptions)
        _current = settings
    return settings


def _configure_structlog(settings: Settings) -> None:
    structlog.configure(
        processors=[StructlogRenderer(HUB)],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELNO[settings.level]),
        logger_factory=ObskitLoggerFactory(HUB),
        context_class=dict,
        cache_logger_on_first_use=True,
    )


def _configure_stdlib(settings: Settings) -> None:
    global _handler
    root = logging.getLogger()
    for h in list(root.handlers):
        if h is _handler or isinstance(h, ObskitHandler):
            root.removeHandler(h)
        elif not settings.keep_handlers and not type(h).__module__.startswith("_pytest"):
            # Anything else on the root logger would print non-schema lines; pytest's capture
            # handlers stay so caplog keeps working in tests.
            root.removeHandler(h)
    _handler = ObskitHandler(hub=HUB)
    root.addHandler(_handler)
    root.setLevel(_LEVELNO[settings.level])
    logging.captureWarnings(settings.capture_warnings)


def _install_hooks() -> None:
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    atexit.register(shutdown)
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_in_child)


_prev_excepthook: Any = None
_prev_thread_excepthook: Any = None


def _install_excepthooks(enabled: bool) -> None:
    """Log uncaught exceptions (main thread and other threads) as ERROR records, then call
    the previous hook so the usual traceback on stderr and exit status are unchanged."""
    global _prev_excepthook, _prev_thread_excepthook
    if enabled and _prev_excepthook is None:
        _prev_excepthook = sys.excepthook
        _prev_thread_excepthook = threading.excepthook
        sys.excepthook = _excepthook
        threading.excepthook = _thread_excepthook
    elif not enabled and _prev_excepthook is not None:
        sys.excepthook = _prev_excepthook
        threading.excepthook = _prev_thread_excepthook
        _prev_excepthook = _prev_thread_excepthook = None


def _excepthook(etype: Any, value: Any, tb: Any) -> None:
    if not issubclass(etype, KeyboardInterrupt):
        logging.getLogger("obskit.uncaught").error(
            "uncaught exception", exc_info=(etype, value, tb)
        )
        flush(2.0)
    (_prev_excepthook or sys.__excepthook__)(etype, value, tb)


def _thread_excepthook(args: Any) -> None:
    if args.exc_type is not SystemExit:
        logging.getLogger("obskit.uncaught").error(
            "uncaught exception in thread",
            exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
            extra={"thread_name": getattr(args.thread, "name", None)},
        )
    (_prev_thread_excepthook or threading.__excepthook__)(args)


def _after_fork_in_child() -> None:
    # A gunicorn worker (or any fork) gets its own writer thread and its own segment file.
    writer = HUB.writer
    if writer is not None:
        writer.reset_after_fork()


def get_logger(name: str | None = None, **initial: Any) -> Any:
    """A structlog logger (``name`` becomes the ``logger`` field); same as
    ``structlog.get_logger(name)`` once :func:`configure` ran."""
    if name is None:
        return structlog.get_logger(**initial)
    return structlog.get_logger(name, **initial)


def flush(timeout: float = 5.0) -> bool:
    """Wait until every queued line is written; ``False`` if ``timeout`` passed first."""
    writer = HUB.writer
    return True if writer is None else writer.flush(timeout)


def shutdown(timeout: float = 5.0) -> None:
    """Flush and close the log file (registered with :mod:`atexit`).

    Logging after shutdown still works: lines are written synchronously.
    """
    writer = HUB.writer
    if writer is not None:
        writer.close(timeout)


def stats() -> dict[str, Any]:
    """Counters of the current writer: ``enqueued``, ``written``, ``dropped`` (queue full),
    ``queued``, ``write_errors``, ``segment`` (current file), ``rotations``,
    ``segments_deleted``, ``delete_retries``; plus ``configured``."""
    writer = HUB.writer
    out: dict[str, Any] = {"configured": writer is not None}
    if writer is not None:
        out.update(writer.stats())
    return out


def current_settings() -> Settings | None:
    """The settings of the last successful :func:`configure`, or ``None``."""
    return _current
