"""The pre-commit hook definition at the repository root runs the installed command."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import yaml

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from validate_helpers import jl, run_process

REPO = Path(__file__).resolve().parents[2]


def _hook() -> dict[str, object]:
    hooks = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    (hook,) = [h for h in hooks if h["id"] == "obskit-validate"]
    return hook  # type: ignore[no-any-return]


def test_hook_entry_is_the_console_script() -> None:
    hook = _hook()
    assert hook["language"] == "python" and hook["pass_filenames"] is True
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "scripts"
    ]
    command, sub = shlex.split(str(hook["entry"]))
    assert scripts[command] == "obskit.cli:main" and sub == "validate"


def test_hook_files_pattern() -> None:
    pattern = re.compile(str(_hook()["files"]))
    for name in ("app.log", "logs/a.jsonl", "x.ndjson", "old/app.log.gz"):
        assert pattern.search(name), name
    for name in ("pyproject.toml", "app.log.txt", "main.py", "package.json"):
        assert not pattern.search(name), name


def test_hook_command_with_filenames(tmp_path: Path) -> None:
    # pre-commit appends the staged file names to the entry.
    (tmp_path / "a.log").write_text(jl())
    (tmp_path / "b.jsonl").write_text(jl(level="info"))
    r = run_process("a.log", "b.jsonl", cwd=tmp_path)
    assert r.code == 1 and r.out.startswith("b.jsonl:1:")
