"""Turn files given to `knowd ingest` into Documents, refusing bad input with one clear line.

Accepted: plain text and Markdown (one document per file), and JSONL with one
document per line (`{"id", "text", "title", "time" | "published_at", "source",
"url", "author"}`; the benchmark stream format works too, its questions are
skipped). Empty, binary and oversized inputs raise InputError; text that is not
UTF-8 is decoded by charset detection.
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
            obj: dict[str, Any] = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"{name}:{n}: invalid JSON ({e.msg})") from None
        if not isinstance(obj, dict):
            raise InputError(f"{name}:{n}: expected a JSON object")
        if obj.get("type", "document") != "document":
            continue  # benchmark streams interleave questions
        body = obj.get("text")
        if not isinstance(body, str) or not body.strip():
            raise InputError(f"{name}:{n}: document has no 'text'")
        when = obj.get("time") or obj.get("published_at")
        yield Document(
            id=str(obj.get("id") or f"{source}:{content_hash(body)[:16]}"),
            text=body, source=str(obj.get("source") or source), url=obj.get("url"),
            author=obj.get("author"), title=obj.get("title"),
            published_at=parse_time(when) if isinstance(when, str) else default_time,
            meta={k: v for k, v in obj.items() if k not in {"id", "text", "source", "url", "author", "title", "time", "published_at", "type"}},
        )
