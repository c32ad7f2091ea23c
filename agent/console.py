"""The review console: server-rendered HTML pages over the store, the inbox, the
connectors, the consolidation runs and the chat, served by the HTTP API's server
under `/console/` (same port, same token, same bind rules; agent/server.py mounts it).

    GET  /console/facts?q=&as_of=&all=        search, now or as of a date
    GET  /console/facts/{id}                  a fact's true/false timeline and its documents
    GET  /console/documents[?status=]         documents, and the inbox's failed ones (Retry)
    GET  /console/document?id=                what a document changed and why, model calls (Revert)
    GET  /console/connectors                  status, last error; add / test / pause / resume
    GET  /console/consolidation               runs, gate decisions, adapter versions (Ship / Rollback)
    GET  /console/consolidation/runs/{id}/    one run's report, its plots inline
    GET  /console/chat                        a chat pane over the same ChatAgent as the API
    POST ...                                  the actions above, each a form post

Auth: with no token configured (the server then listens on loopback only) the pages are
open. With a token, a request needs `Authorization: Bearer TOKEN` or the session cookie
the login page sets after it was given the token (HttpOnly, SameSite=Strict); a page
asked for without either redirects to the login page, a POST is 401. Every POST form
carries a CSRF field (an HMAC of a per-process secret) and a cross-origin `Origin` is
refused, so another site cannot make a browser post here; a request with the bearer
header needs neither. Form bodies are small url-encoded forms, read without extra
packages; bad input is a 4xx page, never a 500.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import secrets
import threading
from collections import OrderedDict
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import jinja2
from markupsafe import Markup
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from agent.errors import BackendError, KnowdError
from stores.sqlite import fmt_time
from stores.types import utcnow

if TYPE_CHECKING:
    from agent.app import App
    from graphs.chat import ChatAgent

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).resolve().parent / "templates"
COOKIE = "knowd_console"
CHAT_COOKIE = "knowd_chat"
MAX_FORM_BYTES = 64_000
MAX_CHAT_SESSIONS = 100
MAX_CHAT_TURNS = 50
_RUN_ID = re.compile(r"^[\w.-]{1,100}$")
_PNG = re.compile(r"^[\w.-]{1,100}\.png$")
_CITE = re.compile(r"\[(\d{1,3})\]")


class ConsoleError(Exception):
    """Answered as an HTML error page with this status."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class _NeedLogin(Exception):
    pass


# ----------------------------------------------------------------------------- helpers
def _as_of(text: str) -> Any:
    """An "as of" field: None for empty or "now", else the parsed TimeIntent; 400 when it
    does not parse."""
    from graphs.time_intent import parse_as_of

    try:
        return parse_as_of(text, utcnow())
    except ValueError as e:
        raise ConsoleError(400, f"as of {text!r}: {e}") from None


def _when(value: Any, with_time: bool = True) -> str:
    """A stored time (datetime or '2024-06-01T10:00:00.000000Z') as '2024-06-01 10:00' UTC."""
    if not value:
        return "–"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    return value.strftime("%Y-%m-%d %H:%M" if with_time else "%Y-%m-%d")


def _pct(v: Any) -> str:
    return "–" if v is None else f"{100 * v:.0f}%"


def _doc_url(base: str, doc_id: str | None) -> str:
    return f"{base}/document?{urlencode({'id': doc_id or ''})}"


def _fact_url(base: str, fact_id: str) -> str:
    return f"{base}/facts/{quote(fact_id, safe='')}"


def _since(f: Any, t: datetime | None) -> str:
    live = [h for h in f.history if not h.reverted and (t is None or h.time <= t)]
    return _when(live[-1].time, False) if live else "–"


def _answer_parts(answer: str, citations: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any] | None]]:
    """The answer split into text and [n] markers, each marker with the fact it cites."""
    by_n = {c["n"]: c for c in citations}
    out: list[tuple[str, dict[str, Any] | None]] = []
    pos = 0
    for m in _CITE.finditer(answer):
        c = by_n.get(int(m.group(1)))
        if c is None:
            continue
        out.append((answer[pos:m.start()], None))
        out.append((m.group(0), c))
        pos = m.end()
    out.append((answer[pos:], None))
    return out


