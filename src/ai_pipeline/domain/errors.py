"""Failure kinds that decide what the agent runner does with a message."""

from __future__ import annotations


class PermanentError(Exception):
    """Retrying cannot help (a validation error, a poison message): dead-letter at once."""


class TransientError(Exception):
    """Worth retrying later; ``retry_after`` is the server's hint in seconds, if any."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class UnavailableError(TransientError):
    """A dependency of the pipeline itself (bus, state store, tracker) cannot be reached.

    The message is not at fault, so it never counts towards dead-lettering: the agent
    stops, redelivers and waits for the dependency to come back. ``dependency`` names it
    ("bus", "state", "tracker"…): an agent waiting on it is late, never stuck.
    """

    def __init__(
        self, message: str, retry_after: float | None = None, *, dependency: str | None = None
    ):
        super().__init__(message, retry_after)
        self.dependency = dependency
