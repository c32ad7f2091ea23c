"""Turn files given to `knowd ingest` into Documents, refusing bad input with one clear line.

Accepted: plain text and Markdown (one document per file), and JSONL with one
document per line (`{"id", "text", "title", "time" | "published_at", "source",
"url", "author"}`; the benchmark stream format works too, its questions are
skipped). Empty, binary and oversized inputs raise InputError; text that is not
UTF-8 is decoded by charset detection.

`document_from_object` is the one reading of that document schema: the JSONL lines
here and the bodies of `POST /v1/documents` (agent/server.py) both go through it,
so a field of the wrong type is refused the same way (a `FieldError` naming it).
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from agent.errors import InputError
from stores.types import Document, content_hash

_COMMON = ("cp1252", "cp1251", "cp1250", "iso8859_15", "latin_1", "cp1253", "cp1254", "cp1256", "gb18030", "shift_jis", "euc_kr", "big5")


def parse_time(s: str) -> datetime:
    """ISO 8601 date or date-time; naive times are UTC."""
    try:
        t = datetime.fromisoformat(s.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"not an ISO date or time: {s!r} (e.g. 2022-06-14 or 2022-06-14T09:30:00Z)") from None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def decode(data: bytes, name: str) -> str:
    """UTF-8 (with or without BOM), else a detected encoding; binary data is refused."""
    if not data.strip():
        raise InputError(f"{name}: empty input")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    if b"\x00" in data[:8192]:
        raise InputError(f"{name}: looks like a binary file (NUL bytes), not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    matches = list(from_bytes(data[:1_000_000]))
    if not matches:
        raise InputError(f"{name}: not text in any known encoding")
    # Short texts fit many code pages equally well; among the least chaotic, prefer the
    # encodings most text is actually written in (charset_normalizer alone picked cp775
    # for Portuguese in Latin-1).
    least = min(m.chaos for m in matches)
    plausible = [m.encoding for m in matches if m.chaos == least]
    encoding = next((e for e in _COMMON if e in plausible), plausible[0])
    text = data.decode(encoding, errors="replace")
    bad = sum(1 for ch in text[:20000] if ord(ch) < 32 and ch not in "\n\r\t\f")
    if bad > len(text[:20000]) * 0.01:
        raise InputError(f"{name}: looks like a binary file (control characters), not text")
    return text


def read_documents(
    data: bytes, name: str, *, max_bytes: int, time: datetime | None = None, source: str = "cli"
) -> Iterator[Document]:
    """Documents from one input (file contents or stdin)."""
    if len(data) > max_bytes:
        raise InputError(
            f"{name}: {len(data):,} bytes is over the {max_bytes:,}-byte limit (ingest.max_document_bytes); split it"
        )
    text = decode(data, name)
    if name.endswith(".jsonl") or (name == "-" and text.lstrip().startswith("{")):
        yield from _jsonl(text, name, source, time)
        return
    if not text.strip():
        raise InputError(f"{name}: no text")
    title = _title(text, name)
    yield Document(
        id=f"{source}:{Path(name).name if name != '-' else 'stdin'}#{content_hash(text)[:16]}",
        text=text, source=source, title=title, published_at=time, meta={"path": name},
    )


def _title(text: str, name: str) -> str | None:
    first = text.strip().splitlines()[0].strip()
    if first.startswith("#"):
        return first.lstrip("# ").strip()[:200] or None
    return Path(name).stem if name != "-" else None


def _jsonl(text: str, name: str, source: str, default_time: datetime | None) -> Iterator[Document]:
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj: Any = json.loads(line)
        except (ValueError, RecursionError) as e:  # JSONDecodeError, a 5000-digit number, [[[[...
            raise InputError(f"{name}:{n}: invalid JSON ({getattr(e, 'msg', None) or e})") from None
        doc = document_from_object(obj, f"{name}:{n}", source=source, default_time=default_time)
        if doc is not None:
            yield doc


class FieldError(InputError):
    """A document object with a missing or mistyped field; `field` names it ("title")."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


