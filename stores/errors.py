"""knowd's one base exception, at the bottom of the layers so every package can derive from it.

The CLI turns any `KnowdError` into one line (`knowd: error: ...`); tracebacks are for bugs.
"""
from __future__ import annotations


class KnowdError(Exception):
    """Base of every error knowd raises on purpose (user errors, bad input, bad config)."""


class InputError(KnowdError):
    """A document or file the user gave cannot be ingested (empty, binary, unreadable)."""
