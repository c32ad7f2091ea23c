"""The vector index over facts: a Chroma collection, derived from the SQLite store.

The index holds one entry per fact (its text embedding) with metadata
`current` (true now) and `subject`. It is never the source of truth: `sync()`
pushes the facts queued by committed transactions, and `rebuild()` recreates
the collection from the store (`knowd reindex`).

With a Chroma server (`index.mode: server`) every call that reaches it raises
`IndexUnavailable`, a transient error, when the server cannot be reached: the
store keeps its index queue, so nothing is lost and a later `sync()` catches up.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from stores.errors import TransientError
from stores.sqlite import Store
from stores.types import Fact

log = logging.getLogger(__name__)


class Embedder(Protocol):
    """What the index needs to turn text into vectors (agent/embeddings.py has the MiniLM one;
    stores/testing.py a hashing one for tests). Vectors are L2-normalised: cosine = dot."""

    dim: int

    def embed(self, texts: list[str]) -> list[list[float]]: ...


class IndexUnavailable(TransientError):
    """The Chroma server or its collection cannot be reached (down, restarting, a network
    error). Transient: the facts stay in the store's index queue until a sync succeeds."""


def _unreachable(e: BaseException | None) -> bool:
    """Whether `e`, or an error it wraps, says the Chroma server could not be reached
    (chromadb raises httpx's errors, or a ValueError wrapping one when the client starts)."""
    import httpx

    seen: set[int] = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, (httpx.TransportError, ConnectionError, TimeoutError)):
            return True
        if isinstance(e, ValueError) and "could not connect" in str(e).lower():
            return True
        e = e.__cause__ or e.__context__
    return False


class FactIndex:
    def __init__(
        self, embedder: Embedder, *, path: str | Path | None = None, host: str | None = None,
        port: int | None = None, collection: str = "facts",
    ):
        """Embedded Chroma at `path`, or a Chroma server at `host`:`port`."""
        import chromadb
        from chromadb.config import Settings

        settings = Settings(anonymized_telemetry=False, allow_reset=True)
        self.embedder = embedder
        self.collection_name = collection
        self.where = f"the Chroma server at {host}:{port or 8000}" if host else f"Chroma at {path or '(memory)'}"
        with self._reaching():
            if host:
                self._client = chromadb.HttpClient(host=host, port=port or 8000, settings=settings)
            elif path:
                self._client = chromadb.PersistentClient(path=str(path), settings=settings)
            else:
                self._client = chromadb.EphemeralClient(settings=settings)
            self._col = self._open()

    @contextmanager
    def _reaching(self) -> Iterator[None]:
        """Turn "the server cannot be reached" into IndexUnavailable; other errors pass as they are."""
        try:
            yield
        except IndexUnavailable:
            raise
        except Exception as e:
            if _unreachable(e):
                raise IndexUnavailable(
                    f"vector index: {self.where} cannot be reached ({type(e).__name__}: {e})"
                ) from e
            raise

    def _open(self) -> Any:
        return self._client.get_or_create_collection(
            self.collection_name, metadata={"hnsw:space": "cosine"}, embedding_function=None
        )

    def count(self) -> int:
        with self._reaching():
            return int(self._col.count())

    def upsert(self, facts: list[Fact]) -> None:
        if not facts:
            return
        vecs = self.embedder.embed([f.text for f in facts])
        for i in range(0, len(facts), 1000):
            part = facts[i : i + 1000]
            with self._reaching():
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
        vecs = self.embedder.embed(texts)
        with self._reaching():
            res = self._col.query(
                query_embeddings=vecs, n_results=min(k, n),
                where={"current": True} if current_only else None, include=["distances"],
            )
        return [
            [(fid, 1.0 - float(d)) for fid, d in zip(ids, dists)]
            for ids, dists in zip(res["ids"], res["distances"])
        ]

    def sync(self, store: Store, batch: int = 500) -> int:
        """Push facts queued by committed transactions; returns how many were indexed.
        Raises IndexUnavailable if the server cannot be reached: what was not pushed stays queued."""
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
        with self._reaching():
            try:
                self._client.delete_collection(self.collection_name)
            except Exception as e:  # noqa: BLE001 - absent collection: nothing to drop
                if _unreachable(e):
                    raise
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

