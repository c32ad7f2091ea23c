"""Who may do what: bearer tokens with scopes, one check for every face (API, console, MCP).

Scopes are ordered; a token holds one and everything below it:

    read   chat, search facts, a fact's history, a document's operations, status, MCP read tools
    write  + push documents (POST /v1/documents, MCP add_document)
    admin  + revert, retry, connectors (add, test, pause), ship / rollback, the console's forms

Tokens live in config.yaml as `server.tokens: [{name, scope, sha256}]`: only a SHA-256
of each token is kept at rest (`knowd token add NAME --scope read` makes one and prints it
once). A token is 32 random bytes, so a plain hash is as good as a slow one: nobody can
guess their way through 2^256 inputs, and the check stays a microsecond per request.
Two older ways still work and are admin: `server.token` (plain text in the file) and the
environment variable named by `server.token_env` (default KNOWD_TOKEN).

With no token configured at all, the server listens on loopback only
(`check_bind`) and every request is the local user, with admin scope.
The name of the token behind a change is written to the operations log (`actor`).
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING

from starlette.requests import Request

from stores.errors import Forbidden, KnowdError

if TYPE_CHECKING:
    from agent.config import ServerConfig

TOKEN_PREFIX = "knowd_"
LOCAL = "local"  # the actor when no token is configured (a loopback-only server, the CLI)


class Scope(IntEnum):
    READ = 1
    WRITE = 2
    ADMIN = 3

    @classmethod
    def parse(cls, name: str) -> Scope:
        try:
            return cls[name.strip().upper()]
        except KeyError:
            raise KnowdError(f"unknown scope {name!r}: read, write or admin") from None

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Principal:
    """Who is asking: the token's name and scope."""

    name: str
    scope: Scope

    def allows(self, needed: Scope) -> bool:
        return self.scope >= needed

    def require(self, needed: Scope, what: str) -> None:
        """Forbidden (403 on every face) unless this principal holds `needed`."""
        if not self.allows(needed):
            raise Forbidden(
                f"{what} needs a token with the {needed.label} scope; "
                f"token {self.name!r} has {self.scope.label}"
            )


LOCAL_ADMIN = Principal(LOCAL, Scope.ADMIN)


def hash_token(token: str) -> str:
    """The SHA-256 (hex) config.yaml keeps instead of the token."""
    return hashlib.sha256(token.strip().encode("utf-8")).hexdigest()


def new_token() -> str:
    """A fresh token: a recognisable prefix and 32 random bytes."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class _Entry:
    name: str
    scope: Scope
    digest: bytes  # sha256 of the token


class Tokens:
    """The configured tokens; `authenticate` is the one token check of every face."""

    def __init__(self, entries: list[_Entry]):
        self._entries = entries

    @classmethod
    def from_config(cls, cfg: ServerConfig) -> Tokens:
        entries = [_Entry(t.name, Scope.parse(t.scope), bytes.fromhex(t.sha256)) for t in cfg.tokens]
        legacy = cfg.token or None
        env = os.environ.get(cfg.token_env) or None
        if legacy:
            entries.append(_Entry("token", Scope.ADMIN, hashlib.sha256(legacy.strip().encode()).digest()))
        if env:
            entries.append(_Entry(cfg.token_env, Scope.ADMIN, hashlib.sha256(env.strip().encode()).digest()))
        return cls(entries)

    @property
    def required(self) -> bool:
        """Whether requests must carry a token (any token is configured)."""
        return bool(self._entries)

    def names(self) -> list[tuple[str, str]]:
        return [(e.name, e.scope.label) for e in self._entries]

    def authenticate(self, token: str | None) -> Principal | None:
        """The principal a presented token stands for; None when it matches no configured
        token. With no tokens configured, everyone is the local admin."""
        if not self._entries:
            return LOCAL_ADMIN
        if not token:
            return None
        digest = hashlib.sha256(token.strip().encode("utf-8", "replace")).digest()
        found = None
        for e in self._entries:  # every entry is compared: the time does not say which matched
            if hmac.compare_digest(digest, e.digest):
                found = found or e
        return Principal(found.name, found.scope) if found else None

    def from_header(self, authorization: str | None) -> Principal | None:
        """`Authorization: Bearer TOKEN` -> principal (None: missing, malformed or unknown)."""
        if not self._entries:
            return LOCAL_ADMIN
        scheme, _, value = (authorization or "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        return self.authenticate(value)

    def session_key(self, name: str) -> bytes | None:
        """A key for signing a browser session of token `name`: derived from the token's hash,
        so sessions survive a restart and end when the token is removed from config.yaml."""
        e = next((e for e in self._entries if e.name == name), None)
        return None if e is None else hmac.new(e.digest, b"knowd-console-session", hashlib.sha256).digest()

    def scope_of(self, name: str) -> Scope | None:
        e = next((e for e in self._entries if e.name == name), None)
        return None if e is None else e.scope


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_bind(host: str, tokens: Tokens, token_env: str) -> None:
    """Refuse to listen beyond this machine without a token."""
    from agent.errors import ServerError

    if not is_loopback(host) and not tokens.required:
        raise ServerError(
            f"refusing to listen on {host} without a bearer token: add one with `knowd token add NAME --scope admin` "
            f"(server.tokens in config.yaml), or set the {token_env} environment variable (or listen on 127.0.0.1)"
        )


# ----------------------------------------------------------------------------- HTTP faces
class Unauthenticated(KnowdError):
    """No token, or one that matches none configured (HTTP 401; the console's login page)."""


SessionReader = Callable[["Request"], "Principal | None"]


def requires(scope: Scope) -> Callable[..., Awaitable[Principal]]:
    """The FastAPI dependency every route of the API and the console declares: who is asking
    (the bearer token, else the face's own session, e.g. the console's cookie), and that they
    hold `scope`. Unauthenticated (401) or Forbidden (403) before the route's body is read, so
    a request outside its scope changes nothing. The principal is left in
    `request.state.principal` for the route (its name goes to the operations log)."""

    async def principal(request: Request) -> Principal:
        state = request.app.state
        tokens: Tokens = state.tokens
        header = request.headers.get("authorization")
        p = tokens.from_header(header) if header or not tokens.required else None
        reader: SessionReader | None = getattr(state, "session_reader", None)
        if p is None and not header and reader is not None:
            p = reader(request)
        if p is None:
            raise Unauthenticated("missing or wrong bearer token (Authorization: Bearer ...)")
        p.require(scope, f"{request.method} {request.url.path}")
        request.state.principal = p
        return p

    principal.scope = scope  # type: ignore[attr-defined]  # read by the tests that walk every route
    return principal
