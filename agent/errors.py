"""The errors a knowd command can end with, in one import for the agent's modules.

`KnowdError` is the one base (stores/errors.py, the bottom layer, so every package
derives from it); each error lives with the code that raises it and is re-exported
here. The CLI turns any of them into one clear line; the HTTP faces map the kinds to
statuses (NotFound 404, Conflict 409, Forbidden 403, BackendError 503, others 400).
"""
from __future__ import annotations

from graphs.llm import BackendError, ModelLimitError, ModelOutputError
from stores.errors import Conflict, Forbidden, InputError, KnowdError, NotFound, TransientError

__all__ = [
    "BackendError", "ConfigError", "Conflict", "Forbidden", "InputError", "KnowdError", "ModelLimitError",
    "ModelOutputError",
    "NotFound", "ServerError", "TransientError",
]


class ConfigError(KnowdError):
    """config.yaml is missing, unreadable or invalid."""


class ServerError(KnowdError):
    """The server cannot start as configured (no token for a public address, port in use)."""
