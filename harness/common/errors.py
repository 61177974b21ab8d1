"""User-facing errors: one clear line plus a hint; the CLI prints them without a traceback."""

from __future__ import annotations


class HarnessError(Exception):
    """A mistake the user can fix. ``hint`` says how."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class DataError(HarnessError):
    """A data file is unreadable or inconsistent."""
