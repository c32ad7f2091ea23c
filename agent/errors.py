"""The errors a knowd command can end with, in one import for the agent's modules.

`KnowdError` is the one base (stores/errors.py, the bottom layer, so every package
derives from it); each error lives with the code that raises it and is re-exported
here. The CLI turns any of them into one clear line.
"""
from __future__ import annotations

from graphs.llm import BackendError, ModelOutputError
from stores.errors import InputError, KnowdError

__all__ = ["BackendError", "ConfigError", "InputError", "KnowdError", "ModelOutputError"]


class ConfigError(KnowdError):
    """config.yaml is missing, unreadable or invalid."""
