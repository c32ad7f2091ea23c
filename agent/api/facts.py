"""Facts over HTTP (read scope).

    GET /v1/facts?query=&as_of=&all=&limit=   facts true now / at a time / all, optionally by relevance
    GET /v1/facts/{id}                       one fact and its true/false history with sources
    GET /v1/facts/{id}/history               the history alone
"""
from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Request

from agent.api.errors import ApiError
from agent.security import Scope, requires
from agent.service import Service
from agent.service import facts as facts_service
from agent.views import fact_json, iso

router = APIRouter(dependencies=[Depends(requires(Scope.READ))])


@router.get("/v1/facts")
async def list_facts(request: Request, query: str | None = None, as_of: str | None = None, all: bool = False,
                     limit: int = 50) -> dict[str, Any]:
    svc: Service = request.app.state.service
    if not 1 <= limit <= 1000:
        raise ApiError(400, "limit must be between 1 and 1000", param="limit")
    at = facts_service.when(as_of)
    if query:
        found = await svc.model.run(facts_service.search, svc.app, query, at=at, include_stale=all, limit=limit)
    else:
        found = await asyncio.to_thread(facts_service.list_facts, svc.app, at=at, include_stale=all, limit=limit)
    return {"as_of": iso(at.end if at else None), "all": all, "query": query, "facts": [fact_json(v) for v in found]}


@router.get("/v1/facts/{fact_id}")
def get_fact(request: Request, fact_id: str) -> dict[str, Any]:
    return fact_json(facts_service.get(request.app.state.service.app, fact_id), with_documents=True)


@router.get("/v1/facts/{fact_id}/history")
def fact_history(request: Request, fact_id: str) -> dict[str, Any]:
    f = get_fact(request, fact_id)
    return {"id": f["id"], "text": f["text"], "true": f["true"], "history": f["history"]}
