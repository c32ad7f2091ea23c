"""One base exception for knowd; the CLI turns these into one clear line."""
from __future__ import annotations


class KnowdError(Exception):
    """Base of every error knowd raises on purpose (user errors, bad input, bad config)."""


class ConfigError(KnowdError):
    """config.yaml is missing, unreadable or invalid."""


class InputError(KnowdError):
    """A document or file the user gave cannot be ingested (empty, binary, unreadable)."""


class ModelOutputError(KnowdError):
    """The model returned output that failed validation (bad JSON, unknown ids, empty text)."""

    def __init__(self, message: str, raw: str | None = None, step: str | None = None):
        super().__init__(message)
        self.raw = raw
        self.step = step


class BackendError(KnowdError):
    """The LLM backend failed (server down, timeout). Transient: the document is retried."""
