"""Trainer exceptions: one base class, so the CLI can turn any of them into one clear line."""
from __future__ import annotations

from stores.errors import KnowdError


class TrainerError(KnowdError):
    """Base class of every error the trainer raises on purpose."""


class ConfigError(TrainerError):
    """The ``consolidation:`` config section is invalid."""


class AdapterError(TrainerError):
    """An adapter version is missing or unusable."""


class RunBusyError(TrainerError):
    """Another consolidation run holds the lock."""


class Interrupted(TrainerError):
    """The run was asked to stop (SIGTERM/SIGINT)."""
