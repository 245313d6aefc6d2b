"""The ``obskit`` command: ``obskit validate``, ``obskit trace`` and ``obskit audit``."""

from __future__ import annotations

import importlib

import click

from obskit import __version__

# Subcommands are imported only when invoked: `obskit validate` in CI should not pay for
# httpx and rich, which only `obskit trace` and `obskit audit` need.
_COMMANDS = {
    "audit": (
        "obskit.audit.command",
        "audit",
        "Did every line arrive? Files against Loki or Elasticsearch.",
    ),
    "validate": ("obskit.validate.command", "validate", "Check log files against schema v1."),
    "trace": ("obskit.trace.command", "trace", "Every line of one trace, across services."),
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        spec = _COMMANDS.get(cmd_name)
        if spec is None:
            return None
        command = getattr(importlib.import_module(spec[0]), spec[1])
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # The help listing uses the short texts above, so `obskit --help` imports nothing.
        with formatter.section("Commands"):
            formatter.write_dl([(name, spec[2]) for name, spec in sorted(_COMMANDS.items())])


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="obskit")
def main() -> None:
    """obskit: the log schema v1 toolkit (validate logs, look up traces, audit delivery)."""


if __name__ == "__main__":  # pragma: no cover
    main()
