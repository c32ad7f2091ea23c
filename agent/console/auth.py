"""Log in with a token (the session cookie then names it) and log out."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from agent.console.pages import COOKIE, base, pages

router = APIRouter()


@router.get("/login")
def login_page(request: Request, next: str = "") -> Response:
    ui = pages(request)
    if not ui.tokens.required:
        return ui.back(request, "/facts")
    return ui.render(request, "login.html", next=next, error="")


@router.post("/login")
async def login(request: Request) -> Response:
    ui = pages(request)
    fields = await ui.form(request)
    nxt = fields.get("next", "")
    if not nxt.startswith(base(request) + "/") or "//" in nxt or "\\" in nxt:
        nxt = base(request) + "/facts"
    if not ui.tokens.required:
        return RedirectResponse(nxt, status_code=303)
    who = ui.tokens.authenticate(fields.get("token", "").strip())
    value = ui.session_value(who) if who is not None else None
    if value is None:
        return ui.render(request, "login.html", 401, next=nxt, error="wrong token")
    r = RedirectResponse(nxt, status_code=303)
    r.set_cookie(COOKIE, value, httponly=True, samesite="strict", path=base(request) or "/")
    return r


@router.post("/logout")
async def logout(request: Request) -> Response:
    ui = pages(request)
    await ui.form(request)
    r = ui.back(request, "/login")
    r.delete_cookie(COOKIE, path=base(request) or "/")
    return r
