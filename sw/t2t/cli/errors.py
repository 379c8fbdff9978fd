"""Errors the CLI turns into a message and an exit code."""

__all__ = ["CliError"]


class CliError(Exception):
    """A failure to report to the user as ``t2t: <message>`` with ``exit_code``."""

    def __init__(self, message, exit_code=1):
        super().__init__(message)
        self.exit_code = exit_code
