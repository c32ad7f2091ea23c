"""Documents over HTTP.

    POST /v1/documents                      write: push ingest, one document object or an array
                                            of them (the JSONL schema of `knowd ingest`), in the
                                            durable inbox before the 202; the daemon ingests them
    GET  /v1/documents/{id}/operations      read: what a document changed, with the model output
    POST /v1/documents/{id}/revert          admin: undo a document's changes
    POST /v1/inbox/{item}/retry             admin: queue a failed inbox item again
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from agent.api.body import parse_json_body, read_body
from agent.api.errors import from_knowd
from agent.logging_setup import log_event
from agent.security import Principal, Scope, requires
from agent.service import Service
from agent.service import documents as documents_service
from agent.service.errors import InvalidField
from agent.views import iso

log = logging.getLogger("agent.api")
router = APIRouter()


@router.post("/v1/documents")
async def post_documents(request: Request, who: Principal = Depends(requires(Scope.WRITE))) -> JSONResponse:
    svc: Service = request.app.state.service
    cfg = svc.app.cfg
    raw = await read_body(request, cfg.server.max_documents_bytes, "server.max_documents_bytes")
    try:
        docs = documents_service.parse_documents(parse_json_body(raw, clean=False), cfg.ingest.max_document_bytes)
    except InvalidField as e:
        raise from_knowd(e, invalid_status=422) from None
    new = await asyncio.to_thread(documents_service.push, svc.app, docs, who.name, "api")
    queued = sum(new)
    log_event(log, "documents_posted", documents=len(docs), queued=queued, duplicates=len(docs) - queued,
              actor=who.name)
    return JSONResponse({
        "object": "list", "ids": [d.id for d in docs], "queued": queued, "duplicates": len(docs) - queued,
        "data": [{"id": d.id, "status": "queued" if n else "duplicate", "content_hash": d.content_hash}
                 for d, n in zip(docs, new)],
    }, status_code=202)


@router.get("/v1/documents/{doc_id}/operations", dependencies=[Depends(requires(Scope.READ))])
def document_operations(request: Request, doc_id: str, prompts: bool = False) -> dict[str, Any]:
    rep = documents_service.report(request.app.state.service.app, doc_id)
    ops = []
    for row in rep.operations:
        o, call = row.op, row.call
        e: dict[str, Any] = {"id": o.id, "op": o.op, "fact_id": o.fact_id, "before": o.before, "after": o.after,
                             "time": iso(o.time), "detail": o.detail, "reverted": o.reverted, "actor": o.actor,
                             "model_call": None}
        if call:
            e["model_call"] = {"id": call["id"], "step": call["step"], "model": call["model"],
                               "output": call["output"], "error": call["error"],
                               **({"prompt": call["prompt"]} if prompts else {})}
        ops.append(e)
    doc = rep.document
    meta = {"title": doc.title, "url": doc.url, "source": doc.source, "published_at": iso(doc.published_at)} \
        if doc else {}
    return {"document": {**rep.status, **meta}, "operations": ops}


@router.post("/v1/documents/{doc_id}/revert")
async def revert_document(request: Request, doc_id: str,
                          who: Principal = Depends(requires(Scope.ADMIN))) -> dict[str, Any]:
    svc: Service = request.app.state.service
    n = await svc.model.run(documents_service.revert, svc.app, doc_id, who.name)  # the index sync embeds
    return {"id": doc_id, "status": "reverted", "history_entries": n}


@router.post("/v1/inbox/{item_id}/retry")
async def retry_item(request: Request, item_id: int, who: Principal = Depends(requires(Scope.ADMIN))) -> dict[str, Any]:
    svc: Service = request.app.state.service
    msg = await asyncio.to_thread(documents_service.retry, svc.app, item_id, who.name)
    return {"item": item_id, "status": "queued", "message": msg}
