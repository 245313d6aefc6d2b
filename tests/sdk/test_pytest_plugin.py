"""The pytest plugin: --obskit-check-logs fails the test that logs an invalid record."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

TESTS = """
import logging
import obskit
import pytest

@pytest.fixture(autouse=True)
def sdk(tmp_path):
    obskit.configure(service="checked", log_dir=tmp_path)
    yield
    obskit.shutdown()

def test_good():
    obskit.get_logger("a").info("fine", n=1)
    logging.getLogger("b").warning("also fine")

def test_bad_formatter():
    # a hand-made handler with a plain formatter: not schema v1
    h = obskit.ObskitHandler()
    h.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logging.getLogger("raw").addHandler(h)
    try:
        logging.getLogger("raw").warning("plain text line")
    finally:
        logging.getLogger("raw").removeHandler(h)
"""


def test_flag_fails_the_violating_test_naming_rule(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_app=TESTS)
    result = pytester.runpytest_subprocess("--obskit-check-logs", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*test_app.py::test_bad_formatter (call): 1 log record(s) violate schema v1 (OBS001)*",
            "*OBS001*",
            "*in: WARNING plain text line*",
        ]
    )
    assert "test_good" not in "\n".join(line for line in result.stdout.lines if "violate" in line)


def test_off_by_default_and_inert(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_app=TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    assert "obskit:" not in result.stdout.str()
    assert "obskit log schema check" not in result.stdout.str()


def test_ini_option_and_policy(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nobskit_check_logs = true\n")
    pytester.makefile(".toml", obskit='required_fields = ["request_id"]\n')
    pytester.makepyfile(
        test_policy="""
import obskit

def test_with_id(tmp_path):
    obskit.configure(service="p", log_dir=tmp_path)
    obskit.get_logger().info("ok", request_id="r1")

def test_without_id(tmp_path):
    obskit.configure(service="p", log_dir=tmp_path)
    obskit.get_logger().info("missing")
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*test_without_id (call)*OBS020*"])


def test_records_outside_tests_fail_the_session(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
import logging, obskit, tempfile

def pytest_sessionfinish(session):
    obskit.configure(service="late", log_dir=tempfile.mkdtemp())
    h = obskit.ObskitHandler()
    h.setFormatter(logging.Formatter("%(message)s"))
    h.handle(logging.makeLogRecord({"msg": "not json"}))
"""
    )
    pytester.makepyfile(test_one="def test_ok():\n    pass\n")
    result = pytester.runpytest_subprocess("--obskit-check-logs", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*outside any test*OBS001*"])


def test_plugin_import_is_cheap() -> None:
    code = (
        "import sys, obskit.pytest_plugin\n"
        "heavy = [m for m in ('structlog', 'opentelemetry', 'obskit.sdk', 'obskit.schema')"
        " if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_plugin_registered_as_entry_point(pytestconfig: Any) -> None:
    assert pytestconfig.pluginmanager.has_plugin("obskit")
