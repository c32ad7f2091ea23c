"""Ingest benchmark: LLM calls, tokens and seconds per document, and time outside the LLM.

Generates N short synthetic news documents about fictional people and companies
(later ones change earlier facts, so retrieval and classification have work to
do), ingests them into a fresh store and prints per-document figures. Run it
twice to compare batched classification with one call per fact:

    .venv/bin/python bench/ingest_bench.py --n 20                      # bundled Gemma 270M
    .venv/bin/python bench/ingest_bench.py --n 20 --classify-batch 1   # one call per fact
    .venv/bin/python bench/ingest_bench.py --n 200 --fake              # the LLM stubbed

Run nothing else CPU-heavy at the same time: llama.cpp threads spin, and a
contended core makes every figure several times worse.
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

FIRST = ["Maria", "John", "Aiko", "Pavel", "Lena", "Omar", "Grace", "Tomas", "Nadia", "Victor", "Ines", "Kwame"]
LAST = ["Lopez", "Smith", "Tanaka", "Novak", "Berg", "Haddad", "Okafor", "Silva", "Petrov", "Moreau", "Costa", "Mensah"]
COMPANIES = ["Northwind", "Globex", "Initech", "Umbrella Foods", "Stark Shipping", "Wayne Textiles", "Acme Rail", "Hooli"]
ROLES = ["chief executive", "finance director", "head of research", "chair of the board"]
CITIES = ["Lyon", "Osaka", "Accra", "Porto", "Brno", "Tromsø"]


def synthetic_documents(n: int, seed: int = 0):  # noqa: ANN201
    """Short news items; each later item may replace the holder of a role or move a HQ."""
    from stores.types import Document

    rng = random.Random(seed)
    holders: dict[tuple[str, str], str] = {}
    hq: dict[str, str] = {}
    t = datetime(2021, 1, 1, tzinfo=timezone.utc)
    docs = []
    for i in range(n):
        co = rng.choice(COMPANIES)
        role = rng.choice(ROLES)
        person = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        old = holders.get((co, role))
        if rng.random() < 0.3:
            city = rng.choice(CITIES)
            prev = hq.get(co)
            text = f"{co} has moved its headquarters to {city}" + (f", leaving {prev} after many years." if prev else ".")
            text += " The company said the move would take most of the year."
            hq[co] = city
        elif old and old != person:
            text = (
                f"{co} said on Monday that {person} will replace {old} as {role}. "
                f"{old} stepped down after five years in the job. {person} joins from a rival firm."
            )
        else:
            text = f"{person} is the {role} of {co}, the company confirmed in its annual report."
        holders[(co, role)] = person
        t += timedelta(days=rng.randint(3, 20))
        docs.append(Document(id=f"bench-{i}", text=text, title=f"{co} news", published_at=t, source="bench"))
    return docs


def fake_llm():  # noqa: ANN201
    """A stub that extracts one grounded triple per document and labels candidates no_change."""
    import re

    from graphs.testing import FakeLLM

    def respond(prompt: str, schema: dict | None, step: str):  # noqa: ANN202
        if step == "extract":
            text = prompt.rsplit("Text (", 1)[1]
            m = re.search(r"([A-Z]\w+ [A-Z]\w+) (?:is the|will replace \w+ \w+ as) ([a-z ]+?) (?:of )?(\w[\w ]*?)[,.]", text)
            facts = [{"subject": m.group(1), "relation": f"is {m.group(2)} of", "object": m.group(3)}] if m else []
            return {"facts": facts}
        if step == "classify":
            return {k: "no_change" for k in schema["required"]}
        return {"retire": True}

    return FakeLLM(responder=respond)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20, help="number of documents")
    ap.add_argument("--fake", action="store_true", help="stub the LLM (measures everything else)")
    ap.add_argument("--classify-batch", type=int, default=6, help="facts per classification call")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model-dir", default=str(Path(__file__).resolve().parent.parent / "data"),
                    help="data dir holding models/ (the bundled GGUF is assembled there once)")
    args = ap.parse_args()

    from agent.app import App
    from agent.config import config_from_dict
    from agent.models import ensure_gguf
    from graphs.ingest import ingest_document

    work = Path(tempfile.mkdtemp(prefix="knowd-bench-"))
    # whole-chunk extraction, the setting this benchmark was written for (config.yaml extracts by sentence)
    raw = {"data_dir": str(work), "ingest": {"classify_batch": args.classify_batch, "extract_unit": "chunk"}}
    if not args.fake:
        raw["llm"] = {"model_path": str(ensure_gguf(Path(args.model_dir)))}
    cfg = config_from_dict(raw)
    app = App(cfg, llm=fake_llm() if args.fake else None)
    ctx = app.ingest_context()
    app.index.count()  # load the embedder and index before timing
    app.embedder.embed(["warm up"])
    docs = synthetic_documents(args.n, args.seed)

    walls, llm_secs, calls, ptoks, ctoks = [], [], [], [], []
    counts: dict[str, int] = {}
    for d in docs:
        t0 = time.perf_counter()
        r = ingest_document(d, ctx)
        walls.append(time.perf_counter() - t0)
        if r.status != "done":
            print(f"{d.id}: {r.status} {r.error}", file=sys.stderr)
        llm_secs.append(r.llm_seconds)
        calls.append(r.calls)
        ptoks.append(r.prompt_tokens)
        ctoks.append(r.completion_tokens)
        for k, v in r.counts.items():
            counts[k] = counts.get(k, 0) + v

    total, in_llm = sum(walls), sum(llm_secs)
    model = "stub (FakeLLM)" if args.fake else Path(cfg.llm.model_path).name
    print(f"model: {model}   documents: {args.n}   classify_batch: {args.classify_batch}")
    print(f"LLM calls per document:        {statistics.mean(calls):.2f}  (by step: "
          + ", ".join(f"{k} {v['calls']}" for k, v in app.llm.meter.snapshot()["by_step"].items()) + ")")
    print(f"prompt tokens per document:    {statistics.mean(ptoks):.0f}")
    print(f"completion tokens per document:{statistics.mean(ctoks):.1f}")
    print(f"seconds per document:          mean {statistics.mean(walls):.3f}  p50 {statistics.median(walls):.3f}  max {max(walls):.3f}")
    print(f"share of wall time outside the LLM: {(total - in_llm) / total:.1%}  ({total - in_llm:.2f}s of {total:.2f}s)")
    print("operations:", ", ".join(f"{k} {v}" for k, v in counts.items() if v))
    print(f"facts: {app.store.count_facts()}")


if __name__ == "__main__":
    main()
