"""The shipped JSON Schema (draft 2020-12) of log schema v1, for non-Python tools and tests."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

#: File name of the schema inside the ``obskit.schema`` package.
SCHEMA_FILE = "log-v1.schema.json"


@cache
def _text() -> str:
    return resources.files("obskit.schema").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")


def json_schema() -> dict[str, Any]:
    """The parsed JSON Schema of log schema v1 (a fresh copy; callers may modify it).

    Its ``$id`` is ``https://obskit.dev/schema/log-v1.schema.json`` and its ``version`` is
    ``"1"``. It expresses every rule JSON Schema can; ``docs/schema.md`` lists the rest.
    """
    doc: dict[str, Any] = json.loads(_text())
    return doc
