#!/usr/bin/env python3
"""Print the image tags for one build of the obskit-sidecar image, one per line.

Tag scheme (docs/images.md):
  vX.Y.Z          the release (semantic version, immutable)
  build-YYYYMMDD  the build date in UTC (a daily rebuild picks up base-image patches)
  latest-<env>    moving pointer per environment (dev, staging, prod, ...)

Windows images get the OS variant appended to every tag (``--variant ltsc2022`` gives
``v0.1.0-ltsc2022``) because a Windows image only runs on a matching host build.

Examples:
  scripts/image-tags.py --env prod                       # version from pyproject.toml, today
  scripts/image-tags.py --version 1.4.2 --date 2026-11-25 --env staging \
      --image registry.example.org/obskit-sidecar
Exit code 2 with a one-line reason on bad input.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import sys
from pathlib import Path

# SemVer 2.0.0 (optional leading "v"); pre-release and build metadata allowed.
_SEMVER = re.compile(
    r"^v?(?P<core>(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*))"
    r"(?P<pre>-[0-9A-Za-z.-]+)?(?P<build>\+[0-9A-Za-z.-]+)?$"
)
# Docker tag grammar: [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}; environments are kept lower-case.
_ENV = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_VARIANT = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,31}$")


class TagError(ValueError):
    """Bad input for the tag scheme; the message says which value and why."""


def version_tag(version: str) -> str:
    """``1.2.3`` or ``v1.2.3`` -> ``v1.2.3``; build metadata (``+x``) is dropped, as tags
    cannot hold ``+``."""
    m = _SEMVER.match(version.strip())
    if not m:
        raise TagError(f"version {version!r} is not a semantic version like 1.2.3")
    return "v" + m.group("core") + (m.group("pre") or "")


def date_tag(date: str | None, now: dt.datetime | None = None) -> str:
    """``2026-11-25`` / ``20261125`` / an RFC 3339 timestamp / None (today, UTC) ->
    ``build-20261125``."""
    if date is None:
        day = (now or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc).date()
    else:
        text = date.strip()
        try:
            if re.fullmatch(r"\d{8}", text):
                day = dt.datetime.strptime(text, "%Y%m%d").date()
            elif re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
                day = dt.date.fromisoformat(text)
            else:
                stamp = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
                if stamp.tzinfo is None:
                    raise TagError(f"date {date!r} has no UTC offset; add Z or +HH:MM")
                day = stamp.astimezone(dt.timezone.utc).date()
        except ValueError as exc:
            if isinstance(exc, TagError):
                raise
            raise TagError(f"date {date!r} is not YYYY-MM-DD, YYYYMMDD or RFC 3339") from None
    return f"build-{day:%Y%m%d}"


def env_tag(env: str) -> str:
    """``prod`` -> ``latest-prod``."""
    if not _ENV.match(env):
        raise TagError(f"env {env!r} must be lower-case letters, digits, '-' or '_'")
    return f"latest-{env}"


def tags(version: str, env: str, date: str | None = None, variant: str | None = None) -> list[str]:
    """All tags for one build, in the order they should be pushed (immutable first)."""
    out = [version_tag(version), date_tag(date), env_tag(env)]
    if variant:
        if not _VARIANT.match(variant):
            raise TagError(f"variant {variant!r} must look like ltsc2022")
        out = [f"{t}-{variant}" for t in out]
    return out


def project_version(pyproject: Path) -> str:
    """The ``[project] version`` of pyproject.toml (the image version follows the package)."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    with pyproject.open("rb") as fh:
        return str(tomllib.load(fh)["project"]["version"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", help="semantic version (default: pyproject.toml)")
    parser.add_argument("--date", help="build date YYYY-MM-DD or RFC 3339 (default: today UTC)")
    parser.add_argument("--env", required=True, help="target environment: dev, staging, prod")
    parser.add_argument("--variant", help="OS variant suffix for Windows images, e.g. ltsc2022")
    parser.add_argument("--image", help="prefix each tag with IMAGE: (full references)")
    args = parser.parse_args(argv)
    try:
        version = args.version or project_version(
            Path(__file__).resolve().parent.parent / "pyproject.toml"
        )
        result = tags(version, args.env, args.date, args.variant)
    except (TagError, OSError, KeyError) as exc:
        print(f"image-tags: error: {exc}", file=sys.stderr)
        return 2
    for tag in result:
        print(f"{args.image}:{tag}" if args.image else tag)
    return 0


if __name__ == "__main__":
    sys.exit(main())
