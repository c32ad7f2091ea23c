"""Connectors: their status (read); add, test, pause and resume (admin)."""
from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from agent.console.pages import need, pages
from agent.security import Principal, Scope, requires
from agent.service import connectors as connectors_service
from agent.service.errors import InvalidField

router = APIRouter()


def _page(request: Request, test: dict[str, Any] | None = None) -> Response:
    app = request.app.state.service.app
    return pages(request).render(
        request, "connectors.html", connectors=connectors_service.statuses(app), kinds=connectors_service.kinds(),
        daemon=connectors_service.daemon_state(app), config_path=connectors_service.config_path(app), test=test,
        form={},
    )


@router.get("/connectors", dependencies=[Depends(requires(Scope.READ))])
def connectors_page(request: Request) -> Response:
    return _page(request)


@router.post("/connectors/add")
async def connector_add(request: Request, who: Principal = Depends(requires(Scope.ADMIN))) -> Response:
    ui = pages(request)
    fields = await ui.form(request)
    item = connectors_service.item_from_fields(need(fields, "name", 100), need(fields, "kind", 100),
                                               fields.get("interval_s", ""), fields.get("options", ""))
    ok, msg = await asyncio.to_thread(connectors_service.add, request.app.state.service.app, item, who.name)
    return ui.back(request, "/connectors", **({"msg": msg} if ok else {"err": msg}))


@router.post("/connectors/test", dependencies=[Depends(requires(Scope.ADMIN))])
async def connector_test(request: Request) -> Response:
    name = need(await pages(request).form(request), "name", 100)
    test = await asyncio.to_thread(connectors_service.test, request.app.state.service.app, name)
    return _page(request, test)


@router.post("/connectors/pause")
async def connector_pause(request: Request, who: Principal = Depends(requires(Scope.ADMIN))) -> Response:
    ui = pages(request)
    fields = await ui.form(request)
    name, action = need(fields, "name", 100), fields.get("action", "pause")
    if action not in ("pause", "resume"):
        raise InvalidField(f"action must be pause or resume, not {action[:40]!r}", "action")
    msg = connectors_service.set_paused(request.app.state.service.app, name, action == "pause", who.name)
    return ui.back(request, "/connectors", msg=msg)
