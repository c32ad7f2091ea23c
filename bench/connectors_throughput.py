"""Throughput of the daemon's pipeline: feed connector → durable inbox → ingest graph.

Writes an RSS feed of news-like items to a temporary folder, then runs the daemon's
`run_once()` (one poll of the feed, then the inbox drained one document at a time,
exactly what `knowd run` does between polls) twice:

* `stub`: the LLM is a FakeLLM answering instantly with one grounded fact per
  document, so the figure is the cost of everything around the model (feed parsing,
  inbox transactions, retrieval, embeddings, the commit, the vector index);
* `real`: the bundled Gemma 3 270M through llama.cpp (the default config), on fewer
  items because every document costs several model calls.

Both use the configured (bundled NumPy MiniLM) embedder. Model loading is timed
separately and not counted in the throughput.

    flock /tmp/knowd-cpu.lock .venv/bin/python bench/connectors_throughput.py
    .venv/bin/python bench/connectors_throughput.py --items 500 --skip-real   # no model: no lock needed
"""
from __future__ import annotations

import argparse
import json
import random
import re
import sys
import tempfile
import time
from pathlib import Path
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FIRST = ["Maria", "John", "Quinn", "Amara", "Luc", "Elena", "Sunil", "Ines", "Tomas", "Sofia", "Henrik", "Priya"]
LAST = ["Lopez", "Smith", "Park", "Osei", "Bernard", "Varga", "Mehta", "Duarte", "Brandt", "Rossi", "Aalto", "Nair"]
COMPANIES = ["Northwind Logistics", "Globex Shipping", "Harbor Mutual", "Swiftline", "BlueWake Lines",
             "Tidewater Transit", "Acme Freight", "Initech Ports", "Umbra Foods", "Vertex Energy"]
ROLES = ["chief executive", "chief financial officer", "head of operations", "chief technology officer",
         "general counsel", "head of sales"]
CITIES = ["Rotterdam", "Hamburg", "Lyon", "Antwerp", "Gdansk", "Porto", "Genoa", "Bremen"]


def news_item(i: int, rng: random.Random) -> tuple[str, str]:
    """A short, fact-bearing news item (fictional people and companies)."""
    person = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    company, previous = rng.sample(COMPANIES, 2)
    role, old_role = rng.sample(ROLES, 2)
    city = rng.choice(CITIES)
    title = f"{company} names {person} {role}"
    text = (
        f"{company} said on Monday that {person} will become its {role} next month. "
        f"{person.split()[1]} was previously {old_role} at {previous}. "
        f"{company} is based in {city} and employs about {rng.randint(3, 90) * 100} people. "
        f"The appointment is the company's {['first', 'second', 'third'][i % 3]} senior change this year."
    )
    return title, text


