"""``obskit validate``: the log-schema check CI runs on any service's logs."""

from obskit.validate.runner import FileResult, RunResult, run_validation

__all__ = ["FileResult", "RunResult", "run_validation"]
