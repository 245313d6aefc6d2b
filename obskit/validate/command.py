"""The click command ``obskit validate``."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import NoReturn

import click

from obskit._names import safe_path
from obskit.schema.dialects import NAMES as DIALECT_NAMES
from obskit.schema.policy import PolicyError, load_policy
from obskit.schema.stream import LineReport
from obskit.validate.inputs import DEFAULT_GLOBS, InputError, expand_inputs
from obskit.validate.parallel import default_jobs
from obskit.validate.reporters import FORMATS, render, text_line
from obskit.validate.runner import WorkerLost, run_validation


@click.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="text",
    show_default=True,
    help="Report format: text (path:line:col), json, junit, sarif, github (annotations).",
)
@click.option("--glob", "globs", multiple=True, help="File pattern inside folders (repeatable).")
@click.option("--config", "config", type=click.Path(path_type=Path), help="obskit.toml policy.")
@click.option(
    "--max-errors",
    type=click.IntRange(min=0),
    default=None,
    help="List at most N violations (counts stay complete).",
)
@click.option("--max-line-bytes", type=int, default=None, help="Override the line limit.")
@click.option("--allow-blank", is_flag=True, help="Skip blank lines instead of reporting them.")
@click.option("--accept-utf16", is_flag=True, help="Transcode UTF-16 files instead of failing.")
@click.option(
    "--dialect",
    type=click.Choice(DIALECT_NAMES),
    default=None,
    help="Hint every line that is valid in this JSON dialect (auto: any known one); "
    "without it, only the first such line of each file.",
)
@click.option("--output", "-o", type=click.Path(path_type=Path), help="Write the report here.")
@click.option("--quiet", "-q", is_flag=True, help="Text format: print only the summary.")
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=1),
    default=None,
    help="Worker processes (default: the CPUs available); same output as -j 1.",
)
def validate(
    inputs: tuple[str, ...],
    fmt: str,
    globs: tuple[str, ...],
    config: Path | None,
    max_errors: int | None,
    max_line_bytes: int | None,
    allow_blank: bool,
    accept_utf16: bool,
    dialect: str | None,
    output: Path | None,
    quiet: bool,
    jobs: int | None,
) -> None:
    """Check log files against log schema v1.

    INPUTS are files, folders (searched recursively for *.log, *.jsonl, *.ndjson and their .gz)
    or - for stdin. Exit code: 0 all valid, 1 violations found, 2 usage or I/O error.
    """
    try:
        policy = load_policy(config)
    except PolicyError as exc:
        raise click.UsageError(str(exc)) from None
    overrides: dict[str, object] = {}
    if max_line_bytes is not None:
        overrides["max_line_bytes"] = max_line_bytes
    if allow_blank:
        overrides["allow_blank"] = True
    if overrides:
        import dataclasses

        try:
            policy = dataclasses.replace(policy, **overrides)  # type: ignore[arg-type]
        except PolicyError as exc:
            raise click.UsageError(str(exc)) from None
    if output is not None:
        # Before any work: a report that cannot be written must not cost a whole run.
        problem = _unwritable(output)
        if problem:
            _fail(f"-o {safe_path(str(output))}: {problem}")
    try:
        found = expand_inputs(inputs, globs, exclude=output)
    except InputError as exc:
        _fail(str(exc))
    for note in found.notes:
        click.echo(f"obskit validate: note: {note}", err=True)
    if not found.items:
        # A CI step pointed at an empty or wrong folder must not pass silently.
        patterns = ", ".join(globs or DEFAULT_GLOBS)
        click.echo(
            f"obskit validate: error: no log files found in {', '.join(map(safe_path, inputs))} "
            f"(file patterns: {patterns}); name the files or pass --glob",
            err=True,
        )
        sys.exit(2)

    stream_text = fmt == "text" and not quiet and output is None
    out = sys.stdout

    def on_report(path: str, rep: LineReport) -> None:
        for v in rep.violations:
            out.write(text_line(path, rep, v) + "\n")

    try:
        res = run_validation(
            found.items,
            policy,
            max_errors=max_errors,
            accept_utf16=accept_utf16,
            on_report=on_report if stream_text else None,
            jobs=jobs or default_jobs(),
            dialect=dialect,
        )
    except WorkerLost as exc:
        _fail(f"{exc}; run again with -j 1")
    report = render(res, fmt)
    if output is not None:
        if fmt == "text" and not quiet:
            lines = [
                text_line(fr.path, r, v)
                for fr in res.files
                for r in fr.reports
                for v in r.violations
            ]
            report = "\n".join(lines) + ("\n" if lines else "") + report
        try:
            output.write_text(report, encoding="utf-8")
        except OSError as exc:
            _fail(f"-o {safe_path(str(output))}: cannot write: {exc.strerror or exc}")
        click.echo(render(res, "text"), nl=False, err=True)
    else:
        out.write(report)
    for fr in res.files:
        if fr.io_error and fmt not in ("text", "github"):
            click.echo(f"obskit validate: error: {fr.io_error}", err=True)
    sys.exit(res.exit_code)


def _fail(message: str) -> NoReturn:
    click.echo(f"obskit validate: error: {message}", err=True)
    sys.exit(2)


def _unwritable(output: Path) -> str | None:
    """Why the report cannot be written to ``output``, or ``None``."""
    if output.is_dir():
        return "is a folder; name the report file"
    folder = output.parent
    if not folder.is_dir():
        return f"folder {safe_path(str(folder))} does not exist"
    if not os.access(folder, os.W_OK):
        return f"folder {safe_path(str(folder))} is not writable"
    return None
