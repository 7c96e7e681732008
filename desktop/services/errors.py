"""Errors services raise for people to read; the GUI shows ``str(error)`` as it is."""

from __future__ import annotations


class ServiceError(RuntimeError):
    """Base of every error a service reports to staff."""


class NotFoundError(ServiceError):
    """The thing asked for does not exist (any more)."""


class ConcurrentEditError(ServiceError):
    """Another workstation saved a newer version first; the caller keeps what was typed and says so."""


class ValidationError(ServiceError):
    """Input that cannot be saved; ``problems`` lists each field's message."""

    def __init__(self, message: str, problems: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or {}
