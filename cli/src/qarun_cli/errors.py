"""The one error type the commands raise: a message for a person and an exit code."""

from __future__ import annotations


class CLIError(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code
