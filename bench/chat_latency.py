"""Chat latency: hybrid retrieval p50/p95 at 1k, 10k and 100k facts, and answer latency
with the bundled model.

Synthetic facts about fictional people, companies, clubs and cities are written
straight to a store (as ingest would: a fact row plus history entries; about one
in eight is later made false and rewritten, so "now" and as-of filtering have
stale facts to skip), then indexed in Chroma. Fact vectors are computed once with
the real MiniLM embedder and cached in the data dir (`--embedder hash` uses the
hashing stand-in instead, and says so); queries are always embedded live by the
same embedder, so the retrieval figures include query embedding, Chroma, FTS5 BM25,
the RRF fusion and reading the facts' histories.

Answer latency runs the chat graph (ChatAgent) with the bundled Gemma 3 270M over
the 10k store: free-text answers (time to first token and total, streamed) and
multiple choice by likelihood.

    flock /tmp/knowd-cpu.lock .venv/bin/python bench/chat_latency.py
    flock /tmp/knowd-cpu.lock .venv/bin/python bench/chat_latency.py --sizes 1000,10000 --embedder hash --answers 0
"""
from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import random
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROOT = Path(__file__).resolve().parent.parent
FIRST = ["Maria", "John", "Aiko", "Pavel", "Lena", "Omar", "Grace", "Tomas", "Nadia", "Victor", "Ines", "Kwame", "Sofia",
         "Ravi", "Elena", "Jonas", "Amara", "Felix", "Hana", "Diego", "Yara", "Lukas", "Mei", "Tariq", "Olga", "Ben",
         "Chloe", "Idris", "Freya", "Mateo"]
LAST = ["Lopez", "Smith", "Tanaka", "Novak", "Berg", "Haddad", "Okafor", "Silva", "Petrov", "Moreau", "Costa", "Mensah",
        "Kim", "Nowak", "Rossi", "Jensen", "Ivanova", "Dubois", "Santos", "Muller", "Sato", "Ali", "Fischer", "Reyes",
        "Larsen", "Chen", "Kowalski", "Adeyemi", "Weber", "Horvat"]
ADJ = ["North", "Blue", "Silver", "Red", "Bright", "Iron", "Green", "Swift", "Golden", "Stone", "Clear", "High", "Deep",
       "Quiet", "Bold", "Prime", "Vast", "Keen", "True", "Grand"]
NOUN = ["wind", "river", "peak", "field", "harbor", "forge", "light", "bridge", "gate", "works", "point", "vale", "crest",
        "line", "wave", "stone", "brook", "ridge", "way", "port"]
KIND = ["Corp", "Foods", "Shipping", "Textiles", "Rail", "Energy", "Labs", "Media", "Bank", "Motors"]
ROLES = ["CEO", "finance director", "head of research", "chair of the board", "chief engineer"]
CITIES = ["Lyon", "Osaka", "Accra", "Porto", "Brno", "Tromso", "Leeds", "Quito", "Perth", "Gdansk", "Busan", "Turin",
          "Nantes", "Malmo", "Cusco", "Hobart"]