def _report_body(run_dir: Path) -> str | None:
    """The <body> of the trainer's report.html (trainer/report.py escapes all it writes)."""
    try:
        text = (run_dir / "report.html").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    m = re.search(r"<body[^>]*>(.*)</body>", text, re.S | re.I)
    return m.group(1) if m else text


# ----------------------------------------------------------------------------- the console
def build_console(app: App, *, worker: Any, agent: ChatAgent, token: str | None) -> FastAPI:
    """The console as an ASGI app, to be mounted at /console by agent.server.create_app.
    `worker` is the API's model thread, agent.server.ModelWorker (chat, search and the
    revert's reindex run there; the console does not import the server: it is mounted by it)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=jinja2.select_autoescape(["html"]),
        trim_blocks=True, lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["day"] = lambda v: _when(v, False)
    env.filters["pct"] = _pct
    secret = secrets.token_bytes(32)
    key = token.encode() if token else secret
    session_value = hmac.new(key, b"knowd-console-session", hashlib.sha256).hexdigest()
    csrf_value = hmac.new(secret, b"knowd-console-csrf", hashlib.sha256).hexdigest()
    transcripts: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
    write_lock = threading.Lock()  # config.yaml edits, one at a time
    data_dir = app.cfg.data_path

    def bearer_ok(request: Request) -> bool:
        if token is None:
            return False
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode())

    def authed(request: Request) -> bool:
        if token is None or bearer_ok(request):
            return True
        return hmac.compare_digest(request.cookies.get(COOKIE, "").encode(), session_value.encode())

    async def guard(request: Request) -> None:
        if not authed(request):
            raise _NeedLogin()

    console = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    def base(request: Request) -> str:
        return request.scope.get("root_path", "").rstrip("/")

    def render(request: Request, name: str, code: int = 200, **ctx: Any) -> HTMLResponse:
        b = base(request)
        ctx.setdefault("msg", request.query_params.get("msg", "")[:500])
        ctx.setdefault("err", request.query_params.get("err", "")[:500])
        html = env.get_template(name).render(
            base=b, csrf=csrf_value, page=name.removesuffix(".html"), token_required=token is not None,
            doc_url=lambda d: _doc_url(b, d), fact_url=lambda f: _fact_url(b, f), **ctx,
        )
        return HTMLResponse(html, status_code=code, headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"})

    def back(request: Request, path: str, **params: str) -> RedirectResponse:
        q = ("&" if "?" in path else "?") + urlencode(params) if params else ""
        return RedirectResponse(base(request) + path + q, status_code=303)

    async def form(request: Request) -> dict[str, str]:
        """A POST's url-encoded form, after the CSRF and same-origin checks."""
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype not in ("application/x-www-form-urlencoded", ""):
            raise ConsoleError(415, f"expected a form (application/x-www-form-urlencoded), not {ctype}")
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_FORM_BYTES:
            raise ConsoleError(413, f"form over {MAX_FORM_BYTES:,} bytes")
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > MAX_FORM_BYTES:
                raise ConsoleError(413, f"form over {MAX_FORM_BYTES:,} bytes")
        try:
            parsed = parse_qs(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=50)
        except (UnicodeDecodeError, ValueError) as e:
            raise ConsoleError(400, f"malformed form: {e}") from None
        fields = {k: v[-1].replace("\x00", "") for k, v in parsed.items()}
        if not bearer_ok(request):
            origin = request.headers.get("origin")
            if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host", ""):
                raise ConsoleError(403, "cross-origin form post refused")
            if not hmac.compare_digest(fields.get("csrf", "").encode(), csrf_value.encode()):
                raise ConsoleError(403, "missing or stale form token: reload the page and try again")
        return fields

    def need(fields: dict[str, str], name: str, limit: int = 2000) -> str:
        v = fields.get(name, "").strip()
        if not v:
            raise ConsoleError(400, f"'{name}' is required")
        if len(v) > limit:
            raise ConsoleError(400, f"'{name}' is over {limit:,} characters")
        return v

    # ------------------------------------------------------------------ errors
    @console.exception_handler(_NeedLogin)
    async def _need_login(request: Request, e: _NeedLogin) -> Response:
        if request.method in ("GET", "HEAD"):
            nxt = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"{base(request)}/login?{urlencode({'next': nxt})}", status_code=303)
        r = render(request, "error.html", 401, status=401, message="log in first: this console needs the server's token")
        r.headers["WWW-Authenticate"] = "Bearer"
        return r

    @console.exception_handler(ConsoleError)
    async def _console_error(request: Request, e: ConsoleError) -> Response:
        return render(request, "error.html", e.status, status=e.status, message=e.message)

    @console.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, e: StarletteHTTPException) -> Response:
        return render(request, "error.html", e.status_code, status=e.status_code, message=str(e.detail))

    @console.exception_handler(RequestValidationError)
    async def _validation(request: Request, e: RequestValidationError) -> Response:
        first = e.errors()[0] if e.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return render(request, "error.html", 400, status=400, message=f"{where}: {first.get('msg', 'invalid request')}")

    @console.exception_handler(Exception)
    async def _internal(request: Request, e: Exception) -> Response:
        log.exception("console: internal error on %s", request.url.path)
        return HTMLResponse(f"<h1>500</h1><p>internal error: {type(e).__name__}</p>", status_code=500)

    # ------------------------------------------------------------------ login
    @console.get("/login")
    def login_page(request: Request, next: str = "") -> Response:
        if token is None:
            return back(request, "/facts")
        return render(request, "login.html", next=next, error="")

    @console.post("/login")
    async def login(request: Request) -> Response:
        fields = await form(request)
        nxt = fields.get("next", "")
        if not nxt.startswith(base(request) + "/") or "//" in nxt or "\\" in nxt:
            nxt = base(request) + "/facts"
        if token is None:
            return RedirectResponse(nxt, status_code=303)
        given = fields.get("token", "").strip()
        if not hmac.compare_digest(given.encode(), token.encode()):
            return render(request, "login.html", 401, next=nxt, error="wrong token")
        r = RedirectResponse(nxt, status_code=303)
        r.set_cookie(COOKIE, session_value, httponly=True, samesite="strict", path=base(request) or "/")
        return r

    @console.post("/logout")
    async def logout(request: Request) -> Response:
        await form(request)
        r = back(request, "/login")
        r.delete_cookie(COOKIE, path=base(request) or "/")
        return r

    guarded = [Depends(guard)]

    # ------------------------------------------------------------------ facts
    @console.get("/", dependencies=guarded)
    def index(request: Request) -> Response:
        return back(request, "/facts")

    @console.get("/facts", dependencies=guarded)
    async def facts_page(request: Request, q: str = "", as_of: str = "", all: bool = False) -> Response:
        q, as_of = q.strip()[:500], as_of.strip()[:100]
        when = _as_of(as_of)
        t = when.end if when else None
        if q:
            from graphs.retrieval import hybrid_search

            hits = await worker.run(hybrid_search, app.store, app.index, q, 50, as_of=t,
                                    since=when.start if when else None, include_stale=all)
            found = [h.fact for h in hits]
        else:
            found = await asyncio.to_thread(app.store.list_facts, current_only=not all, as_of=None if all else t)
            found = found[:500]
        rows = [{"id": f.id, "text": f.text, "truth": f.truth_at(t), "since": _since(f, t), "changes": len(f.history),
                 "subject": f.subject} for f in found]
        return render(request, "facts.html", rows=rows, q=q, as_of=as_of, all=all, t=fmt_time(t),
                      counts=app.store.count_facts())

    @console.get("/facts/{fact_id}", dependencies=guarded)
    def fact_page(request: Request, fact_id: str) -> Response:
        store = app.store
        f = store.get_fact(fact_id)
        if f is None:
            raise ConsoleError(404, f"no fact {fact_id!r}")
        docs: dict[str, Any] = {}
        timeline = []
        for h in f.history:
            if h.doc_id and h.doc_id not in docs:
                docs[h.doc_id] = store.get_document(h.doc_id)
            d = docs.get(h.doc_id) if h.doc_id else None
            timeline.append({"time": h.time, "truth": h.truth, "op": h.op, "doc_id": h.doc_id, "reverted": h.reverted,
                             "title": (d.title if d else None) or h.doc_id, "url": d.url if d else None})
        old = store.get_fact(f.supersedes) if f.supersedes else None
        return render(request, "fact.html", fact=f, truth=f.truth_at(None), since=_since(f, None), timeline=timeline,
                      supersedes=old, superseded_by=store.facts_superseding(f.id))

    # ------------------------------------------------------------------ documents and the inbox
    @console.get("/documents", dependencies=guarded)
    def documents_page(request: Request, status: str = "") -> Response:
        if status not in ("", "pending", "done", "failed", "reverted"):
            raise ConsoleError(400, f"status must be one of pending, done, failed, reverted (not {status[:40]!r})")
        store = app.store
        return render(request, "documents.html", docs=store.list_documents(status or None, limit=300), status=status,
                      inbox=store.inbox_counts(), failed=store.inbox_items("failed", 200),
                      max_attempts=app.cfg.ingest.max_attempts, daemon=_daemon_state())

    @console.get("/document", dependencies=guarded)
    def document_page(request: Request, id: str = "") -> Response:
        store = app.store
        if not id:
            raise ConsoleError(400, "which document? (?id=...)")
        st = store.document_status(id)
        if st is None:
            raise ConsoleError(404, f"no document {id!r}")
        doc = store.get_document(id)
        calls = {c["id"]: c for c in store.model_calls(id)}
        ops = []
        for o in store.operations(id):
            call = calls.get(o.model_io_ref) if o.model_io_ref is not None else None
            if call is None and o.model_io_ref is not None:
                call = store.model_call(o.model_io_ref)
            ops.append({"op": o, "call": call})
        used = {o["call"]["id"] for o in ops if o["call"]}
        fact_ids = list(dict.fromkeys(o.fact_id for o in store.operations(id) if o.fact_id))
        texts = {f.id: f.text for f in store.get_facts(fact_ids)}
        return render(request, "document.html", doc=doc, st=st, ops=ops, texts=texts,
                      other_calls=[c for i, c in calls.items() if i not in used],
                      can_revert=st["status"] != "reverted" and any(not o["op"].reverted and o["op"].fact_id for o in ops))

    @console.post("/document/revert", dependencies=guarded)
    async def revert(request: Request) -> Response:
        from agent.cli.facts import revert_document

        doc_id = need(await form(request), "id")
        st = app.store.document_status(doc_id)
        if st is None:
            raise ConsoleError(404, f"no document {doc_id!r}")
        if st["status"] == "reverted":
            raise ConsoleError(409, f"{doc_id} is already reverted")
        try:  # the embedder runs on the model thread
            n = await worker.run(revert_document, app, doc_id)
        except KnowdError as e:
            raise ConsoleError(404, str(e)) from None
        return back(request, f"/document?{urlencode({'id': doc_id})}", msg=f"reverted {n} history entries")

    @console.post("/inbox/retry", dependencies=guarded)
    async def retry(request: Request) -> Response:
        raw = need(await form(request), "item", 20)
        if not raw.isdigit():
            raise ConsoleError(400, f"'item' must be an inbox item number, not {raw!r}")
        item = app.store.inbox_item(int(raw))
        if item is None:
            raise ConsoleError(404, f"no inbox item {raw}")
        if item["status"] != "failed" or not app.store.retry_inbox_item(item["id"]):
            raise ConsoleError(409, f"inbox item {raw} is {item['status']}, not failed")
        d = app.daemon
        if d is not None:
            d.wake()
            msg = f"{item['doc_id']} queued again; the daemon is ingesting it"
        else:
            msg = f"{item['doc_id']} queued again; the daemon (knowd run) ingests it"
        return back(request, "/documents", msg=msg)

    # ------------------------------------------------------------------ connectors
    def _daemon_state() -> dict[str, Any]:
        from agent.daemon import daemon_pid

        if app.daemon is not None:
            return {"where": "here", "pid": None}
        pid = daemon_pid(data_dir)
        return {"where": "elsewhere" if pid else "none", "pid": pid if pid and pid > 0 else None}

    def _config_path() -> Path | None:
        d = app.daemon
        p = (d.config_path if d is not None else None) or app.config_path
        return Path(p) if p else None

    @console.get("/connectors", dependencies=guarded)
    def connectors_page(request: Request) -> Response:
        from agent.daemon import collect_status
        from connectors.registry import list_connector_kinds

        st = collect_status(app)
        return render(request, "connectors.html", connectors=st["connectors"], kinds=list_connector_kinds(),
                      daemon=_daemon_state(), config_path=_config_path(), test=None, form={})

    @console.post("/connectors/add", dependencies=guarded)
    async def connector_add(request: Request) -> Response:
        from agent.connectors_file import add_connector, parse_option
        from agent.config import load_config

        fields = await form(request)
        name, kind = need(fields, "name", 100), need(fields, "kind", 100)
        if not re.fullmatch(r"[\w.-]+", name):
            raise ConsoleError(400, "a connector name is letters, digits, '.', '-' and '_'")
        item: dict[str, Any] = {"name": name, "kind": kind}
        interval = fields.get("interval_s", "").strip()
        if interval:
            try:
                item["interval_s"] = float(interval)
            except ValueError:
                raise ConsoleError(400, f"interval must be a number of seconds, not {interval[:40]!r}") from None
        opts = {}
        for line in fields.get("options", "").splitlines():
            if line.strip():
                try:
                    k, v = parse_option(line.strip())
                except KnowdError as e:
                    raise ConsoleError(400, str(e).replace("--option", "option")) from None
                opts[k] = v
        if opts:
            item["options"] = opts
        path = _config_path()
        if path is None:
            raise ConsoleError(409, "this server was started without a config file; add the connector with "
                                    "`knowd connectors add` instead")
        try:
            with write_lock:
                await asyncio.to_thread(add_connector, path, item)
        except KnowdError as e:  # ConfigError, ConnectorError: nothing was written
            raise ConsoleError(400, str(e)) from None
        d = app.daemon
        if d is not None:
            try:
                await asyncio.to_thread(d.reload_connectors)
            except KnowdError as e:
                return back(request, "/connectors", err=f"added {name} to {path}, but the reload failed: {e}")
            return back(request, "/connectors", msg=f"added {name}; the daemon polls it now")
        try:
            app.cfg.connectors = load_config(path).connectors
        except KnowdError:
            pass
        where = "a daemon running elsewhere picks it up within seconds" if _daemon_state()["where"] == "elsewhere" \
            else "no daemon is running: it is polled once `knowd run` starts"
        return back(request, "/connectors", msg=f"added {name} to {path}; {where}")

    @console.post("/connectors/test", dependencies=guarded)
    async def connector_test(request: Request) -> Response:
        from agent.daemon import collect_status, resolve_options
        from connectors.registry import build_connector, list_connector_kinds

        name = need(await form(request), "name", 100)
        cc = next((c for c in app.cfg.connectors if c.name == name), None)
        if cc is None:
            raise ConsoleError(404, f"no connector named {name!r}")

        def run() -> dict[str, Any]:
            connector = build_connector(cc.kind, cc.name, resolve_options(app.cfg, cc))
            cursor = app.store.cursor(name)
            result = connector.poll(cursor)
            docs = []
            for doc in result.documents[:20]:
                st = app.store.document_status(doc.id)
                docs.append({"id": doc.id, "title": doc.title, "time": doc.time, "text": " ".join(doc.text.split())[:300],
                             "seen": st is not None and st["status"] == "done" and st["content_hash"] == doc.content_hash})
            return {"docs": docs, "total": len(result.documents), "warnings": result.warnings, "error": None,
                    "polled_before": bool(cursor)}

        try:
            test = await asyncio.to_thread(run)
        except KnowdError as e:
            test = {"docs": [], "total": 0, "warnings": [], "error": str(e), "polled_before": False}
        except Exception as e:  # a plugin's bug: shown, like the daemon logs it
            test = {"docs": [], "total": 0, "warnings": [], "error": f"{type(e).__name__}: {e}", "polled_before": False}
        test["name"] = name
        return render(request, "connectors.html", connectors=collect_status(app)["connectors"],
                      kinds=list_connector_kinds(), daemon=_daemon_state(), config_path=_config_path(), test=test,
                      form={})

    @console.post("/connectors/pause", dependencies=guarded)
    async def connector_pause(request: Request) -> Response:
        from agent.daemon import set_paused

        fields = await form(request)
        name, action = need(fields, "name", 100), fields.get("action", "pause")
        if action not in ("pause", "resume"):
            raise ConsoleError(400, f"action must be pause or resume, not {action[:40]!r}")
        if not any(c.name == name for c in app.cfg.connectors):
            raise ConsoleError(404, f"no connector named {name!r}")
        set_paused(app.store, name, action == "pause")
        return back(request, "/connectors", msg=f"{name} {'paused' if action == 'pause' else 'resumed'}")

    # ------------------------------------------------------------------ consolidation
    def _runs() -> list[dict[str, Any]]:
        from trainer.runs import list_runs

        return list_runs(data_dir)

    def _run(run_id: str) -> dict[str, Any]:
        if not _RUN_ID.match(run_id):
            raise ConsoleError(404, f"no run {run_id!r}")
        rec = next((r for r in _runs() if r.get("id") == run_id and Path(r["dir"]).name == run_id), None)
        if rec is None:
            raise ConsoleError(404, f"no run {run_id!r}")
        return rec

    @console.get("/consolidation", dependencies=guarded)
    def consolidation_page(request: Request) -> Response:
        from trainer import adapters

        versions = adapters.list_versions(data_dir)
        runs = list(reversed(_runs()))
        for r in runs:
            r["has_report"] = (Path(r["dir"]) / "report.html").is_file() or (Path(r["dir"]) / "report.md").is_file()
        return render(request, "consolidation.html", runs=runs, head=adapters.LIST_HEAD, note=adapters.LIST_NOTE,
                      versions=[{"v": v, "row": v.row(), "shippable": v.gguf.is_file()} for v in reversed(versions)],
                      live=adapters.live(data_dir), history=list(reversed(adapters.history(data_dir)))[:20])

    @console.get("/consolidation/runs/{run_id}/", dependencies=guarded)
    def run_page(request: Request, run_id: str) -> Response:
        from trainer import adapters

        rec = _run(run_id)
        d = Path(rec["dir"])
        body = _report_body(d)
        md = None
        if body is None:
            try:
                md = (d / "report.md").read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                md = None
        pngs = sorted(p.name for p in d.glob("*.png") if _PNG.match(p.name))
        if body:
            pngs = [p for p in pngs if p not in body]
        version = rec.get("adapter_version")
        known = {v.version: v for v in adapters.list_versions(data_dir)}
        return render(request, "run.html", rec=rec, report=Markup(body) if body else None,
                      md=md, pngs=pngs, gate=rec.get("gate"), version=known.get(version) if version else None,
                      live=adapters.live_version(data_dir))

    @console.get("/consolidation/runs/{run_id}/{name}", dependencies=guarded)
    def run_file(run_id: str, name: str) -> Response:
        rec = _run(run_id)
        if not _PNG.match(name):
            raise ConsoleError(404, f"no file {name!r} in run {run_id}")
        d = Path(rec["dir"]).resolve()
        p = (d / name).resolve()
        if p.parent != d or not p.is_file():
            raise ConsoleError(404, f"no file {name!r} in run {run_id}")
        return FileResponse(p, media_type="image/png", headers={"Cache-Control": "no-store"})

    @console.post("/consolidation/ship", dependencies=guarded)
    async def ship(request: Request) -> Response:
        from trainer import adapters
        from trainer.errors import AdapterError

        version = need(await form(request), "version", 40)
        try:
            v = adapters.use_version(data_dir, version)
        except AdapterError as e:
            raise ConsoleError(404 if "no adapter version" in str(e) else 409, str(e)) from None
        return back(request, "/consolidation", msg=f"{v.version} is live; the model loads it before its next call")

    @console.post("/consolidation/rollback", dependencies=guarded)
    async def rollback(request: Request) -> Response:
        from trainer import adapters
        from trainer.errors import AdapterError

        await form(request)
        try:
            now = adapters.rollback(data_dir)
        except AdapterError as e:
            raise ConsoleError(409, str(e)) from None
        return back(request, "/consolidation", msg=f"rolled back: live is {now or 'the base model (no adapter)'}")

    # ------------------------------------------------------------------ chat
    def _session(request: Request) -> tuple[str, bool]:
        sid = request.cookies.get(CHAT_COOKIE, "")
        if re.fullmatch(r"[0-9a-f]{32}", sid):
            return sid, False
        return secrets.token_hex(16), True

    @console.get("/chat", dependencies=guarded)
    def chat_page(request: Request) -> Response:
        sid, new = _session(request)
        r = render(request, "chat.html", turns=transcripts.get(sid, []), question="")
        if new:
            r.set_cookie(CHAT_COOKIE, sid, httponly=True, samesite="strict", path=base(request) or "/")
        return r

    @console.post("/chat", dependencies=guarded)
    async def chat_ask(request: Request) -> Response:
        from graphs.chat import ChatError

        fields = await form(request)
        question = need(fields, "question", app.cfg.chat.max_question_chars)
        as_of = fields.get("as_of", "").strip()[:100]
        default_time = _as_of(as_of)
        sid, new = _session(request)
        try:
            r = await worker.run(agent.ask, question, session=sid, default_time=default_time)
        except ChatError as e:
            raise ConsoleError(400, str(e)) from None
        except BackendError as e:
            raise ConsoleError(503, f"the model backend failed: {e}") from None
        cites = [{"n": u.n, "id": u.id, "text": u.text, "note": u.note, "true_now": u.true_now,
                  "sources": [{"doc_id": s.doc_id, "title": s.title or s.doc_id, "date": s.date} for s in u.sources]}
                 for u in r.citations]
        turns = transcripts.setdefault(sid, [])
        transcripts.move_to_end(sid)
        turns.append({"question": question, "answer": r.answer, "parts": _answer_parts(r.answer, cites), "citations": cites,
                      "mode": r.intent.mode, "as_of": fmt_time(r.intent.end), "known": r.known})
        del turns[:-MAX_CHAT_TURNS]
        while len(transcripts) > MAX_CHAT_SESSIONS:
            transcripts.popitem(last=False)
        resp = back(request, "/chat")
        resp.headers["Location"] += "#last"
        if new:
            resp.set_cookie(CHAT_COOKIE, sid, httponly=True, samesite="strict", path=base(request) or "/")
        return resp

    @console.post("/chat/forget", dependencies=guarded)
    async def chat_forget(request: Request) -> Response:
        await form(request)
        sid, _ = _session(request)
        transcripts.pop(sid, None)
        try:
            await worker.run(agent.forget, sid)
        except Exception:  # nothing remembered for this session yet
            log.debug("chat forget %s", sid, exc_info=True)
        return back(request, "/chat")

    return console
