"""What revision by keys costs per document, and whether that grows with the store.

    .venv/bin/python bench/keys_cost.py [--sizes 1000 10000 100000] [--n 30]

Documents, all real text from ../shared/data:
  * news-150c : CLARK-News evidence passages of 120-180 characters (the median item);
  * news-150w : CLARK-News full articles cut to their first 150 words;
  * chat-20   : 20-message windows of an Ubuntu IRC log, as the chat-log connector makes them.

Each kind is ingested into stores that already hold N facts (with keys, history and
vectors in Chroma), on the configured embedder (the bundled MiniLM), as the daemon does.
Printed per kind and size: model calls, wall seconds per document (mean, p50, p95), and
where the time goes (parse, revision + commit, embedding + index). No model is loaded:
revision by keys calls none, and the script counts calls to prove it.
"""
from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"


def clark_docs() -> list[dict]:
    return [json.loads(x) for x in (SHARED / "clark-news-dev.jsonl").open() if '"type": "document"' in x[:40]]


def documents(kind: str, n: int, seed: int = 0) -> list:
    """`n` documents of one kind, as Document objects, in time order."""
    from stores.types import Document

    rng = random.Random(seed)
    out = []
    if kind == "news-150c":
        pool = [d for d in clark_docs() if 120 <= len(d["text"]) <= 180]
        for d in rng.sample(pool, min(n, len(pool))):
            out.append(Document(id=d["id"], text=d["text"], title=d.get("title"), published_at=_t(d["time"]), source="clark"))
    elif kind == "news-150w":
        pool = [d for d in clark_docs() if len(d["text"].split()) >= 150]
        for d in rng.sample(pool, min(n, len(pool))):
            words = d["text"].split()[:150]
            out.append(Document(id=d["id"] + "-150w", text=" ".join(words), title=d.get("title"), published_at=_t(d["time"]), source="clark"))
    elif kind == "chat-20":
        from connectors.chatlog import ChatLogConnector

        path = sorted((SHARED / "chatlogs" / "irc").glob("*.raw.txt"))[0]
        msgs = ChatLogConnector("irc", {"path": str(path), "gap_minutes": 100000}).poll({}).documents
        lines = [ln for d in msgs for ln in d.text.splitlines() if re.match(r"^\[.*?\] [^:]{1,40}: ", ln)]
        t0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
        for i in range(min(n, len(lines) // 20)):
            text = "\n".join(lines[i * 20 : (i + 1) * 20])
            out.append(Document(id=f"irc-{i}", text=text, title="#ubuntu", published_at=t0 + timedelta(hours=i), source="irc"))
    else:
        raise SystemExit(f"unknown kind {kind}")
    return sorted(out, key=lambda d: d.time)


def _t(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def prefill(app, n: int, seed: int = 0) -> None:  # noqa: ANN001
    """N facts with keys and one history entry each, and N vectors in the index."""
    import numpy as np

    from stores.types import FactKey

    rng = random.Random(seed)
    first = ["Ana", "Bo", "Cy", "Di", "Ed", "Fay", "Gus", "Hal", "Ivy", "Jo", "Kai", "Lu"]
    rels = ["works at", "chief executive of", "based in", "earns", "enjoys", "head of"]
    t = datetime(2015, 1, 1, tzinfo=timezone.utc)
    store = app.store
    ids = []
    with store.transaction() as c:
        for i in range(n):
            who = f"{rng.choice(first)} Person{i // 7}"
            rel = rng.choice(rels)
            obj = f"Company{rng.randrange(n // 20 + 1)}"
            fid = store.insert_fact(c, f"{who} {rel} {obj} (fact {i}).", who, rel, obj, keys=[FactKey(who, rel, obj)])
            store.add_history(c, fid, t + timedelta(minutes=i), True, None, "extract", None)
            ids.append(fid)
        c.execute("DELETE FROM index_queue")
    col = app.index._col
    vecs = np.random.default_rng(seed).standard_normal((n, 384)).astype("float32")
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    for i in range(0, n, 2000):
        col.upsert(ids=ids[i : i + 2000], embeddings=vecs[i : i + 2000].tolist(),
                   metadatas=[{"current": True, "subject": ""}] * len(ids[i : i + 2000]))


def measure(kind: str, size: int, n: int) -> dict:
    from agent.app import App
    from agent.config import config_from_dict
    from graphs.ingest import ingest_document
    from graphs.keyed import propositions
    from graphs.testing import FakeLLM

    work = Path(tempfile.mkdtemp(prefix=f"knowd-keys-{kind}-{size}-"))
    llm = FakeLLM(responder=lambda p, s, st: (_ for _ in ()).throw(AssertionError("model called")))
    app = App(config_from_dict({"data_dir": str(work)}), llm=llm)
    prefill(app, size)
    ctx = app.ingest_context()
    embed_s = [0.0]
    orig = app.embedder.embed

    def timed_embed(texts):  # noqa: ANN001, ANN202
        t0 = time.perf_counter()
        try:
            return orig(texts)
        finally:
            embed_s[0] += time.perf_counter() - t0

    app.embedder.embed = timed_embed  # type: ignore[method-assign]
    app.embedder.embed(["warm up"])
    propositions.nlp()  # loaded once per process, before timing
    docs = documents(kind, n)
    walls, parse, embeds, props = [], [], [], []
    for d in docs:
        t0 = time.perf_counter()
        props.append(len(propositions.extract(d.text, d.title, ctx.name_index())))
        parse.append(time.perf_counter() - t0)
        embed_s[0] = 0.0
        t0 = time.perf_counter()
        r = ingest_document(d, ctx, force=True)
        walls.append(time.perf_counter() - t0)
        embeds.append(embed_s[0])
        assert r.status == "done", r.error
    app.close()
    q = statistics.quantiles(walls, n=20) if len(walls) >= 20 else [max(walls)] * 19
    return {
        "kind": kind, "facts_in_store": size, "documents": len(docs), "model_calls": len(llm.calls),
        "propositions_per_doc": round(statistics.mean(props), 1),
        "wall_mean": statistics.mean(walls), "wall_p50": statistics.median(walls), "wall_p95": q[18],
        "parse_mean": statistics.mean(parse), "embed_index_mean": statistics.mean(embeds),
        "revise_commit_mean": statistics.mean(walls) - statistics.mean(parse) - statistics.mean(embeds),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    ap.add_argument("--kinds", nargs="+", default=["news-150c", "news-150w", "chat-20"])
    ap.add_argument("--n", type=int, default=30, help="documents per kind and size")
    args = ap.parse_args()
    rows = []
    print("| kind | facts in store | docs | model calls | propositions/doc | wall s/doc mean | p50 | p95 | parse | revise+commit | embed+index |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for kind in args.kinds:
        for size in args.sizes:
            r = measure(kind, size, args.n)
            rows.append(r)
            print(f"| {kind} | {size:,} | {r['documents']} | {r['model_calls']} | {r['propositions_per_doc']} | "
                  f"{r['wall_mean']:.3f} | {r['wall_p50']:.3f} | {r['wall_p95']:.3f} | {r['parse_mean']:.3f} | "
                  f"{r['revise_commit_mean']:.3f} | {r['embed_index_mean']:.3f} |", flush=True)
    out = ROOT / "bench" / "out" / "keys_cost.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
