"""pytest plugin (entry point ``pytest11``): the log-schema check for a service's own tests.

Enable with ``pytest --obskit-check-logs`` or ``obskit_check_logs = true`` in the ini file.
Every line rendered through obskit during the run is validated against schema v1 (and the
organisation policy found by ``obskit.schema.load_policy``, or the ``obskit_policy`` ini
file); a test that emits a violating line fails, naming the rule. Lines emitted outside a
test fail the session. When the option is off, the plugin registers nothing else and
imports nothing from the SDK.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from obskit.schema import Policy, Violation

_MAX_SHOWN = 5


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("obskit", "obskit log schema check")
    group.addoption(
        "--obskit-check-logs",
        action="store_true",
        default=False,
        help="fail tests whose obskit log records violate log schema v1",
    )
    parser.addini(
        "obskit_check_logs", type="bool", default=False, help="same as --obskit-check-logs"
    )
    parser.addini(
        "obskit_policy",
        default="",
        help="organisation policy file for --obskit-check-logs (default: obskit.toml or "
        "[tool.obskit] in pyproject.toml, searched upwards from the rootdir)",
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("obskit_check_logs") or config.getini("obskit_check_logs"):
        config.pluginmanager.register(LogChecker(config), "obskit-log-checker")


class LogChecker:
    """Collects violating lines per test phase and turns them into failures."""

    def __init__(self, config: pytest.Config) -> None:
        from obskit.schema import load_policy

        policy_file = str(config.getini("obskit_policy") or "")
        path = Path(config.rootpath, policy_file) if policy_file else None
        self.policy: Policy = load_policy(path, start=config.rootpath)
        self.current: str | None = None
        self.pending: list[tuple[bytes, list[Violation]]] = []
        self.by_test: dict[str, list[tuple[bytes, list[Violation]]]] = {}
        self.outside: list[tuple[bytes, list[Violation]]] = []
        self.checked = 0

    def tap(self, line: bytes) -> None:
        """Called by the SDK with every rendered line, in the logging thread."""
        from obskit.schema import validate_line

        self.checked += 1
        violations = [v for v in validate_line(line, self.policy) if v.severity == "error"]
        if violations:
            if self.current is None:
                self.outside.append((line, violations))
            else:
                self.pending.append((line, violations))

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self) -> None:
        from obskit.sdk.taps import add_tap

        add_tap(self.tap)

    def pytest_unconfigure(self) -> None:
        from obskit.sdk.taps import remove_tap

        remove_tap(self.tap)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Generator[None, object, object]:
        self.current = item.nodeid
        try:
            return (yield)
        finally:
            self.current = None

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if self.pending:
            found, self.pending = self.pending, []
            self.by_test.setdefault(item.nodeid, []).extend(found)
            if not report.failed:
                report.outcome = "failed"
                report.longrepr = _describe(f"{item.nodeid} ({report.when})", found)
        return report

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.outside and session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not (self.by_test or self.outside):
            terminalreporter.write_line(
                f"obskit: {self.checked} log record(s) checked against schema v1, all valid"
            )
            return
        terminalreporter.section("obskit log schema check", red=True)
        for nodeid, found in self.by_test.items():
            terminalreporter.write_line(_describe(nodeid, found))
        if self.outside:
            terminalreporter.write_line(_describe("outside any test", self.outside))


def _describe(where: str, found: list[tuple[bytes, list[Violation]]]) -> str:
    rules = sorted({v.rule for _, vs in found for v in vs})
    out = [f"obskit: {where}: {len(found)} log record(s) violate schema v1 ({', '.join(rules)})"]
    for line, violations in found[:_MAX_SHOWN]:
        for v in violations:
            out.append(f"  {v.format()}")
        shown = line[:200].decode("utf-8", "backslashreplace")
        out.append(f"    in: {shown}{'…' if len(line) > 200 else ''}")
    if len(found) > _MAX_SHOWN:
        out.append(f"  ... and {len(found) - _MAX_SHOWN} more")
    return "\n".join(out)
