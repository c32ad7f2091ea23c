"""The facts pages (read scope): search now or as of a date; one fact's timeline."""
from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from agent.console.pages import pages
from agent.security import Scope, requires
from agent.service import Service
from agent.service import facts as facts_service
from agent.views import iso

router = APIRouter(dependencies=[Depends(requires(Scope.READ))])


@router.get("/")
def index(request: Request) -> Response:
    return pages(request).back(request, "/facts")


@router.get("/facts")
async def facts_page(request: Request, q: str = "", as_of: str = "", all: bool = False) -> Response:
    svc: Service = request.app.state.service
    q, as_of = q.strip()[:500], as_of.strip()[:100]
    at = facts_service.when(as_of)
    if q:
        found = await svc.model.run(facts_service.search, svc.app, q, at=at, include_stale=all, limit=50)
    else:
        found = await asyncio.to_thread(facts_service.list_facts, svc.app, at=at, include_stale=all, limit=500)
    return pages(request).render(request, "facts.html", rows=found, q=q, as_of=as_of, all=all,
                                 t=iso(at.end if at else None), counts=facts_service.counts(svc.app))


@router.get("/facts/{fact_id}")
def fact_page(request: Request, fact_id: str) -> Response:
    p = facts_service.page(request.app.state.service.app, fact_id)
    return pages(request).render(request, "fact.html", fact=p.fact, supersedes=p.supersedes,
                                 superseded_by=p.superseded_by)
