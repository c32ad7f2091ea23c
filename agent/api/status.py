"""GET /v1/status (read scope): fact and inbox counts, model, live adapter."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from agent.security import Scope, requires
from agent.service.status import api_status

router = APIRouter(dependencies=[Depends(requires(Scope.READ))])


@router.get("/v1/status")
def status(request: Request) -> dict[str, Any]:
    return api_status(request.app.state.service.app)
