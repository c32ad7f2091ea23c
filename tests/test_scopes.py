"""Scoped tokens on every face (agent/security.py): for every route of the HTTP API and the
review console, and every MCP tool, a token of too small a scope gets 403 and changes
nothing; the token's name is written to the operations log; a read-only console login
sees no form that would change anything; `knowd token add` keeps only a hash.

The routes are found by walking the application, not listed by hand: a route added
without a scope, or with one this test does not expect, fails here."""
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import Mount, Route

from agent.security import Scope, hash_token
from agent.serve import create_app
from tests.console_world import ingest_all, make_app, make_runs, write_feed
from tests.helpers import snapshot

TOKENS = {"reader": ("read", "knowd_read-token"), "pusher": ("write", "knowd_write-token"),
          "ops": ("admin", "knowd_admin-token")}
BY_SCOPE = {Scope.parse(scope): (name, secret) for name, (scope, secret) in TOKENS.items()}

# The scope each route needs: a new route must be added here (and so get a decision).
EXPECTED = {
    ("GET", "/v1/models"): Scope.READ, ("GET", "/v1/models/{model_id}"): Scope.READ,
    ("POST", "/v1/chat/completions"): Scope.READ, ("GET", "/v1/facts"): Scope.READ,
    ("GET", "/v1/facts/{fact_id}"): Scope.READ, ("GET", "/v1/facts/{fact_id}/history"): Scope.READ,
    ("GET", "/v1/documents/{doc_id}/operations"): Scope.READ, ("GET", "/v1/status"): Scope.READ,
    ("POST", "/v1/documents"): Scope.WRITE,
    ("POST", "/v1/documents/{doc_id}/revert"): Scope.ADMIN, ("POST", "/v1/inbox/{item_id}/retry"): Scope.ADMIN,
    ("GET", "/console/"): Scope.READ, ("GET", "/console/facts"): Scope.READ,
    ("GET", "/console/facts/{fact_id}"): Scope.READ, ("GET", "/console/documents"): Scope.READ,
    ("GET", "/console/document"): Scope.READ, ("GET", "/console/connectors"): Scope.READ,
    ("GET", "/console/consolidation"): Scope.READ, ("GET", "/console/consolidation/runs/{run_id}/"): Scope.READ,
    ("GET", "/console/consolidation/runs/{run_id}/{name}"): Scope.READ, ("GET", "/console/chat"): Scope.READ,
    ("POST", "/console/chat"): Scope.READ, ("POST", "/console/chat/forget"): Scope.READ,
    ("POST", "/console/document/revert"): Scope.ADMIN, ("POST", "/console/inbox/retry"): Scope.ADMIN,
    ("POST", "/console/connectors/add"): Scope.ADMIN, ("POST", "/console/connectors/test"): Scope.ADMIN,
    ("POST", "/console/connectors/pause"): Scope.ADMIN, ("POST", "/console/consolidation/ship"): Scope.ADMIN,
    ("POST", "/console/consolidation/rollback"): Scope.ADMIN,
}
PUBLIC = {("GET", "/console/login"), ("POST", "/console/login"), ("POST", "/console/logout")}
ADMIN_FORMS = ("/document/revert", "/inbox/retry", "/connectors/add", "/connectors/test", "/connectors/pause",
               "/consolidation/ship", "/consolidation/rollback")


def _scopes(dependencies: Any) -> list[Scope]:
    """The scopes required by `requires(...)` dependencies, nested ones included."""
    out = []
    for d in dependencies:
        call = getattr(d, "call", None) or getattr(d, "dependency", None)
        if hasattr(call, "scope"):
            out.append(call.scope)
        out += _scopes(getattr(d, "dependencies", []))
    return out


