"""How the query commands (``obskit trace``, ``obskit audit``) turn what can go wrong into an
exit code and one line on stderr, never a traceback for something a user can cause."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import click

from obskit.trace.model import BackendError, TraceUsageError

EXIT_ERROR = 2


def fail(prog: str, message: str, code: int = EXIT_ERROR) -> NoReturn:
    """``<prog>: <message>`` on stderr, then exit with ``code``."""
    click.echo(f"{prog}: {message}", err=True)
    sys.exit(code)


@contextmanager
def reported_errors(prog: str, debug: bool) -> Iterator[None]:
    """Usage errors become click's usage error (exit 2), a backend that failed one line
    naming it (2), Ctrl-C ``interrupted`` (130), anything unexpected one line with its type
    (2). With ``debug`` backend and unexpected errors are raised with their stack trace."""
    try:
        yield
    except TraceUsageError as exc:
        raise click.UsageError(str(exc)) from None
    except click.ClickException:
        raise
    except BackendError as exc:
        if debug:
            raise
        fail(prog, str(exc))
    except KeyboardInterrupt:
        fail(prog, "interrupted", 130)
    except Exception as exc:
        if debug:
            raise
        fail(prog, f"unexpected error: {type(exc).__name__}: {exc} (run with --debug for details)")
