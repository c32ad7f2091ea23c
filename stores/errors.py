"""knowd's one base exception, at the bottom of the layers so every package can derive from it.

The CLI turns any `KnowdError` into one line (`knowd: error: ...`); tracebacks are for bugs.

Every error says whether retrying the same work later can help: `transient` is False on
`KnowdError` (bad input, bad model output, a missing thing: the same input fails the same
way) and True on `TransientError` (a server down, a timeout, a busy database). The daemon's
worker reads it with `getattr(exc, "transient", False)` and retries only transient failures.
"""
from __future__ import annotations


class KnowdError(Exception):
    """Base of every error knowd raises on purpose (user errors, bad input, bad config)."""

    transient: bool = False  # retrying the same work later cannot help


class TransientError(KnowdError):
    """A failure of something outside knowd that may pass (a server down, a timeout):
    the same work is worth retrying later."""

    transient = True


class InputError(KnowdError):
    """A document or file the user gave cannot be ingested (empty, binary, unreadable)."""


class NotFound(KnowdError):
    """The thing asked for (a fact, a document, an inbox item, a connector) does not exist."""


class Conflict(KnowdError):
    """The request does not fit the current state (retrying a document that is not failed,
    adding a connector whose name is taken)."""


class Forbidden(KnowdError):
    """The caller's token does not carry the scope the operation needs."""
