"""The application object: configuration plus lazily built components.

This is where knowd is wired together: the configured LLM backend
(agent/llm.py), embedder (agent/embeddings.py) and vector index are picked here
and handed to the graphs. CLI commands, the daemon and the HTTP server all hold
one `App`. Components are built on first use, so `knowd facts` never loads the
LLM and nothing loads a model unless it is actually needed.
"""
from __future__ import annotations

import threading
from functools import cached_property
from typing import Any

from agent.config import Config
from agent.embeddings import build_embedder
from agent.llm import build_llm
from graphs.llm import LLM
from stores.sqlite import Store
from stores.vector import Embedder, FactIndex


def build_index(cfg: Config, embedder: Embedder) -> FactIndex:
    """The configured index: embedded Chroma under data_dir, or a Chroma server."""
    if cfg.index.mode == "server":
        return FactIndex(embedder, host=cfg.index.host, port=cfg.index.port, collection=cfg.index.collection)
    return FactIndex(embedder, path=cfg.data_path / "chroma", collection=cfg.index.collection)


class App:
    def __init__(
        self, cfg: Config, *, llm: LLM | None = None, embedder: Embedder | None = None,
        index: FactIndex | None = None, config_path: Any = None,
    ):
        self.cfg = cfg
        # the config.yaml `cfg` was read from (None: built in code); the console writes connectors to it
        self.config_path = config_path
        # the Daemon running over this App in this process, if any (set by Daemon.start):
        # the console asks it to reload connectors and to look at a retried document at once
        self.daemon: Any = None
        self._lock = threading.Lock()
        self._names: Any = None  # graphs.keyed.names.NameIndex, built on the first ingest
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
        from graphs.keyed.names import NameIndex

        with self._lock:  # one index of the store's names per process, kept up to date by each commit
            if self._names is None:
                self._names = NameIndex(self.store.key_names())
        return IngestContext(store=self.store, index=self.index, llm=self.llm, cfg=self.cfg.ingest, names=self._names)

    def close(self) -> None:
        if "store" in self.__dict__:
            self.store.close()
