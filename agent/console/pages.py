"""What every console page shares: templates, redirects, the CSRF-checked form reader,
the browser session (a signed cookie naming the token it was opened with), errors."""
from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse

from agent.security import LOCAL_ADMIN, Principal, Scope, Tokens
from agent.service.errors import InvalidField
from agent.views import day, when

TEMPLATES = Path(__file__).resolve().parent / "templates"
COOKIE = "knowd_console"
CHAT_COOKIE = "knowd_chat"
MAX_FORM_BYTES = 64_000


def _pct(v: Any) -> str:
    return "–" if v is None else f"{100 * v:.0f}%"


def base(request: Request) -> str:
    return request.scope.get("root_path", "").rstrip("/")


def doc_url(b: str, doc_id: str | None) -> str:
    return f"{b}/document?{urlencode({'id': doc_id or ''})}"


def fact_url(b: str, fact_id: str) -> str:
    return f"{b}/facts/{quote(fact_id, safe='')}"


class Pages:
    """Rendering and request helpers of one console app (its templates and secrets)."""

    def __init__(self, tokens: Tokens):
        self.tokens = tokens
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=jinja2.select_autoescape(["html"]),
            trim_blocks=True, lstrip_blocks=True,
        )
        self.env.filters.update(when=when, day=day, pct=_pct)
        self.csrf = hmac.new(secrets.token_bytes(32), b"knowd-console-csrf", hashlib.sha256).hexdigest()

    # ------------------------------------------------------------------ sessions
    def session_value(self, p: Principal) -> str | None:
        key = self.tokens.session_key(p.name)
        return None if key is None else f"{p.name}.{hmac.new(key, p.name.encode(), hashlib.sha256).hexdigest()}"

    def session_principal(self, request: Request) -> Principal | None:
        """The principal of the browser's session cookie, if it is valid for a configured token."""
        name, _, _ = request.cookies.get(COOKIE, "").rpartition(".")
        scope = self.tokens.scope_of(name) if name else None
        if scope is None:
            return None
        p = Principal(name, scope)
        expected = self.session_value(p) or ""
        return p if hmac.compare_digest(request.cookies.get(COOKIE, "").encode(), expected.encode()) else None

    def principal(self, request: Request) -> Principal:
        """Who is looking (after the route's scope check): for hiding what they may not do."""
        return getattr(request.state, "principal", None) or (LOCAL_ADMIN if not self.tokens.required else
                                                             Principal("?", Scope.READ))

    # ------------------------------------------------------------------ responses
    def render(self, request: Request, name: str, code: int = 200, **ctx: Any) -> HTMLResponse:
        b = base(request)
        ctx.setdefault("msg", request.query_params.get("msg", "")[:500])
        ctx.setdefault("err", request.query_params.get("err", "")[:500])
        who = getattr(request.state, "principal", None)
        html = self.env.get_template(name).render(
            base=b, csrf=self.csrf, page=name.removesuffix(".html"), token_required=self.tokens.required,
            doc_url=lambda d: doc_url(b, d), fact_url=lambda f: fact_url(b, f), who=who,
            admin=who is not None and who.allows(Scope.ADMIN), **ctx,
        )
        return HTMLResponse(html, status_code=code, headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"})

    def back(self, request: Request, path: str, **params: str) -> RedirectResponse:
        q = ("&" if "?" in path else "?") + urlencode(params) if params else ""
        return RedirectResponse(base(request) + path + q, status_code=303)

    async def form(self, request: Request) -> dict[str, str]:
        """A POST's url-encoded form, after the CSRF and same-origin checks (a request with
        the bearer header needs neither: a browser cannot be made to send one)."""
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype not in ("application/x-www-form-urlencoded", ""):
            raise FormError(415, f"expected a form (application/x-www-form-urlencoded), not {ctype}")
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_FORM_BYTES:
            raise FormError(413, f"form over {MAX_FORM_BYTES:,} bytes")
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > MAX_FORM_BYTES:
                raise FormError(413, f"form over {MAX_FORM_BYTES:,} bytes")
        try:
            parsed = parse_qs(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=50)
        except (UnicodeDecodeError, ValueError) as e:
            raise FormError(400, f"malformed form: {e}") from None
        fields = {k: v[-1].replace("\x00", "") for k, v in parsed.items()}
        if not request.headers.get("authorization"):
            origin = request.headers.get("origin")
            if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host", ""):
                raise FormError(403, "cross-origin form post refused")
            if not hmac.compare_digest(fields.get("csrf", "").encode(), self.csrf.encode()):
                raise FormError(403, "missing or stale form token: reload the page and try again")
        return fields


class FormError(Exception):
    """A request the console answers with an error page of this status."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def need(fields: dict[str, str], name: str, limit: int = 2000) -> str:
    """A required form field, stripped; InvalidField (400) when missing or too long."""
    v = fields.get(name, "").strip()
    if not v:
        raise InvalidField(f"'{name}' is required", name)
    if len(v) > limit:
        raise InvalidField(f"'{name}' is over {limit:,} characters", name)
    return v


def pages(request: Request) -> Pages:
    return request.app.state.pages