def write_feed(path: Path, n: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    items = []
    for i in range(n):
        title, text = news_item(i, rng)
        day, minute = 1 + i // 1440, i % 1440
        items.append(
            f"<item><guid isPermaLink=\"false\">bench-{i}</guid><title>{escape(title)}</title>"
            f"<pubDate>Mon, {day:02d} Jan 2024 {minute // 60:02d}:{minute % 60:02d}:00 +0000</pubDate>"
            f"<description>{escape(text)}</description></item>"
        )
    path.write_text('<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>Bench</title>'
                    + "".join(items) + "</channel></rss>", encoding="utf-8")


def stub_answer(prompt: str, schema: object, step: str) -> object:
    """One grounded fact per document ("X will become its ROLE"), everything else unchanged."""
    if step == "extract":
        text = prompt.rsplit("Text (", 1)[-1]
        m = re.search(r"that ([A-Z]\w+ [A-Z]\w+) will become its ([a-z ]+?) next month", text)
        c = re.search(r"\): ([A-Z][\w]+ [A-Z][\w]+)", text)
        if m and c:
            fact = {"subject": m.group(1), "relation": f"will become {m.group(2)} of", "object": c.group(1)}
            return {"facts": [fact]}
        return {"facts": []}
    return {}


def run(mode: str, items: int, workdir: Path) -> dict[str, float]:
    from agent.app import App
    from agent.config import config_from_dict, load_config
    from agent.daemon import Daemon
    from agent.logging_setup import setup_logging
    from agent.models import ensure_gguf
    from graphs.testing import FakeLLM

    setup_logging("json", "warning")  # the figures are the output; only problems are logged
    feed = workdir / f"{mode}.xml"
    write_feed(feed, items)
    raw: dict = {
        "data_dir": str(workdir / f"data-{mode}"),
        "connectors": [{"name": "bench", "kind": "feed", "options": {"url": str(feed)}}],
        "daemon": {"consolidate_at": None},
        "ingest": {"extract_unit": "chunk"},  # the stub answers one fact per chunk (config.yaml extracts by sentence)
    }
    if mode == "real":
        # the model assembled once in the repository's data dir, not 250 MB per run
        raw["llm"] = {"model_path": str(ensure_gguf(load_config().data_path))}
    cfg = config_from_dict(raw, base_dir=workdir)
    app = App(cfg, llm=FakeLLM(responder=stub_answer) if mode == "stub" else None)
    try:
        t0 = time.monotonic()
        app.index.count()  # open the vector index and load the embedder
        app.embedder.embed(["warm up"])
        app.llm.count_tokens("warm up")  # load the model (llama.cpp) outside the timing
        load_s = time.monotonic() - t0
        result = Daemon(app).run_once()
        counts = app.store.inbox_counts()
        facts = app.store.count_facts()["total"]
        calls = app.store.usage()
    finally:
        app.close()
    done = counts.get("done", 0)
    total_s = result["poll_s"] + result["ingest_s"]
    return {
        "mode": mode, "items": items, "queued": result["queued"], "done": done, "failed": counts.get("failed", 0),
        "facts": facts, "model_calls": calls["calls"], "model_s": round(calls["seconds"], 1),
        "prompt_tokens_per_call": round(calls["prompt_tokens"] / max(calls["calls"], 1)),
        "completion_tokens_per_call": round(calls["completion_tokens"] / max(calls["calls"], 1)),
        "load_s": round(load_s, 2),
        "poll_s": result["poll_s"], "ingest_s": result["ingest_s"],
        "poll_items_per_min": round(result["queued"] / max(result["poll_s"], 1e-9) * 60),
        "ingest_items_per_min": round(result["processed"] / max(result["ingest_s"], 1e-9) * 60, 1),
        "end_to_end_items_per_min": round(result["processed"] / max(total_s, 1e-9) * 60, 1),
        "s_per_item": round(total_s / max(result["processed"], 1), 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", type=int, default=200, help="feed items for the stubbed run")
    ap.add_argument("--real-items", type=int, default=10, help="feed items for the real-model run")
    ap.add_argument("--skip-real", action="store_true", help="only the stubbed run")
    ap.add_argument("--skip-stub", action="store_true", help="only the real-model run")
    ap.add_argument("--json", action="store_true", help="print one JSON object per run")
    args = ap.parse_args()
    modes = ([] if args.skip_stub else [("stub", args.items)]) + ([] if args.skip_real else [("real", args.real_items)])
    with tempfile.TemporaryDirectory(prefix="knowd-bench-") as tmp:
        for mode, n in modes:
            r = run(mode, n, Path(tmp))
            if args.json:
                print(json.dumps(r), flush=True)
                continue
            label = "LLM stubbed (FakeLLM)" if mode == "stub" else "real model (bundled Gemma 3 270M, llama.cpp)"
            print(f"{label}: {r['items']} feed items")
            print(f"  connector -> inbox : {r['queued']} queued in {r['poll_s']:.3f}s"
                  f" ({r['poll_items_per_min']:,} items/min)")
            print(f"  inbox -> ingest    : {r['done']} done, {r['failed']} failed, {r['facts']} facts, "
                  f"{r['model_calls']} model calls in {r['ingest_s']:.2f}s ({r['ingest_items_per_min']:,} items/min)")
            if mode == "real":
                print(f"  model              : {r['model_s']}s in {r['model_calls']} calls, "
                      f"{r['prompt_tokens_per_call']} prompt + {r['completion_tokens_per_call']} output tokens a call")
            print(f"  end to end         : {r['end_to_end_items_per_min']:,} items/min ({r['s_per_item']}s per item;"
                  f" model/index load {r['load_s']}s not counted)", flush=True)


if __name__ == "__main__":
    main()