def routes(app: Any, prefix: str = "", inherited: tuple = ()) -> dict[tuple[str, str], Scope | None]:
    """(method, path) -> the scope its dependencies require, for every route of the app and of
    what is mounted in it (the console), through included routers and their dependencies."""
    out: dict[tuple[str, str], Scope | None] = {}
    for r in getattr(app, "routes", []):
        router = getattr(r, "original_router", None)  # an included APIRouter
        if router is not None:
            out.update(routes(router, prefix, inherited + tuple(router.dependencies)))
        elif isinstance(r, Mount):
            out.update(routes(r.app, prefix + r.path, inherited))
        elif isinstance(r, APIRoute):
            found = _scopes(inherited) + _scopes(r.dependant.dependencies)
            for m in r.methods - {"HEAD"}:
                out[(m, prefix + r.path)] = max(found) if found else None
        elif isinstance(r, Route) and r.path != "/mcp":  # /mcp checks its tools' scopes itself
            for m in (r.methods or set()) - {"HEAD"}:
                out[(m, prefix + r.path)] = None
    return out


@pytest.fixture
def world(tmp_path: Path) -> Iterator:
    tokens = [{"name": n, "scope": s, "sha256": hash_token(t)} for n, (s, t) in TOKENS.items()]
    app, world, llm = make_app(tmp_path, tokens=tokens)
    ingest_all(app)
    world.runs = make_runs(app.cfg.data_path)["runs"]
    write_feed(tmp_path / "feed.xml")
    yield app, world, llm
    app.close()


@pytest.fixture
def client(world) -> TestClient:  # noqa: ANN001
    return TestClient(create_app(world[0]), follow_redirects=False)


def _state(app: Any) -> dict[str, Any]:
    """Everything a request could change: the store, config.yaml, the live adapter."""
    data = app.cfg.data_path
    live = data / "adapters" / "live.json"
    pauses = app.store._q("SELECT key, value FROM meta WHERE key LIKE 'connector.paused:%'")
    return {"store": snapshot(app.store), "inbox": app.store._q("SELECT id, status, attempts FROM inbox"),
            "pauses": [tuple(r) for r in pauses], "config": Path(app.config_path).read_text(),
            "live": live.read_text() if live.exists() else None,
            "inbox_rows": [tuple(r) for r in app.store._q("SELECT id, status FROM inbox")]}


def _example_request(app: Any, world: Any, method: str, path: str) -> dict[str, Any]:
    """A request to the route that would do its work if the scope allowed it."""
    store = app.store
    fact = store.list_facts(current_only=False)[0].id
    item = store.inbox_items("failed")[0]["id"]
    run = world.runs[0]
    url = (path.replace("{fact_id}", fact).replace("{doc_id}", "memo-2022").replace("{item_id}", str(item))
           .replace("{model_id}", "knowd").replace("{run_id}", run).replace("{name}", "loss.png"))
    form = {"id": "memo-2022", "item": str(item), "name": "harbour", "kind": "feed", "options": "url=feed.xml",
            "version": "v0001", "action": "pause", "question": "Who is CEO of Northwind?"}
    if path == "/v1/documents":
        return {"method": method, "url": url, "json": [{"id": "new-doc", "text": "Northwind hired Ann Lee."}]}
    if path == "/v1/chat/completions":
        return {"method": method, "url": url, "json": {"messages": [{"role": "user", "content": "Who is CEO?"}]}}
    if path.startswith("/console/connectors/pause"):
        form["name"] = "none-yet"
    return {"method": method, "url": url, "data": form if method == "POST" and path.startswith("/console") else None}


def test_every_route_declares_the_expected_scope(client):
    found = routes(client.app)
    unscoped = {k for k, v in found.items() if v is None} - PUBLIC
    assert not unscoped, f"routes without a scope: {sorted(unscoped)}"
    assert {k: v for k, v in found.items() if k not in PUBLIC} == EXPECTED