CLUBS = [f"{c} {s}" for c in CITIES for s in ("United", "Rovers", "Athletic", "FC")]


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    k = (len(xs) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def ms(xs: list[float]) -> str:
    return f"p50 {1000 * pct(xs, 0.5):7.1f} ms   p95 {1000 * pct(xs, 0.95):7.1f} ms"


# ----------------------------------------------------------------------------- synthetic facts
def synthetic_facts(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """n distinct facts (subject, relation, object, text, history) in a fixed order, so
    the first 1k of the 100k are the 1k set."""
    rng = random.Random(seed)
    people = [f"{f} {s}" for f in FIRST for s in LAST]
    companies = [f"{a}{b} {k}" for a in ADJ for b in NOUN for k in KIND]
    rng.shuffle(people)
    rng.shuffle(companies)
    seen: set[str] = set()
    out: list[dict[str, Any]] = []
    t0 = datetime(2015, 1, 1, tzinfo=timezone.utc)
    while len(out) < n:
        kind = rng.random()
        co = rng.choice(companies)
        if kind < 0.45:
            s, r, o = rng.choice(people), f"is the {rng.choice(ROLES)} of", co
        elif kind < 0.65:
            s, r, o = co, "is headquartered in", rng.choice(CITIES)
        elif kind < 0.85:
            s, r, o = rng.choice(people), "plays for", rng.choice(CLUBS)
        else:
            s, r, o = co, "acquired", rng.choice(companies)
        text = f"{s} {r} {o}."
        if text in seen:
            continue
        seen.add(text)
        start = t0 + timedelta(days=rng.randrange(0, 3000))
        hist = [(start, True, "extract")]
        if rng.random() < 0.125:  # later contradicted
            hist.append((start + timedelta(days=rng.randrange(30, 600)), False, "make_false"))
        elif rng.random() < 0.2:  # reinforced
            hist.append((start + timedelta(days=rng.randrange(30, 600)), True, "reinforce"))
        out.append({"subject": s, "relation": r, "object": o, "text": text, "history": hist})
    return out


def question_for(f: dict[str, Any], rng: random.Random) -> str:
    s, r, o = f["subject"], f["relation"], f["object"]
    if r.startswith("is the "):
        role = r[len("is the "):-len(" of")]
        return rng.choice([f"Who is the {role} of {o}?", f"What does {s} do at {o}?", f"Who runs {o}?"])
    if r == "is headquartered in":
        return rng.choice([f"Where is {s} headquartered?", f"Which city is {s} based in?"])
    if r == "plays for":
        return rng.choice([f"Which club does {s} play for?", f"Who plays for {o}?"])
    return rng.choice([f"Which company did {s} acquire?", f"Who bought {o}?"])


# ----------------------------------------------------------------------------- embeddings
class CachedEmbedder:
    """Fact vectors from a precomputed array; anything else (queries) embedded live."""

    def __init__(self, inner: Any, texts: list[str], vectors: Any):
        self.inner = inner
        self.dim = inner.dim
        self.row = {t: i for i, t in enumerate(texts)}
        self.vectors = vectors  # float32 (n, dim): 100k x 384 as Python floats would be ~1 GB

    def embed(self, texts: list[str]) -> list[list[float]]:
        missing = [t for t in texts if t not in self.row]
        live = dict(zip(missing, self.inner.embed(missing))) if missing else {}
        return [live[t] if t in live else self.vectors[self.row[t]].tolist() for t in texts]


def fact_vectors(texts: list[str], embedder: Any, cache: Path, name: str) -> Any:
    """Vectors for the fact texts, computed once and cached (float32 .npy + the texts' hash)."""
    import numpy as np

    key = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    npy = cache / f"vectors-{name}-{len(texts)}-{key}.npy"
    if npy.exists():
        arr = np.load(npy)
        print(f"  fact vectors: cached {npy.name}")
    else:
        t0 = time.perf_counter()
        arr = np.zeros((len(texts), embedder.dim), dtype=np.float32)
        step = 2000
        for i in range(0, len(texts), step):
            arr[i : i + step] = np.asarray(embedder.embed(texts[i : i + step]), dtype=np.float32)
            done = min(i + step, len(texts))
            rate = done / (time.perf_counter() - t0)
            end = "" if sys.stdout.isatty() else "\n"
            if sys.stdout.isatty() or done % 20000 == 0 or done == len(texts):
                print(f"\r  embedding facts with {name}: {done:,}/{len(texts):,} ({rate:,.0f}/s)", end=end, flush=True)
        if sys.stdout.isatty():
            print()
        cache.mkdir(parents=True, exist_ok=True)
        np.save(npy, arr)
    return arr


# ----------------------------------------------------------------------------- stores
def build_store(folder: Path, facts: list[dict[str, Any]], embedder: Any) -> tuple[Any, Any]:
    """A store + Chroma index holding `facts` (reused when already built)."""
    from stores.sqlite import Store
    from stores.vector import FactIndex

    marker = folder / "built.json"
    store = Store(folder / "knowd.sqlite")
    index = FactIndex(embedder, path=folder / "chroma", collection="facts")
    if marker.exists() and json.loads(marker.read_text()).get("n") == len(facts) and index.count() == len(facts):
        return store, index
    t0 = time.perf_counter()
    with store.transaction() as c:
        for f in facts:
            fid = store.insert_fact(c, f["text"], f["subject"], f["relation"], f["object"])
            for when, truth, op in f["history"]:
                store.add_history(c, fid, when, truth, "bench", op, None)
    t1 = time.perf_counter()
    ids = store.pending_index(10**9)
    for i in range(0, len(ids), 5000):
        index.upsert(store.get_facts(ids[i : i + 5000]))
    store.clear_index_queue(ids)
    t2 = time.perf_counter()
    marker.write_text(json.dumps({"n": len(facts)}))
    print(f"  built {len(facts):,} facts: store {t1 - t0:.1f}s, Chroma index {t2 - t1:.1f}s")
    return store, index


# ----------------------------------------------------------------------------- measurements
def retrieval_latency(store: Any, index: Any, facts: list[dict[str, Any]], queries: int, k: int) -> dict[str, list[float]]:
    from graphs.retrieval import hybrid_search
    from graphs.text import content_terms

    rng = random.Random(1)
    sample = [rng.choice(facts) for _ in range(queries)]
    for f in sample[:5]:  # warm caches (SQLite pages, HNSW, tokenizer)
        hybrid_search(store, index, question_for(f, rng), k)
    times: dict[str, list[float]] = {"now": [], "as_of": [], "history": [], "dense": [], "filtered": [], "fts": []}
    for i, f in enumerate(sample):
        q = question_for(f, rng)
        mode = ("now", "now", "as_of", "history")[i % 4]
        kw: dict[str, Any] = {}
        if mode == "as_of":
            kw["as_of"] = f["history"][0][0] + timedelta(days=10)
        elif mode == "history":
            kw["include_stale"] = True
        t0 = time.perf_counter()
        hybrid_search(store, index, q, k, **kw)
        times[mode].append(time.perf_counter() - t0)
        pool = 2 * max(k * 4, 20)  # hybrid_search's dense pool
        t0 = time.perf_counter()
        index.query(q, pool, current_only=False)
        times["dense"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        index.query(q, pool, current_only=True)
        times["filtered"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        store.search_fts(" ".join(content_terms(q)), k * 4)
        times["fts"].append(time.perf_counter() - t0)
    return times


def answer_latency(store: Any, index: Any, facts: list[dict[str, Any]], n: int, threads: int) -> None:
    from agent.config import config_from_dict
    from agent.llm import build_llm
    from graphs.chat import ChatAgent

    cfg = config_from_dict({"data_dir": str(ROOT / "data"), "llm": {"n_threads": threads}}, base_dir=ROOT)
    t0 = time.perf_counter()
    llm = build_llm(cfg)
    print(f"  model load: {time.perf_counter() - t0:.2f}s ({llm.name}, {llm.n_threads} threads)")
    agent = ChatAgent(SimpleNamespace(store=store, index=index, llm=llm), cfg.chat)
    rng = random.Random(2)
    current = [f for f in facts if len(f["history"]) == 1 or f["history"][-1][1]]
    agent.ask(question_for(current[0], rng))  # warm-up
    first, total, toks = [], [], []
    for f in rng.sample(current, n):
        q = question_for(f, rng)
        start = time.perf_counter()
        seen: list[float] = []
        t_before = llm.meter.snapshot()
        agent.ask(q, on_token=lambda _t: seen.append(time.perf_counter()))
        end = time.perf_counter()
        total.append(end - start)
        if seen:
            first.append(seen[0] - start)
        toks.append(llm.meter.snapshot()["completion_tokens"] - t_before["completion_tokens"])
    gen_s = sum(total) - sum(first)
    print(f"  free text, streamed ({n} questions, chat.max_tokens={cfg.chat.max_tokens}):")
    print(f"    first token   {ms(first)}")
    print(f"    full answer   {ms(total)}   ({statistics.mean(toks):.0f} tokens on average, "
          f"{sum(toks) / max(gen_s, 1e-9):.0f} tokens/s after the first)")
    mc = []
    for f in rng.sample(current, n):
        q = question_for(f, rng)
        wrong = rng.sample([x["object"] for x in facts if x["relation"] == f["relation"] and x["object"] != f["object"]], 3)
        choices = [f["object"], *wrong]
        rng.shuffle(choices)
        start = time.perf_counter()
        agent.ask(q, mode="choice", choices=choices)
        mc.append(time.perf_counter() - start)
    print(f"  multiple choice by likelihood (4 choices, {n} questions):")
    print(f"    full answer   {ms(mc)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000,10000,100000", help="fact counts, comma-separated")
    ap.add_argument("--queries", type=int, default=200, help="retrieval queries per size")
    ap.add_argument("--k", type=int, default=8, help="facts retrieved per query (chat.top_k)")
    ap.add_argument("--embedder", choices=["minilm", "hash"], default="minilm")
    ap.add_argument("--answers", type=int, default=10, help="questions answered with the bundled model (0 = skip)")
    ap.add_argument("--threads", type=int, default=2, help="llama.cpp threads")
    ap.add_argument("--data-dir", default=str(ROOT / "data" / "bench" / "chat_latency"))
    args = ap.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    data = Path(args.data_dir)

    from agent.embeddings import MiniLMEmbedder
    from stores.testing import HashEmbedder

    inner = MiniLMEmbedder() if args.embedder == "minilm" else HashEmbedder(dim=384)
    name = "minilm" if args.embedder == "minilm" else "hash"
    print(f"chat latency benchmark: facts and queries embedded with {'all-MiniLM-L6-v2 (NumPy)' if name == 'minilm' else 'the HashEmbedder stand-in (NOT the real model)'}")
    facts = synthetic_facts(max(sizes))
    texts = [f["text"] for f in facts]
    embedder = CachedEmbedder(inner, texts, fact_vectors(texts, inner, data, name))
    t0 = time.perf_counter()
    inner.embed(["Who is the CEO of Northwind?"])
    q0 = time.perf_counter()
    inner.embed(["Where is Bluewind Rail headquartered?"])
    print(f"  one query embedding: {1000 * (time.perf_counter() - q0):.1f} ms (first call {1000 * (q0 - t0):.0f} ms)")
    stores = {n: build_store(data / f"{name}-{n}", facts[:n], embedder) for n in sizes}
    # The harness holds 100k synthetic facts and their vectors: without this, Python's
    # full garbage collections over them add ~0.3 s pauses that are not knowd's cost.
    gc.collect()
    gc.freeze()
    print(f"\nretrieval (hybrid_search, k={args.k}, {args.queries} queries per size; now:as-of:history = 2:1:1)")
    print(f"  load average before: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)")
    for n in sizes:
        print(f"{n:>7,} facts")
        store, index = stores[n]
        times = retrieval_latency(store, index, facts[:n], args.queries, args.k)
        allq = times["now"] + times["as_of"] + times["history"]
        stale = sum(1 for f in facts[:n] if not f["history"][-1][1])
        print(f"    all queries   {ms(allq)}   ({stale:,} stale facts)")
        for mode in ("now", "as_of", "history"):
            print(f"    {mode:<13} {ms(times[mode])}")
        print(f"    dense only    {ms(times['dense'])}   (query embedding + Chroma HNSW, as hybrid_search runs it)")
        print(f"    dense+filter  {ms(times['filtered'])}   (Chroma where current=true: the filter hybrid_search avoids)")
        print(f"    BM25 only     {ms(times['fts'])}   (SQLite FTS5)")
    if args.answers:
        n = 10000 if 10000 in stores else sizes[0]
        print(f"\nanswer latency with the bundled model ({n:,}-fact store; load average {os.getloadavg()[0]:.2f})")
        answer_latency(*stores[n], facts[:n], args.answers, args.threads)
    print(f"  load average after: {os.getloadavg()[0]:.2f}")
    for store, _ in stores.values():
        store.close()


if __name__ == "__main__":
    main()
