"""The chat pane (read scope): the same ChatAgent as the API, a transcript per browser."""
from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from agent.console.pages import CHAT_COOKIE, FormError, base, need, pages
from agent.security import Scope, requires
from agent.service import Service
from agent.service.facts import when

log = logging.getLogger("agent.console")
router = APIRouter(dependencies=[Depends(requires(Scope.READ))])


def _set_session(request: Request, r: Response, sid: str) -> Response:
    r.set_cookie(CHAT_COOKIE, sid, httponly=True, samesite="strict", path=base(request) or "/")
    return r


@router.get("/chat")
def chat_page(request: Request) -> Response:
    svc: Service = request.app.state.service
    sid, new = svc.transcripts.session_id(request.cookies.get(CHAT_COOKIE))
    r = pages(request).render(request, "chat.html", turns=svc.transcripts.turns(sid), question="")
    return _set_session(request, r, sid) if new else r


@router.post("/chat")
async def chat_ask(request: Request) -> Response:
    from graphs.chat import ChatError

    svc: Service = request.app.state.service
    ui = pages(request)
    fields = await ui.form(request)
    question = need(fields, "question", svc.app.cfg.chat.max_question_chars)
    default_time = when(fields.get("as_of", "").strip()[:100])
    sid, new = svc.transcripts.session_id(request.cookies.get(CHAT_COOKIE))
    try:
        r = await svc.model.run(svc.agent.ask, question, session=sid, default_time=default_time)
    except ChatError as e:
        raise FormError(400, str(e)) from None
    svc.transcripts.add(sid, question, r)
    resp = ui.back(request, "/chat")
    resp.headers["Location"] += "#last"
    return _set_session(request, resp, sid) if new else resp


@router.post("/chat/forget")
async def chat_forget(request: Request) -> Response:
    svc: Service = request.app.state.service
    ui = pages(request)
    await ui.form(request)
    sid, _ = svc.transcripts.session_id(request.cookies.get(CHAT_COOKIE))
    svc.transcripts.drop(sid)
    try:
        await svc.model.run(svc.agent.forget, sid)
    except Exception:  # nothing remembered for this session yet
        log.debug("chat forget %s", sid, exc_info=True)
    return ui.back(request, "/chat")

