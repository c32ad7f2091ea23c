"""The connector protocol: what every document source (built-in or plugin) provides.

A connector turns an outside source into `Document`s. The daemon calls
`poll(state)` on a schedule, durably writes the returned documents to its inbox,
and only then persists the returned `state`. So `poll` must not keep its own
cursor: everything it needs to remember between polls goes into the state it
returns (a JSON-serialisable dict), and a poll whose result is thrown away can
simply be repeated.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from stores.errors import KnowdError
from stores.types import Document


class ConnectorError(KnowdError):
    """A source could not be read (bad config, HTTP error, timeout, unparseable input).

    The message is one line meant for a person: it names the source and the cause.
    """


@dataclass
class PollResult:
    """What one poll produced: new documents, the cursor to persist after them, warnings."""

    documents: list[Document]
    state: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


@runtime_checkable
class Connector(Protocol):
    """A document source. `kind` is its registry name, `name` the configured instance."""

    name: str
    kind: str

    def poll(self, state: dict[str, Any]) -> PollResult:
        """Return the documents that are new since `state`, and the state to persist after them."""
        ...


def check_options(
    kind: str,
    name: str,
    options: Mapping[str, Any],
    known: Iterable[str],
    required: Iterable[str] = (),
) -> None:
    """Reject unknown or missing options, so a typo in config.yaml fails at start, not silently."""
    known = set(known)
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConnectorError(
            f"{kind} connector {name!r}: unknown option(s) {', '.join(unknown)};"
            f" known: {', '.join(sorted(known))}"
        )
    missing = [key for key in required if options.get(key) in (None, "")]
    if missing:
        raise ConnectorError(f"{kind} connector {name!r}: missing option(s) {', '.join(missing)}")


def number_option(
    kind: str, name: str, options: Mapping[str, Any], key: str, default: float, cast: type = float
) -> Any:
    """A positive number option (`cast` is int or float), with a config-error message if not."""
    value = options.get(key, default)
    try:
        value = cast(value)
    except (TypeError, ValueError):
        raise ConnectorError(f"{kind} connector {name!r}: option {key} must be a number, not {value!r}") from None
    if value <= 0:
        raise ConnectorError(f"{kind} connector {name!r}: option {key} must be positive, not {value!r}")
    return value


def one_line(exc: object, limit: int = 200) -> str:
    """An exception (or any text) squeezed onto one bounded line, for warnings and errors."""
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
