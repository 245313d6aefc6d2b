"""The ``obskit`` command: ``obskit validate`` and ``obskit trace``."""

from __future__ import annotations

import click

from obskit import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="obskit")
def main() -> None:
    """obskit: the log schema v1 toolkit (validate logs, look up traces)."""


def _register() -> None:
    from obskit.validate.command import validate

    main.add_command(validate)
    try:
        from obskit.trace.command import trace  # type: ignore[import-not-found, unused-ignore]
    except ImportError:  # pragma: no cover - during development only
        return
    main.add_command(trace)


_register()

if __name__ == "__main__":  # pragma: no cover
    main()
