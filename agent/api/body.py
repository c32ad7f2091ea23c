"""Reading request bodies: a size limit that answers 413 cleanly, and JSON that cannot 500
(bounded depth, NUL characters and lone surrogates cleaned)."""
from __future__ import annotations

import json
from typing import Any

from fastapi import Request

from agent.api.errors import ApiError
from agent.inputs import clean_text


MAX_JSON_DEPTH = 64  # arrays/objects inside each other; no body of this API needs a tenth of it


def parse_json_body(raw: bytes, *, clean: bool = True) -> Any:
    """A request body as JSON, or ApiError 400; with `clean`, every string in it (keys too)
    passed through `clean_text`.

    * Malformed JSON, a body that is not UTF-8 (or UTF-16/32), an integer past Python's
      4300-digit limit: 400 "not valid JSON".
    * Nesting: deeper than MAX_JSON_DEPTH levels is 400. Python's parser recurses per
      level, so `[[[[...` 100,000 deep raised RecursionError (a 500); the depth is checked
      again after parsing, iteratively, because a body just under the parser's limit would
      overflow later recursive code (`json.dumps` of a document's `meta`, pydantic).
    * NUL characters and lone surrogates (`"\\u0000\\ud800 Who?"`: valid JSON escapes) are
      sanitised, not refused: NULs are dropped and each lone surrogate becomes U+FFFD,
      and the request is answered normally. No consumer of the text can take them (SQLite,
      the MiniLM tokeniser, which raised TypeError, a 500; llama.cpp's UTF-8 tokeniser),
      yet they carry no meaning a client could want kept: a question pasted with a stray
      control byte is still the question. Refusing them would fail whole requests (or
      whole document batches) over one invisible character. `POST /v1/documents` reads
      its body with `clean=False`: `document_from_object` cleans each text field itself
      and refuses (422) such an id rather than change it, since two ids could become one.
    """
    try:
        body = json.loads(raw)
    except RecursionError:
        raise ApiError(400, f"request body is nested more than {MAX_JSON_DEPTH} levels deep", code="too_deep") from None
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError, int digits limit
        raise ApiError(400, f"request body is not valid JSON: {e}") from None
    if isinstance(body, str):
        return clean_text(body) if clean else body
    stack: list[tuple[Any, int]] = [(body, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise ApiError(400, f"request body is nested more than {MAX_JSON_DEPTH} levels deep", code="too_deep")
        if isinstance(node, dict):
            if clean and any(clean_text(k) != k for k in node):
                items = [(clean_text(k), v) for k, v in node.items()]
                node.clear()
                node.update(items)
            keys: Any = list(node)
        elif isinstance(node, list):
            keys = range(len(node))
        else:
            continue
        for k in keys:
            v = node[k]
            if isinstance(v, str):
                if clean:
                    node[k] = clean_text(v)
            elif isinstance(v, (dict, list)):
                stack.append((v, depth + 1))
    return body


async def read_body(request: Request, limit: int, key: str = "server.max_request_bytes") -> bytes:
    """The request body, or 413 past `limit` bytes. An oversized body is drained (up to a
    hard cap) rather than cut off, so the client reads a clean 413 instead of a reset."""
    declared = request.headers.get("content-length")
    too_big = declared is not None and declared.isdigit() and int(declared) > limit
    hard_cap = 16 * limit
    buf = bytearray()
    seen = 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > hard_cap:
            break
        if not too_big:
            buf += chunk
            too_big = seen > limit
    if too_big:
        raise ApiError(413, f"request body is over the {limit:,}-byte limit ({key})", code="request_too_large")
    return bytes(buf)
