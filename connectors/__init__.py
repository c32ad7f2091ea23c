"""Document sources: the `Connector` protocol, the built-in feed and chat-log connectors, plugins."""
from connectors.base import Connector, ConnectorError, PollResult
from connectors.registry import (
    ENTRY_POINT_GROUP,
    build_connector,
    list_connector_kinds,
    load_connector_factory,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "Connector",
    "ConnectorError",
    "PollResult",
    "build_connector",
    "list_connector_kinds",
    "load_connector_factory",
]
