"""Small helpers shared by tests (not fixtures)."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

from stores.types import Document


def doc(id: str, text: str, day: str, title: str | None = None) -> Document:
    return Document(id=id, text=text, published_at=datetime.fromisoformat(day).replace(tzinfo=timezone.utc), title=title, source="test")


def fact(subject: str, relation: str, obj: str) -> dict[str, str]:
    return {"subject": subject, "relation": relation, "object": obj}


def extracted(*facts: dict[str, str]) -> dict[str, Any]:
    return {"facts": list(facts)}


def snapshot(store) -> dict[str, Any]:  # noqa: ANN001
    """Everything ingest can change, as comparable plain data."""
    q = store._q
    return {
        "documents": sorted((r["id"], r["status"]) for r in q("SELECT id, status FROM documents")),
        "facts": sorted((r["id"], r["text"]) for r in q("SELECT id, text FROM facts")),
        "history": sorted(
            (r["fact_id"], r["time"], r["truth"], r["doc_id"], r["op"], r["reverted"])
            for r in q("SELECT * FROM fact_history")
        ),
        "operations": sorted((r["doc_id"], r["fact_id"] or "", r["op"]) for r in q("SELECT * FROM operations")),
    }


@contextmanager
def daemon_serving_api(app: Any) -> Iterator[str]:
    """A running Daemon with the HTTP API as one of its services (consolidation off);
    yields the API's URL and stops the daemon (asserting a clean stop) on the way out."""
    from agent.daemon import Daemon
    from agent.serve import start_server

    app.cfg.daemon.consolidate_at = None
    handles: list[Any] = []

    def api(a: Any) -> Any:
        handles.append(start_server(a, "127.0.0.1", 0))
        return handles[-1]

    daemon = Daemon(app, extra_services=[api])
    daemon.start()
    try:
        yield handles[0].url
    finally:
        assert daemon.stop()