_STRING_FIELDS = ("title", "source", "url", "author")
_KNOWN = {"id", "text", "source", "url", "author", "title", "time", "published_at", "type"}


def clean_text(s: str) -> str:
    """`s` as valid, NUL-free Unicode: NUL characters dropped, lone surrogates (which JSON's
    \\ud800 escapes can produce, and which no UTF-8 consumer accepts: SQLite, the
    tokenisers, llama.cpp) replaced by U+FFFD. Everything else is kept as it is."""
    if "\x00" in s:
        s = s.replace("\x00", "")
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        s = s.encode("utf-16", "surrogatepass").decode("utf-16", "replace")  # pairs rejoined, lone ones replaced
    return s


def document_from_object(
    obj: Any, where: str, *, source: str, default_time: datetime | None = None,
) -> Document | None:
    """One document object (a JSONL line, an item of a `POST /v1/documents` body) as a
    Document; None for a non-document line of a benchmark stream (`"type": "question"`).

    `text` is required (a non-empty string); `id` a string or an integer (default:
    `SOURCE:<content hash>`, so the same text gets the same id); `title`, `source`,
    `url`, `author` strings or null; `time` / `published_at` an ISO date or date-time
    (default: `default_time`); every other key is kept in `meta`. Text fields are
    passed through `clean_text`; an id that is not valid Unicode is refused rather
    than changed (two ids could become one). Raises FieldError naming the field.
    """
    if not isinstance(obj, dict):
        raise FieldError(f"{where}: expected a JSON object (a document), not {_kind(obj)}")
    kind = obj.get("type", "document")
    if kind != "document":
        if isinstance(kind, str):
            return None  # benchmark streams interleave questions
        raise FieldError(f"{where}: 'type' must be a string (\"document\"), not {_kind(kind)}", "type")
    body = obj.get("text")
    if not isinstance(body, str):
        raise FieldError(f"{where}: 'text' is required and must be a string"
                         + ("" if body is None else f", not {_kind(body)}"), "text")
    body = clean_text(body)
    if not body.strip():
        raise FieldError(f"{where}: document has no 'text'", "text")
    fields: dict[str, str | None] = {}
    for key in _STRING_FIELDS:
        v = obj.get(key)
        if v is not None and not isinstance(v, str):
            raise FieldError(f"{where}: {key!r} must be a string or null, not {_kind(v)}", key)
        fields[key] = clean_text(v) if v else None
    raw_id = obj.get("id")
    if raw_id is None or raw_id == "":
        doc_id = None
    elif isinstance(raw_id, str):
        if "\x00" in raw_id or clean_text(raw_id) != raw_id:
            raise FieldError(f"{where}: 'id' must be valid Unicode text without NUL characters", "id")
        doc_id = raw_id
    elif isinstance(raw_id, int) and not isinstance(raw_id, bool):
        doc_id = str(raw_id)
    else:
        raise FieldError(f"{where}: 'id' must be a string or an integer, not {_kind(raw_id)}", "id")
    key = "time" if obj.get("time") else "published_at"
    when = obj.get(key)
    if when is not None and not isinstance(when, str):
        raise FieldError(f"{where}: {key!r} must be an ISO date or time string, not {_kind(when)}", key)
    try:
        published = parse_time(when) if when else default_time
    except InputError as e:
        raise FieldError(f"{where}: {key!r}: {e}", key) from None
    src = fields["source"] or source
    return Document(
        id=doc_id or f"{src}:{content_hash(body)[:16]}",
        text=body, source=src, url=fields["url"], author=fields["author"], title=fields["title"],
        published_at=published,
        meta={k: v for k, v in obj.items() if k not in _KNOWN},
    )


def _kind(v: Any) -> str:
    """The JSON name of a value's type, for error messages."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "an array"
    return "an object"
