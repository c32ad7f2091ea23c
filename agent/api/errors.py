"""The API's errors: OpenAI-style JSON (`{"error": {"message", "type", "param", "code"}}`)
with a 4xx status; the project's own errors mapped to statuses in one place."""
from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from agent.errors import BackendError, Conflict, Forbidden, InputError, KnowdError, NotFound
from agent.security import Unauthenticated
from agent.service.errors import InvalidField, TooLarge


class ApiError(Exception):
    """An error answered to the client as OpenAI-style JSON."""

    def __init__(self, status: int, message: str, type_: str = "invalid_request_error", code: str | None = None,
                 param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type_, code, param


def error_body(message: str, type_: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def error_response(e: ApiError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if e.status == 401 else None
    return JSONResponse(error_body(e.message, e.type, e.code, e.param), status_code=e.status, headers=headers)


def from_knowd(e: KnowdError, *, invalid_status: int = 400) -> ApiError:
    """The API's answer to one of the project's errors."""
    msg = str(e)
    if isinstance(e, Unauthenticated):
        return ApiError(401, msg, "authentication_error", "invalid_api_key")
    if isinstance(e, Forbidden):
        return ApiError(403, msg, "permission_error", "insufficient_scope")
    if isinstance(e, NotFound):
        return ApiError(404, msg, "not_found_error", "not_found")
    if isinstance(e, Conflict):
        return ApiError(409, msg, "invalid_request_error", "conflict")
    if isinstance(e, TooLarge):
        return ApiError(413, msg, code=e.code, param=e.param)
    if isinstance(e, InvalidField):
        return ApiError(invalid_status, msg, code=e.code, param=e.param)
    if isinstance(e, BackendError):
        return ApiError(503, f"the model backend failed: {msg}", "server_error", "backend_error")
    if isinstance(e, InputError):
        return ApiError(invalid_status, msg)
    return ApiError(400, msg)


def install_handlers(api: FastAPI, log: Any) -> None:
    """Every failure as OpenAI-style JSON; nothing but a bug is a 500."""

    @api.exception_handler(ApiError)
    async def _api_error(request: Request, e: ApiError) -> JSONResponse:
        return error_response(e)

    @api.exception_handler(KnowdError)
    async def _knowd_error(request: Request, e: KnowdError) -> JSONResponse:
        return error_response(from_knowd(e))

    @api.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
        kind = "not_found_error" if e.status_code == 404 else "invalid_request_error"
        return error_response(ApiError(e.status_code, str(e.detail), kind))

    @api.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, e: RequestValidationError) -> JSONResponse:
        first = e.errors()[0] if e.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return error_response(ApiError(400, f"{where}: {first.get('msg', 'invalid request')}", param=where or None))

    @api.exception_handler(Exception)
    async def _internal(request: Request, e: Exception) -> JSONResponse:
        log.exception("internal error on %s", request.url.path)
        return JSONResponse(error_body(f"internal error: {type(e).__name__}", "server_error"), status_code=500)