@pytest.mark.parametrize("route", sorted(EXPECTED, key=lambda k: (k[1], k[0])), ids=lambda k: f"{k[0]} {k[1]}")
def test_too_small_a_scope_is_403_and_changes_nothing(client, world, route):
    app = world[0]
    method, path = route
    needed = EXPECTED[route]
    req = _example_request(app, world[1], method, path)
    before = _state(app)
    # no token at all: 401 (a console page redirects to the login page), nothing changed
    r = client.request(**{k: v for k, v in req.items() if v is not None})
    assert r.status_code in (401, 303), (route, r.status_code)
    for scope in Scope:
        if scope >= needed:
            continue
        name, secret = BY_SCOPE[scope]
        r = client.request(**{k: v for k, v in req.items() if v is not None},
                           headers={"Authorization": f"Bearer {secret}"})
        assert r.status_code == 403, (route, scope, r.status_code, r.text[:300])
        assert needed.label in r.text and name in r.text  # says what was needed and what it had
    assert _state(app) == before


def test_enough_scope_does_the_work_and_the_log_names_the_token(client, world):
    app = world[0]
    auth = {"Authorization": f"Bearer {TOKENS['pusher'][1]}"}
    r = client.post("/v1/documents", json=[{"id": "new-doc", "text": "Northwind hired Ann Lee."}], headers=auth)
    assert r.status_code == 202
    (push,) = [o for o in app.store.operations("new-doc") if o.op == "push"]
    assert push.actor == "pusher"
    ops = {"Authorization": f"Bearer {TOKENS['ops'][1]}"}
    r = client.post("/v1/documents/memo-2022/revert", headers=ops)
    assert r.status_code == 200 and r.json()["status"] == "reverted"
    (rev,) = [o for o in app.store.operations("memo-2022") if o.op == "revert"]
    assert rev.actor == "ops"
    assert client.post("/v1/documents/memo-2022/revert", headers=ops).status_code == 409
    item = app.store.inbox_items("failed")[0]["id"]
    assert client.post(f"/v1/inbox/{item}/retry", headers=ops).status_code == 200
    assert [a.op for a in app.store.actions()][:3] == ["retry", "revert", "push"]
    assert {a.actor for a in app.store.actions()} == {"ops", "pusher", "test"}  # test: console_world pushes
    # the document's operations (read scope) show who
    r = client.get("/v1/documents/memo-2022/operations", headers={"Authorization": f"Bearer {TOKENS['reader'][1]}"})
    assert [o["actor"] for o in r.json()["operations"] if o["op"] == "revert"] == ["ops"]


def _login(client: TestClient, secret: str) -> None:
    page = client.get("/console/login")
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text).group(1)
    r = client.post("/console/login", data={"csrf": csrf, "token": secret, "next": "/console/facts"})
    assert r.status_code == 303


def test_read_only_login_sees_no_forms_that_change_anything(client, world):
    app = world[0]
    _login(client, TOKENS["reader"][1])
    fact = app.store.list_facts(current_only=False)[0].id
    pages = ["/console/facts", f"/console/facts/{fact}", "/console/documents", "/console/document?id=memo-2022",
             "/console/connectors", "/console/consolidation", f"/console/consolidation/runs/{world[1].runs[0]}/",
             "/console/chat"]
    for p in pages:
        r = client.get(p)
        assert r.status_code == 200, p
        posts = re.findall(r'<form method="post" action="([^"]+)"', r.text)
        assert not [a for a in posts if a.removeprefix("/console") in ADMIN_FORMS], (p, posts)
        assert 'id="who"' in r.text and "reader · read" in r.text
    # and with the read session's cookie and a valid CSRF field, an admin form post is 403
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', client.get("/console/chat").text).group(1)
    before = _state(app)
    assert client.post("/console/document/revert", data={"csrf": csrf, "id": "memo-2022"}).status_code == 403
    assert _state(app) == before
    # the chat (read) works
    r = client.post("/console/chat", data={"csrf": csrf, "question": "Who is CEO of Northwind?"})
    assert r.status_code == 303


