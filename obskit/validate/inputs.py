"""Which files ``obskit validate`` reads: files, folders (recursive, globbed), ``-`` for stdin."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

DEFAULT_GLOBS = ("*.log", "*.jsonl", "*.ndjson", "*.json", "*.log.gz", "*.jsonl.gz", "*.ndjson.gz")


class InputError(Exception):
    """A named input does not exist or cannot be listed."""


def expand_inputs(args: Sequence[str], globs: Sequence[str] = ()) -> Iterator[str]:
    """Yield file paths (or ``-``) in a stable order: files as given, folders walked sorted."""
    patterns = tuple(globs) or DEFAULT_GLOBS
    for arg in args:
        if arg == "-":
            yield "-"
            continue
        p = Path(arg)
        if p.is_dir():
            for root, dirs, files in os.walk(p):
                dirs.sort()
                for name in sorted(files):
                    if any(fnmatch.fnmatch(name, g) for g in patterns):
                        yield str(Path(root) / name)
        elif p.exists():
            yield str(p)
        else:
            raise InputError(f"{arg}: no such file or directory")
