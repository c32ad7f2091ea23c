"""What knowd is doing, as every face reports it."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from agent.service.consolidation import adapter_status
from agent.views import iso
from stores.types import utcnow

if TYPE_CHECKING:
    from agent.app import App


def base_model(app: App) -> str:
    cfg = app.cfg
    if cfg.llm.backend == "openai":
        return cfg.llm.openai.model
    return os.path.basename(cfg.llm.model_path) if cfg.llm.model_path else "gemma-3-270m-q4_k_m.gguf (bundled)"


def daemon_status(app: App) -> dict[str, Any]:
    """Daemon, connectors, inbox, facts, last consolidation (`knowd status`)."""
    from agent.daemon import collect_status

    return collect_status(app)


def model_status(app: App) -> dict[str, Any]:
    """The served model, the live adapter, and usage so far (never loads the model)."""
    llm = app.__dict__.get("llm")
    return {"id": app.cfg.server.model_name, "base_model": base_model(app), "loaded": llm is not None,
            "usage": llm.meter.snapshot() if llm is not None else None}


def api_status(app: App) -> dict[str, Any]:
    """GET /v1/status: fact and inbox counts, model, live adapter, time."""
    return {"facts": app.store.count_facts(), "inbox": app.store.inbox_counts(), "adapter": adapter_status(app),
            "model": model_status(app), "time": iso(utcnow())}