def test_admin_login_sees_the_forms(client, world):
    _login(client, TOKENS["ops"][1])
    r = client.get("/console/document?id=memo-2022")
    assert 'action="/console/document/revert"' in r.text
    assert 'action="/console/inbox/retry"' in client.get("/console/documents").text
    assert 'action="/console/connectors/add"' in client.get("/console/connectors").text


def _rpc(client: TestClient, secret: str, method: str, params: dict[str, Any], id: int = 1) -> Any:
    return client.post("/mcp", json={"jsonrpc": "2.0", "id": id, "method": method, "params": params},
                       headers={"Authorization": f"Bearer {secret}", "Accept": "application/json, text/event-stream",
                                "MCP-Protocol-Version": "2025-06-18"})


def test_mcp_tools_out_of_scope_are_403_and_change_nothing(client, world):
    from agent.mcp import TOOL_SCOPES

    app = world[0]
    args = {"search_facts": {"query": "CEO"}, "fact_history": {"fact_id": "x"}, "ask": {"question": "Who?"},
            "add_document": {"text": "Northwind hired Ann Lee.", "id": "mcp-doc"}}
    assert set(args) == set(TOOL_SCOPES)
    before = _state(app)
    for tool, needed in TOOL_SCOPES.items():
        for scope in Scope:
            if scope >= needed:
                continue
            r = _rpc(client, BY_SCOPE[scope][1], "tools/call", {"name": tool, "arguments": args[tool]})
            assert r.status_code == 403, (tool, scope, r.status_code, r.text[:200])
        r = client.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                      "params": {"name": tool, "arguments": args[tool]}})
        assert r.status_code == 401
    assert _state(app) == before
    # a write token may add a document, and the log names it
    r = _rpc(client, TOKENS["pusher"][1], "tools/call", {"name": "add_document", "arguments": args["add_document"]})
    assert r.status_code == 200 and not r.json().get("error"), r.text[:300]
    assert [o.actor for o in app.store.operations("mcp-doc") if o.op == "push"] == ["pusher"]


def test_token_add_keeps_a_hash_and_the_comments(tmp_path):
    from click.testing import CliRunner

    from agent.cli import cli
    from agent.config import load_config
    from agent.security import Tokens

    path = tmp_path / "config.yaml"
    path.write_text("# my knowd\ndata_dir: data  # keep this\nserver:\n  port: 8400  # mine\n", encoding="utf-8")
    r = CliRunner().invoke(cli, ["--config", str(path), "token", "add", "grafana", "--scope", "read"])
    assert r.exit_code == 0, r.output
    secret = r.stdout.strip().splitlines()[0]
    text = path.read_text()
    assert secret not in text and hashlib.sha256(secret.encode()).hexdigest() in text
    assert "# my knowd" in text and "# keep this" in text and "# mine" in text
    tokens = Tokens.from_config(load_config(path).server)
    who = tokens.authenticate(secret)
    assert who is not None and (who.name, who.scope) == ("grafana", Scope.READ)
    assert tokens.authenticate(secret + "x") is None
    again = CliRunner().invoke(cli, ["--config", str(path), "token", "add", "grafana", "--scope", "admin"])
    assert again.exit_code == 2 and "exists already" in again.output
    bad = CliRunner().invoke(cli, ["--config", str(path), "token", "add", "bad name!", "--scope", "read"])
    assert bad.exit_code == 2 and path.read_text() == text  # validated first: nothing written
    listed = CliRunner().invoke(cli, ["--config", str(path), "token", "list"])
    assert "grafana" in listed.output and "read" in listed.output and secret not in listed.output
    assert CliRunner().invoke(cli, ["--config", str(path), "token", "remove", "grafana"]).exit_code == 0
    assert "grafana" not in path.read_text() and "# keep this" in path.read_text()
    assert json.dumps(load_config(path).server.tokens) == "[]" or not load_config(path).server.tokens
