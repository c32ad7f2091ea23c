"""Documents and the inbox: lists and a document's changes (read); Revert and Retry (admin)."""
from __future__ import annotations

import asyncio
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from agent.console.pages import need, pages
from agent.security import Principal, Scope, requires
from agent.service import Service
from agent.service import documents as documents_service
from agent.service.connectors import daemon_state
from agent.service.errors import InvalidField

router = APIRouter()
read = [Depends(requires(Scope.READ))]


@router.get("/documents", dependencies=read)
def documents_page(request: Request, status: str = "") -> Response:
    app = request.app.state.service.app
    return pages(request).render(request, "documents.html", status=status, daemon=daemon_state(app),
                                 **documents_service.listing(app, status or None))


@router.get("/document", dependencies=read)
def document_page(request: Request, id: str = "") -> Response:
    if not id:
        raise InvalidField("which document? (?id=...)", "id")
    rep = documents_service.report(request.app.state.service.app, id)
    return pages(request).render(request, "document.html", doc=rep.document, st=rep.status, ops=rep.operations,
                                 texts=rep.fact_texts, other_calls=rep.other_calls, can_revert=rep.can_revert)


@router.post("/document/revert")
async def revert(request: Request, who: Principal = Depends(requires(Scope.ADMIN))) -> Response:
    svc: Service = request.app.state.service
    ui = pages(request)
    doc_id = need(await ui.form(request), "id")
    n = await svc.model.run(documents_service.revert, svc.app, doc_id, who.name)  # the index sync embeds
    return ui.back(request, f"/document?{urlencode({'id': doc_id})}", msg=f"reverted {n} history entries")


@router.post("/inbox/retry")
async def retry(request: Request, who: Principal = Depends(requires(Scope.ADMIN))) -> Response:
    svc: Service = request.app.state.service
    ui = pages(request)
    item = documents_service.parse_item(need(await ui.form(request), "item", 20))
    msg = await asyncio.to_thread(documents_service.retry, svc.app, item, who.name)
    return ui.back(request, "/documents", msg=msg)
