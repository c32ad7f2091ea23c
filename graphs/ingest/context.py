"""What every ingest node may use at run time (LangGraph `context`), for both revisions."""
from __future__ import annotations

from dataclasses import dataclass

from graphs.config import IngestConfig
from graphs.keyed.names import NameIndex
from graphs.llm import LLM
from stores.sqlite import Store
from stores.vector import FactIndex


@dataclass
class IngestContext:
    """Run-time dependencies handed to every node (LangGraph `context`)."""

    store: Store
    index: FactIndex
    llm: LLM
    cfg: IngestConfig
    names: NameIndex | None = None  # the store's full names, loaded on first use (keyed revision)

    def name_index(self) -> NameIndex:
        if self.names is None:
            self.names = NameIndex(self.store.key_names())
        return self.names
