"""The docs site: strict mkdocs build, the generated configuration reference, the link hook."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import typing
from pathlib import Path
from types import ModuleType
from typing import Any

import msgspec
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def gen() -> ModuleType:
    return _load("gen_config_docs", REPO / "scripts" / "gen_config_docs.py")


def _mkdocs(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None:
        pytest.skip("mkdocs-material is not installed: install the dev or docs extras")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", NO_COLOR="1")
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def _nav_pages(nav: Any) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [p for item in nav for p in _nav_pages(item)]
    if isinstance(nav, dict):
        return [p for v in nav.values() for p in _nav_pages(v)]
    return []


class _Loader(yaml.SafeLoader):
    pass


# mkdocs.yml uses a !!python/name tag for Mermaid fences; the test only reads the nav.
_Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: None)


def test_docs_site_builds_strictly(tmp_path: Path) -> None:
    config = yaml.load((REPO / "mkdocs.yml").read_text(encoding="utf-8"), Loader=_Loader)
    missing = [p for p in _nav_pages(config["nav"]) if not (REPO / "docs" / p).is_file()]
    assert not missing, f"pages in mkdocs.yml nav missing from docs/: {missing}"
    proc = _mkdocs(["build", "--strict", "--site-dir", str(tmp_path / "site")], REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    page = (tmp_path / "site" / "sidecar-config" / "index.html").read_text(encoding="utf-8")
    assert "checkpoint.dir" in page and "sinks[]" in page


def test_link_hook_rewrites_repo_links_and_strict_catches_broken_ones(tmp_path: Path) -> None:
    site = tmp_path / "proj"
    (site / "docs").mkdir(parents=True)
    hook = str(REPO / "scripts" / "mkdocs_hooks.py").replace("\\", "/")
    (site / "mkdocs.yml").write_text(
        "site_name: t\nrepo_url: https://example.org/r\n"
        f"hooks: ['{hook}']\nnav: [index.md, sidecar-config.md]\n",
        encoding="utf-8",
    )
    # The hook resolves repository links against the real repository (REPO).
    (site / "docs" / "index.md").write_text(
        "# t\n\n[good](../examples/go-service/main.go) [dir](../examples/kubernetes)\n",
        encoding="utf-8",
    )
    proc = _mkdocs(["build", "--strict", "--site-dir", str(tmp_path / "out")], site)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    html = (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    assert 'href="https://example.org/r/blob/main/examples/go-service/main.go"' in html
    assert 'href="https://example.org/r/tree/main/examples/kubernetes"' in html
    # The configuration reference is generated even without a docs/sidecar-config.md file.
    assert (tmp_path / "out" / "sidecar-config" / "index.html").is_file()

    (site / "docs" / "index.md").write_text(
        "# t\n\n[bad](../examples/nope.yml)\n", encoding="utf-8"
    )
    proc = _mkdocs(["build", "--strict", "--site-dir", str(tmp_path / "out2")], site)
    assert proc.returncode != 0
    assert "nope.yml" in proc.stdout + proc.stderr


def _fields(cls: type, gen: ModuleType) -> list[tuple[str, Any]]:
    return [(f.name, f.type) for f in gen.model_fields(cls)]


def _keys(cls: type, prefix: str, gen: ModuleType) -> list[str]:
    out = []
    for name, tp in _fields(cls, gen):
        key = f"{prefix}.{name}" if prefix else name
        out.append(key)
        for sub in gen._nested_models(tp):
            out += _keys(sub, key, gen)
    return out


def test_config_reference_lists_every_option_of_the_model(gen: ModuleType) -> None:
    config = pytest.importorskip("sidecar.config")
    text = gen.render()
    root = config.SidecarConfig
    keys: list[str] = []
    for name, tp in _fields(root, gen):
        if name == "source":
            settings = pytest.importorskip("sidecar.source.settings")
            keys += _keys(settings.SourceSettings, "source", gen)
        elif name == "sinks":
            continue
        elif list(gen._nested_models(tp)):
            keys += _keys(next(iter(gen._nested_models(tp))), name, gen)
        else:
            keys.append(name)
    assert len(keys) > 20
    for key in keys:
        assert f"`{key}`" in text, f"{key} missing from the configuration reference"
    registry = pytest.importorskip("sidecar.sinks.registry")
    for type_name, module in registry.SINK_TYPES.items():
        assert f"`type: {type_name}`" in text
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        for key in _keys(mod.Config, "sinks[]", gen):
            assert f"`{key}`" in text, f"{type_name}: {key} missing"


def test_config_reference_values_are_rendered_for_humans(gen: ModuleType) -> None:
    pytest.importorskip("sidecar.config")
    text = gen.render()
    assert '`"/app/logs"` (Linux), `"C:\\app\\logs"` (Windows)' in text
    # Durations and sizes as people write them, whatever the current defaults are.
    assert re.search(r"\| `checkpoint.interval` \| duration \| `\d+(ms|s|m|h|d)` \|", text)
    assert re.search(r"\| `memory.max_inflight_bytes` \| size \| `\d+(KiB|MiB|GiB)` \|", text)
    assert "`sinks[].url` | string | *required*" in text
    assert '`"forward"` \\| `"repair"` \\| `"quarantine"`' in text  # escaped inside tables
    # The same on every OS: no platform-dependent default leaks through.
    assert text.count("(Windows)") >= 2


class _Inner(msgspec.Struct, kw_only=True):
    """Inner settings.

    depth: how deep to go.
    """

    depth: int = 3


class _Outer(msgspec.Struct, kw_only=True):
    """Outer settings."""

    #: Where things go.
    target: str = "here"
    wait: typing.Literal["a", "b"] = "a"  # Pick one.
    inner: _Inner = msgspec.field(default_factory=_Inner)


def test_generator_describes_fields_from_comments_and_docstrings(gen: ModuleType) -> None:
    lines = gen.render_model(_Outer, "outer", 3)
    text = "\n".join(lines)
    assert '| `outer.target` | string | `"here"` | Where things go. |' in text
    assert '| `outer.wait` | `"a"` \\| `"b"` | `"a"` | Pick one. |' in text
    assert "### `outer.inner`" in text
    assert "| `outer.inner.depth` | integer | `3` | How deep to go. |" in text


def test_generator_is_tolerant_without_the_model(
    gen: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gen, "_import", lambda name: None)
    text = gen.render()
    assert text.startswith("# Sidecar configuration reference")
    assert "not available in this build" in text


def test_generator_script_runs(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen_config_docs.py"), "--stdout"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("# Sidecar configuration reference")
