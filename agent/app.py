"""The application object: configuration plus lazily built components.

CLI commands, the daemon and the HTTP server all hold one `App`. Components are
built on first use, so `knowd facts` never loads the LLM and nothing loads torch
unless embeddings are actually needed.
"""
from __future__ import annotations

import threading
from functools import cached_property
from typing import Any

from agent.config import Config
from agent.embeddings import Embedder, build_embedder
from agent.llm import LLM, build_llm
from stores.sqlite import Store
from stores.vector import FactIndex, build_index


class App:
    def __init__(
        self, cfg: Config, *, llm: LLM | None = None, embedder: Embedder | None = None,
        index: FactIndex | None = None,
    ):
        self.cfg = cfg
        self._lock = threading.Lock()
        # injected components (tests, benchmarks) win over the configured ones
        if llm is not None:
            self.__dict__["llm"] = llm
        if embedder is not None:
            self.__dict__["embedder"] = embedder
        if index is not None:
            self.__dict__["index"] = index

    @cached_property
    def store(self) -> Store:
        self.cfg.data_path.mkdir(parents=True, exist_ok=True)
        return Store(self.cfg.data_path / "knowd.sqlite")

    @cached_property
    def embedder(self) -> Embedder:
        return build_embedder(self.cfg)

    @cached_property
    def index(self) -> FactIndex:
        idx = build_index(self.cfg, self.embedder)
        idx.sync(self.store)  # catch up on facts committed before a crash
        return idx

    @cached_property
    def llm(self) -> LLM:
        return build_llm(self.cfg)

    def ingest_context(self) -> Any:
        from graphs.ingest import IngestContext

        return IngestContext(store=self.store, index=self.index, llm=self.llm, cfg=self.cfg.ingest)

    def close(self) -> None:
        if "store" in self.__dict__:
            self.store.close()
