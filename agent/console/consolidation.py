"""Consolidation: runs, reports and adapter versions (read); Ship and Rollback (admin)."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, Response
from markupsafe import Markup

from agent.console.pages import need, pages
from agent.security import Principal, Scope, requires
from agent.service import consolidation as consolidation_service

router = APIRouter()
read = [Depends(requires(Scope.READ))]


@router.get("/consolidation", dependencies=read)
def consolidation_page(request: Request) -> Response:
    return pages(request).render(request, "consolidation.html",
                                 **consolidation_service.overview(request.app.state.service.app))


@router.get("/consolidation/runs/{run_id}/", dependencies=read)
def run_page(request: Request, run_id: str) -> Response:
    r = consolidation_service.report(request.app.state.service.app, run_id)
    return pages(request).render(request, "run.html", rec=r.rec, report=Markup(r.html_body) if r.html_body else None,
                                 md=r.markdown, pngs=r.pngs, gate=r.rec.get("gate"), version=r.version, live=r.live)


@router.get("/consolidation/runs/{run_id}/{name}", dependencies=read)
def run_file(request: Request, run_id: str, name: str) -> Response:
    p = consolidation_service.run_file(request.app.state.service.app, run_id, name)
    return FileResponse(p, media_type="image/png", headers={"Cache-Control": "no-store"})


@router.post("/consolidation/ship")
async def ship(request: Request, who: Principal = Depends(requires(Scope.ADMIN))) -> Response:
    ui = pages(request)
    version = need(await ui.form(request), "version", 40)
    return ui.back(request, "/consolidation",
                   msg=consolidation_service.ship(request.app.state.service.app, version, who.name))


@router.post("/consolidation/rollback")
async def rollback(request: Request, who: Principal = Depends(requires(Scope.ADMIN))) -> Response:
    ui = pages(request)
    await ui.form(request)
    return ui.back(request, "/consolidation", msg=consolidation_service.rollback(request.app.state.service.app, who.name))
