"""The vector index over facts: a Chroma collection, derived from the SQLite store.

The index holds one entry per fact (its text embedding) with metadata
`current` (true now) and `subject`. It is never the source of truth: `sync()`
pushes the facts queued by committed transactions, and `rebuild()` recreates
the collection from the store (`knowd reindex`).
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from stores.sqlite import Store
from stores.types import Fact

log = logging.getLogger(__name__)


class Embedder(Protocol):
    """What the index needs to turn text into vectors (agent/embeddings.py has the MiniLM one;
    stores/testing.py a hashing one for tests). Vectors are L2-normalised: cosine = dot."""

    dim: int

    def embed(self, texts: list[str]) -> list[list[float]]: ...


class FactIndex:
    def __init__(
        self, embedder: Embedder, *, path: str | Path | None = None, host: str | None = None,
        port: int | None = None, collection: str = "facts",
    ):
        """Embedded Chroma at `path`, or a Chroma server at `host`:`port`."""
        import chromadb
        from chromadb.config import Settings

        settings = Settings(anonymized_telemetry=False, allow_reset=True)
        if host:
            self._client = chromadb.HttpClient(host=host, port=port or 8000, settings=settings)
        elif path:
            self._client = chromadb.PersistentClient(path=str(path), settings=settings)
        else:
            self._client = chromadb.EphemeralClient(settings=settings)
        self.embedder = embedder
        self.collection_name = collection
        self._col = self._open()

    def _open(self) -> Any:
        return self._client.get_or_create_collection(
            self.collection_name, metadata={"hnsw:space": "cosine"}, embedding_function=None
        )

    def count(self) -> int:
        return int(self._col.count())

    def upsert(self, facts: list[Fact]) -> None:
        if not facts:
            return
        vecs = self.embedder.embed([f.text for f in facts])
        for i in range(0, len(facts), 1000):
            part = facts[i : i + 1000]
            self._col.upsert(
                ids=[f.id for f in part],
                embeddings=vecs[i : i + 1000],
                documents=[f.text for f in part],
                metadatas=[{"current": f.is_current, "subject": (f.subject or "").lower()} for f in part],
            )

    def query(self, text: str, k: int, current_only: bool = True) -> list[tuple[str, float]]:
        return self.query_many([text], k, current_only)[0]

    def query_many(self, texts: list[str], k: int, current_only: bool = True) -> list[list[tuple[str, float]]]:
        """For each text, up to k (fact id, cosine similarity), best first."""
        if not texts or k <= 0:
            return [[] for _ in texts]
        n = self.count()
        if n == 0:
            return [[] for _ in texts]
        res = self._col.query(
            query_embeddings=self.embedder.embed(texts), n_results=min(k, n),
            where={"current": True} if current_only else None, include=["distances"],
        )
        return [
            [(fid, 1.0 - float(d)) for fid, d in zip(ids, dists)]
            for ids, dists in zip(res["ids"], res["distances"])
        ]

    def sync(self, store: Store, batch: int = 500) -> int:
        """Push facts queued by committed transactions; returns how many were indexed."""
        done = 0
        while True:
            ids = store.pending_index(batch)
            if not ids:
                return done
            self.upsert(store.get_facts(ids))
            store.clear_index_queue(ids)
            done += len(ids)

    def rebuild(
        self, store: Store, progress: Callable[[int, int], None] | None = None, batch: int = 256,
    ) -> int:
        """Drop the collection and re-create it from the store, `batch` facts at a time;
        `progress(n, total)` is called with 0 first, then with each batch's size."""
        try:
            self._client.delete_collection(self.collection_name)
        except Exception:  # noqa: BLE001 - absent collection: nothing to drop
            pass
        self._col = self._open()
        facts = store.list_facts(current_only=False)
        if progress is not None:
            progress(0, len(facts))
        for i in range(0, len(facts), batch):
            part = facts[i : i + batch]
            self.upsert(part)
            if progress is not None:
                progress(len(part), len(facts))
        store.clear_index_queue(store.pending_index(10**9))
        return len(facts)

