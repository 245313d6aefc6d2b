"""mkdocs hooks for the obskit docs site (wired in mkdocs.yml).

- The configuration reference page is rendered from the model at build time
  (scripts/gen_config_docs.py), so the published site can never drift from the code even if
  the committed docs/sidecar-config.md is stale.
- Relative links from a page to repository files outside docs/ (``../examples/...``), which
  work when browsing the repository, are rewritten to the repository URL, so they work on the
  site too and ``--strict`` still fails on links to files that do not exist.
"""

from __future__ import annotations

import importlib.util
import posixpath
import re
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
_LINK = re.compile(r"(\]\()(\.\./[^)\s#]+)(#[^)\s]*)?(\))")


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location(
        "gen_config_docs", REPO / "scripts" / "gen_config_docs.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_config_docs", module)
    spec.loader.exec_module(module)
    return module


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    text = _generator().render()
    old = files.get_file_from_path("sidecar-config.md")
    if old is not None:
        files.remove(old)
    files.append(File.generated(config, "sidecar-config.md", content=text))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    repo_url = str(config.get("repo_url") or "").rstrip("/")
    page_dir = posixpath.dirname(page.file.src_uri)

    def rewrite(m: re.Match[str]) -> str:
        target = posixpath.normpath(posixpath.join("docs", page_dir, m.group(2)))
        if target.startswith("docs/") or target.startswith(".."):
            return m.group(0)  # inside docs/ (mkdocs checks it) or outside the repository
        if not (REPO / target).exists():
            return m.group(0)  # leave it for --strict to report
        kind = "tree" if (REPO / target).is_dir() else "blob"
        return f"{m.group(1)}{repo_url}/{kind}/main/{target}{m.group(3) or ''}{m.group(4)}"

    return _LINK.sub(rewrite, markdown) if repo_url else markdown
