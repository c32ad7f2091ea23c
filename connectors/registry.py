"""Connector plugin registry (the simonw/llm pattern).

Connectors are found through the `knowd.connectors` entry-point group: each entry
point's name is a connector kind and its value a class or factory called as
`factory(name, options)`. knowd registers its own built-ins in the same group
in pyproject.toml; `BUILTINS` repeats them so that a source checkout whose
package metadata is not installed still has them. Targets are imported only
when a connector of that kind is built, so the daemon does not pay for
feedparser or a plugin's imports unless they are configured.
"""
from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import Any

from connectors.base import Connector, ConnectorError

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "knowd.connectors"

# kind -> "module:attribute"; must match the entry points in pyproject.toml.
BUILTINS: dict[str, str] = {
    "feed": "connectors.feed:FeedConnector",
    "chatlog": "connectors.chatlog:ChatLogConnector",
}

ConnectorFactory = Callable[[str, Mapping[str, Any]], Connector]

_reported: set[tuple[str, str]] = set()  # shadowed entry points already logged


def _targets() -> dict[str, str]:
    """kind -> "module:attribute", built-ins first, then installed entry points."""
    targets = dict(BUILTINS)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in targets and targets[ep.name] != ep.value:
            # First registration wins: a plugin must not silently replace a built-in
            # (or another plugin) that a config already relies on.
            if (ep.name, ep.value) not in _reported:
                _reported.add((ep.name, ep.value))
                log.warning("connector kind %r from %s ignored: already provided by %s",
                            ep.name, ep.value, targets[ep.name])
            continue
        targets[ep.name] = ep.value
    return targets


def list_connector_kinds() -> list[str]:
    """Every connector kind that can be built: built-ins plus installed plugins."""
    return sorted(_targets())


def load_connector_factory(kind: str) -> ConnectorFactory:
    """Import and return the class or factory registered for `kind`."""
    targets = _targets()
    target = targets.get(kind)
    if target is None:
        raise ConnectorError(
            f"unknown connector kind {kind!r}; available: {', '.join(sorted(targets))}"
        )
    module_name, _, attr = target.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in filter(None, attr.split(".")):
            obj = getattr(obj, part)
    except Exception as exc:  # a broken plugin must not take the daemon down with a traceback
        raise ConnectorError(
            f"connector kind {kind!r}: cannot load {target}: {type(exc).__name__}: {exc}"
        ) from exc
    if not callable(obj):
        raise ConnectorError(f"connector kind {kind!r}: {target} is not a class or factory")
    return obj


def build_connector(kind: str, name: str, options: Mapping[str, Any] | None = None) -> Connector:
    """Construct the connector `name` of `kind` from its config options."""
    factory = load_connector_factory(kind)
    try:
        connector = factory(name, dict(options or {}))
    except ConnectorError:
        raise
    except Exception as exc:
        raise ConnectorError(
            f"{kind} connector {name!r}: cannot be built: {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(connector, Connector):
        raise ConnectorError(
            f"{kind} connector {name!r}: {type(connector).__name__} lacks name, kind or poll()"
        )
    return connector
