"""The OpenAI-compatible part of the API: models and chat completions.

    POST /v1/chat/completions   OpenAI chat (stream true: SSE chunks, then `data: [DONE]`);
                                extension fields: `as_of` (a date/period) in the body,
                                `retrieval: false` (closed book: the model's weights alone)
    GET  /v1/models, /v1/models/{id}   the served model, with the live LoRA adapter

All read scope. The answer runs on the service's model thread; a client that disconnects
mid-stream stops the generation at the next token.
"""
from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from agent.api.body import parse_json_body, read_body
from agent.api.errors import ApiError, error_body, from_knowd
from agent.errors import KnowdError
from agent.security import Scope, requires
from agent.service import Service
from agent.service import chat as chat_service
from agent.service.consolidation import adapter_status
from agent.service.facts import when
from agent.service.status import base_model
from agent.views import citation_json, iso, sources_block, strip_sources
from graphs.chat import ChatError, ChatResult, Turn

log = logging.getLogger("agent.api")
router = APIRouter(dependencies=[Depends(requires(Scope.READ))])


@dataclass
class ChatRequest:
    model: str
    question: str
    history: list[Turn]
    stream: bool
    include_usage: bool
    max_tokens: int | None
    as_of: str | None
    retrieval: bool | None = None


def _text(content: Any, where: str) -> str:
    """A message's content: a string, or a list of {"type": "text", "text": ...} parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for p in content:
            if not isinstance(p, dict) or p.get("type") != "text" or not isinstance(p.get("text"), str):
                raise ApiError(400, f"{where}: only text content parts are supported", param=where)
            parts.append(p["text"])
        return "\n".join(parts)
    if content is None:
        return ""
    raise ApiError(400, f"{where}: content must be a string or a list of text parts", param=where)


def parse_chat_request(body: Any, served: str) -> ChatRequest:
    """Validate an OpenAI chat-completions body (400 on anything malformed)."""
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object")
    model = body.get("model", served)
    if not isinstance(model, str) or not model:
        raise ApiError(400, "'model' must be a non-empty string", param="model")
    if model != served:
        raise ApiError(404, f"The model '{model}' does not exist (this server serves '{served}')", code="model_not_found", param="model")
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise ApiError(400, "'messages' is required and must be a non-empty list", param="messages")
    turns: list[Turn] = []
    pending: str | None = None
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise ApiError(400, f"messages[{i}] must be an object with a 'role'", param=f"messages[{i}]")
        role, text = m["role"], _text(m.get("content"), f"messages[{i}].content")
        if role == "user":
            if pending is not None:
                turns.append(Turn(pending, ""))
            pending = text
        elif role == "assistant":
            if pending is not None:
                turns.append(Turn(pending, strip_sources(text)))
                pending = None
        elif role not in ("system", "developer", "tool", "function"):
            raise ApiError(400, f"messages[{i}].role {role!r} is not one of system, developer, user, assistant, tool", param=f"messages[{i}].role")
    if pending is None or not pending.strip():
        raise ApiError(400, "the last message must be a non-empty user message", param="messages")
    n = body.get("n")
    if n not in (None, 1):
        raise ApiError(400, "only n=1 is supported", param="n")
    stream = body.get("stream") or False
    if not isinstance(stream, bool):
        raise ApiError(400, "'stream' must be true or false", param="stream")
    opts = body.get("stream_options") or {}
    if not isinstance(opts, dict):
        raise ApiError(400, "'stream_options' must be an object", param="stream_options")
    mt = body.get("max_completion_tokens", body.get("max_tokens"))
    if mt is not None and (not isinstance(mt, int) or isinstance(mt, bool) or mt < 1):
        raise ApiError(400, "'max_tokens' must be a positive integer", param="max_tokens")
    as_of = body.get("as_of")
    if as_of is not None and not isinstance(as_of, str):
        raise ApiError(400, "'as_of' must be a date string such as 2021-05-01", param="as_of")
    retrieval = body.get("retrieval")
    if retrieval is not None and not isinstance(retrieval, bool):
        raise ApiError(400, "'retrieval' must be true or false (false: answer from the model's weights alone)", param="retrieval")
    return ChatRequest(model, pending, turns, stream, bool(opts.get("include_usage")), mt, as_of, retrieval)



def _content(r: ChatResult, with_sources: bool) -> str:
    return r.answer + sources_block(r.citations) if with_sources else r.answer


def _extras(r: ChatResult, svc: Service) -> dict[str, Any]:
    """Non-OpenAI fields (clients ignore them): the time asked about and the citations."""
    return {"mode": r.intent.mode, "as_of": iso(r.intent.end), "known": r.known,
            "citations": [citation_json(u) for u in r.citations], "adapter": adapter_status(svc.app)["version"]}


def _model_card(svc: Service, started: int) -> dict[str, Any]:
    return {"id": svc.app.cfg.server.model_name, "object": "model", "created": started, "owned_by": "knowd",
            "base_model": base_model(svc.app), "adapter": adapter_status(svc.app)}


@router.get("/v1/models")
def list_models(request: Request) -> dict[str, Any]:
    return {"object": "list", "data": [_model_card(request.app.state.service, request.app.state.started)]}


@router.get("/v1/models/{model_id}")
def get_model(request: Request, model_id: str) -> dict[str, Any]:
    svc: Service = request.app.state.service
    if model_id != svc.app.cfg.server.model_name:
        raise ApiError(404, f"The model '{model_id}' does not exist", "invalid_request_error", "model_not_found")
    return _model_card(svc, request.app.state.started)


@router.post("/v1/chat/completions")
async def chat_completions(request: Request) -> Any:
    svc: Service = request.app.state.service
    cfg = svc.app.cfg
    served = cfg.server.model_name
    req = parse_chat_request(parse_json_body(await read_body(request, cfg.server.max_request_bytes)), served)
    default_time = when(req.as_of)
    if len(req.question) > cfg.chat.max_question_chars:
        raise ApiError(400, f"question is over {cfg.chat.max_question_chars:,} characters (chat.max_question_chars)",
                       code="context_length_exceeded", param="messages")
    cid, created = "chatcmpl-" + uuid.uuid4().hex[:24], int(time.time())
    ask = dict(history=req.history, default_time=default_time, max_tokens=req.max_tokens, retrieval=req.retrieval)
    if req.stream:
        return StreamingResponse(_sse(svc, req, ask, cid, created), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    try:
        r, usage = await svc.model.run(chat_service.answer, svc.app, svc.agent, req.question, **ask)
    except ChatError as e:
        raise ApiError(400, str(e)) from None
    return {
        "id": cid, "object": "chat.completion", "created": created, "model": served,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": _content(r, cfg.server.append_sources)},
                     "finish_reason": "stop", "logprobs": None}],
        "usage": usage, "knowd": _extras(r, svc),
    }


def _chunk(cid: str, created: int, model: str, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
    body = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}], **extra}
    return f"data: {json.dumps(body)}\n\n"


def _stream_error(e: BaseException) -> str:
    if isinstance(e, KnowdError):
        a = from_knowd(e)
        msg, kind = a.message, a.type
    else:
        log.error("chat stream failed", exc_info=e)
        msg, kind = f"internal error: {type(e).__name__}", "server_error"
    return f"data: {json.dumps(error_body(msg, kind))}\n\n"


async def _sse(svc: Service, req: ChatRequest, ask: dict[str, Any], cid: str, created: int) -> AsyncIterator[str]:
    """OpenAI streaming: a role chunk, content chunks as tokens arrive, the sources, a
    finish chunk, optionally usage, then [DONE]. The generation runs on the model
    thread; tokens cross to the event loop through a queue."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    stop = threading.Event()
    model = svc.app.cfg.server.model_name

    def put(item: tuple[str, Any]) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the loop is gone (server shutting down): nobody is listening
            stop.set()

    def job() -> None:
        try:
            put(("done", chat_service.answer(svc.app, svc.agent, req.question, on_token=lambda t: put(("token", t)),
                                             should_stop=stop.is_set, **ask)))
        except BaseException as e:  # noqa: BLE001 - reported to the client, the thread lives on
            put(("error", e))

    yield _chunk(cid, created, model, {"role": "assistant", "content": ""})
    svc.model.submit(job)
    try:
        while True:
            kind, val = await queue.get()
            if kind == "token":
                if val:
                    yield _chunk(cid, created, model, {"content": val})
                continue
            if kind == "error":
                yield _stream_error(val)
                yield "data: [DONE]\n\n"
                return
            r, usage = val
            if svc.app.cfg.server.append_sources and r.citations:
                yield _chunk(cid, created, model, {"content": sources_block(r.citations)})
            yield _chunk(cid, created, model, {}, "stop", knowd=_extras(r, svc))
            if req.include_usage:
                yield f"data: {json.dumps({'id': cid, 'object': 'chat.completion.chunk', 'created': created, 'model': model, 'choices': [], 'usage': usage})}\n\n"
            yield "data: [DONE]\n\n"
            return
    finally:
        stop.set()  # the client went away (or we are done): stop generating at the next token
