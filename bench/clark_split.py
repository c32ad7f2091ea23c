"""Split CLARK-News dev by question subject into two halves, for tuning on one and
reporting on the other: a question's subject is its first capitalised name (as
graphs/lookup.names reads it), hashed. Writes both halves with every document.

    .venv/bin/python bench/clark_split.py ../shared/data/clark-news-dev.jsonl bench/out/clark
    -> bench/out/clark-A.jsonl (tuning), bench/out/clark-B.jsonl (reporting)
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from graphs.lookup import names  # noqa: E402


def half(question: str) -> str:
    n = names(question)
    key = n[0] if n else question
    return "A" if int(hashlib.md5(key.encode()).hexdigest(), 16) % 2 == 0 else "B"


def main() -> None:
    src, prefix = Path(sys.argv[1]), sys.argv[2]
    rows = [json.loads(x) for x in src.open(encoding="utf-8")]
    for h in ("A", "B"):
        out = Path(f"{prefix}-{h}.jsonl")
        out.parent.mkdir(parents=True, exist_ok=True)
        kept = [r for r in rows if r["type"] == "document" or half(r["question"]) == h]
        out.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
        print(f"{out}: {sum(r['type'] == 'question' for r in kept)} questions, {sum(r['type'] == 'document' for r in kept)} documents")


if __name__ == "__main__":
    main()
